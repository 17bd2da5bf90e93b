"""Device presets: the table, the derivation of effective FLOP/s, and the validation."""

from __future__ import annotations

import dataclasses

import pytest

from meg_gym.compute import CFG_STEP_FLOPS, DEVICES, ComputeError, DeviceProfile, device_profile


def test_table_has_the_presets_the_scenarios_name():
    assert sorted(DEVICES) == ["datacenter_gpu", "edge_gpu", "laptop_gpu", "phone_npu", "phone_npu_e2e"]
    assert {n: p.kind for n, p in DEVICES.items()} == {
        "phone_npu": "ue", "phone_npu_e2e": "ue", "laptop_gpu": "ue", "edge_gpu": "es", "datacenter_gpu": "es"}
    for name, p in DEVICES.items():
        assert p.name == name and p.source and p.power_source and p.hardware


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_effective_rate_reproduces_the_published_it_per_s(name):
    p = DEVICES[name]
    assert p.flops_per_s == pytest.approx(p.sd_it_per_s * CFG_STEP_FLOPS[p.sd_model], rel=1e-12)
    # latency = stage FLOPs / flops_per_s gives back the published seconds per iteration
    assert p.seconds_per_cfg_step(p.sd_model) == pytest.approx(1.0 / p.sd_it_per_s, rel=1e-12)
    assert p.compute_s(CFG_STEP_FLOPS[p.sd_model]) == pytest.approx(1.0 / p.sd_it_per_s, rel=1e-12)


def test_published_figures_and_powers():
    it = {n: p.sd_it_per_s for n, p in DEVICES.items()}
    assert it["phone_npu"] == pytest.approx(1 / (2 * 0.101094))  # AI Hub: 101.094 ms per UNet call, CFG = 2
    assert it["phone_npu_e2e"] == pytest.approx(20 / 14.4)  # Qualcomm's 2023 demo: 20 steps in 14.4 s
    assert it["datacenter_gpu"] == 31.44  # fal-ai benchmark, A100
    assert it["phone_npu"] < it["laptop_gpu"] < it["edge_gpu"] < it["datacenter_gpu"]
    assert DEVICES["edge_gpu"].power_w == 72.0  # L4 TDP
    assert DEVICES["datacenter_gpu"].power_w == 400.0  # A100 SXM TDP
    assert 5.0 <= DEVICES["phone_npu"].power_w <= 8.0


def test_energy_of_compute():
    p = DEVICES["phone_npu"]
    assert p.compute_energy_j(p.flops_per_s) == pytest.approx(p.power_w)  # one second of compute


def test_unknown_device_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"'device' must be one of \['datacenter_gpu', 'edge_gpu', "
                                         r"'laptop_gpu', 'phone_npu', 'phone_npu_e2e'\] \(got 'gpu'\)"):
        device_profile("gpu")
    assert device_profile("edge_gpu") is DEVICES["edge_gpu"]


def test_profiles_are_frozen_and_validated():
    p = DEVICES["edge_gpu"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.flops_per_s = 1.0
    ok = dict(name="x", flops_per_s=1e12, power_w=10.0, idle_power_w=1.0, kind="es", source="test")
    DeviceProfile(**ok)
    bad = [
        ({"flops_per_s": -3.0}, r"'device\[x\].flops_per_s' must be > 0 \(got -3.0\)"),
        ({"flops_per_s": float("nan")}, r"'device\[x\].flops_per_s' must be a finite number > 0"),
        ({"flops_per_s": True}, r"'device\[x\].flops_per_s' must be a finite number > 0 \(got True\)"),
        ({"power_w": 0.0}, r"'device\[x\].power_w' must be > 0 \(got 0.0\)"),
        ({"idle_power_w": 11.0}, r"'device\[x\].idle_power_w' must be <= power_w=10.0 \(got 11.0\)"),
        ({"kind": "cloud"}, r"'device\[x\].kind' must be one of \['es', 'ue'\] \(got 'cloud'\)"),
        ({"name": ""}, r"'device.name' must be a non-empty str"),
        ({"sd_it_per_s": 2.0}, r"must be given together"),
        ({"sd_it_per_s": 2.0, "sd_model": "sdxl"}, r"'device\[x\].sd_model' must be one of \['sd15', 'sd21-base'\]"),
    ]
    for change, message in bad:
        with pytest.raises(ComputeError, match=message):
            DeviceProfile(**{**ok, **change})


def test_from_sd_it_per_s():
    p = DeviceProfile.from_sd_it_per_s("mine", kind="ue", sd_it_per_s=2.0, sd_model="sd15", power_w=5.0,
                                       idle_power_w=0.5, source="test")
    assert p.flops_per_s == 2.0 * CFG_STEP_FLOPS["sd15"]
    with pytest.raises(ComputeError, match=r"'device\[mine\].sd_it_per_s' must be > 0 \(got 0\)"):
        DeviceProfile.from_sd_it_per_s("mine", kind="ue", sd_it_per_s=0, sd_model="sd15", power_w=5.0,
                                       idle_power_w=0.5, source="test")
