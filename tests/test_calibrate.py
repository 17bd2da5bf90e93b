"""meg-gym calibrate: a table topped up with more requests equals one swept with them from the start."""

import json

import numpy as np
import pytest

from meg_gym.config import load_scenario
from meg_gym.quality.calibrate import calibrate, check_fidelity
from meg_gym.quality.calibration import load_table
from meg_gym.system import MegSystem

GRID = [0.0, 20.0]


@pytest.fixture(scope="module")
def system():
    return MegSystem(load_scenario("default", generation={"steps": 4, "ue_steps": 2, "complete_steps": 2}))


def _sweep(system, path, requests, protocols=("ciag", "full_ue")):
    return calibrate(system, path, snr_grid_db=GRID, steps_grid=[4], requests=requests, protocols=list(protocols),
                     progress=False)


def test_top_up_equals_a_sweep_with_the_larger_count(system, tmp_path):
    topped = tmp_path / "topped.json"
    _sweep(system, topped, 1)
    before = load_table(topped)
    assert before.meta["requests_per_point"] == {"ciag": 1, "full_ue": 1}
    _sweep(system, topped, 3, protocols=["ciag"])
    direct = tmp_path / "direct.json"
    _sweep(system, direct, 3, protocols=["ciag"])
    a, b = load_table(topped), load_table(direct)
    assert a.meta["requests_per_point"] == {"ciag": 3, "full_ue": 1}  # full_ue left out of the sweep: kept
    assert a.tables["full_ue"] == before.tables["full_ue"]
    for metric in ("ssim", "quality", "fidelity"):
        for stat in ("mean", "std"):
            np.testing.assert_allclose(a.tables["ciag"][metric][stat], b.tables["ciag"][metric][stat],
                                       atol=1e-9, err_msg=f"ciag.{metric}.{stat}")
    # the three requests really differ: the spread is measured, not a copy of one request
    assert max(np.ravel(b.tables["ciag"]["ssim"]["std"])) > 0
    assert not (tmp_path / "topped.partial.json").exists()


def test_unknown_protocol_is_named(system, tmp_path):
    with pytest.raises(ValueError, match="not calibratable; allowed"):
        _sweep(system, tmp_path / "t.json", 1, protocols=["ciag", "teleport"])


def test_a_table_with_other_settings_is_not_topped_up(system, tmp_path):
    path = tmp_path / "t.json"
    _sweep(system, path, 1)
    data = json.loads(path.read_text())
    data["settings"]["strength"] = 0.123
    path.write_text(json.dumps(data))
    _sweep(system, path, 1)  # served anew: the stored points were measured with other settings
    assert load_table(path).settings["strength"] != 0.123


def test_check_reports_error_and_sampling_floor(system, tmp_path):
    path = tmp_path / "t.json"
    _sweep(system, path, 2)
    out = check_fidelity(system, load_table(path), points=2, requests=2, progress=False)
    assert set(out) >= {"ssim_mae", "quality_mae", "ssim_sampling_floor"}
    assert 0.0 <= out["ssim_sampling_floor"] and 0.0 <= out["ssim_mae"] <= 1.0


def _table_without_meta(path):
    data = json.loads(path.read_text())
    data.pop("meta")
    return data


@pytest.mark.slow
def test_ray_sweep_equals_the_serial_one_and_resumes_a_serial_partial(system, tmp_path, monkeypatch):
    pytest.importorskip("ray")
    import ray

    import meg_gym.quality.calibrate as cal

    serial = tmp_path / "serial.json"
    _sweep(system, serial, 2)
    distributed = tmp_path / "ray.json"
    calibrate(system, distributed, snr_grid_db=GRID, steps_grid=[4], requests=2, protocols=["ciag", "full_ue"],
              progress=False, ray_address="local", workers=2)
    assert _table_without_meta(distributed) == _table_without_meta(serial)  # identical JSON apart from meta

    # a serial sweep stopped after two points, resumed on Ray: the missing points only, the same table
    real, calls = cal._serve_job, []

    def stop_after_two(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args[2:])
        return real(*args, **kwargs)

    monkeypatch.setattr(cal, "_serve_job", stop_after_two)
    resumed = tmp_path / "resumed.json"
    with pytest.raises(KeyboardInterrupt):
        _sweep(system, resumed, 2)
    partial = json.loads((tmp_path / "resumed.partial.json").read_text())
    assert len(partial["points"]) == 2
    monkeypatch.setattr(cal, "_serve_job", real)
    calibrate(system, resumed, snr_grid_db=GRID, steps_grid=[4], requests=2, protocols=["ciag", "full_ue"],
              progress=False, ray_address="local", workers=2)
    assert _table_without_meta(resumed) == _table_without_meta(serial)
    assert not (tmp_path / "resumed.partial.json").exists()
    ray.shutdown()


def test_workers_need_ray(system, tmp_path):
    with pytest.raises(ValueError, match="'workers' needs 'ray_address'"):
        calibrate(system, tmp_path / "t.json", snr_grid_db=GRID, steps_grid=[4], requests=1, protocols=["ciag"],
                  progress=False, workers=2)
