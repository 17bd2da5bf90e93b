"""Bad input never becomes a traceback, a wrong number or code execution (issue 21).

One test per class of hostile input, parametrised over its cases: values that pass a naive
check and then break the physics, combinatorial sizes, oversized inputs in error messages,
corrupted or crafted run folders, and the CLI's one-line errors.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from meg_gym.config import ConfigError, load_scenario
from meg_gym.core import Core, obs_size

PROFILED = {"backend": "profiled"}

# -- values that passed validation and then broke the physics ----------------------------
# (overrides, the field the one-line error must name)
EXTREME = [
    ({"channel": {"kind": "umi"}, "ue": {"tx_power_dbm": 1e308}}, "ue.tx_power_dbm"),
    ({"channel": {"kind": "umi"}, "es": [{"tx_power_dbm": 1e308}]}, "es[0].tx_power_dbm"),
    ({"channel": {"kind": "umi", "fading": "rician", "rician_k_db": 1e308}}, "channel.rician_k_db"),
    ({"channel": {"snr_db": -1e308}}, "channel.snr_db"),
    ({"channel": {"snr_db": 1e308}}, "channel.snr_db"),
    ({"channel": {"snr_db": 1e5}}, "channel.snr_db"),
    ({"channel": {"snr_range_db": [-1e308, 0.0]}}, "channel.snr_range_db[0]"),
    ({"workload": {"latency_scale_s": 1e-320}}, "workload.latency_scale_s"),
    # deadlines of 20 s observed in units of 1 ms pass the observation bound (1e4)
    ({"workload": {"latency_scale_s": 1e-3, "deadline_s": [0.3, 20.0]}}, "workload.latency_scale_s"),
    ({"ue": {"flops_per_s": 1e308}}, "ue.flops_per_s"),
    ({"ue": {"flops_per_s": 1e-300}}, "ue.flops_per_s"),
    ({"es": [{"flops_per_s": 1e-300}]}, "es[0].flops_per_s"),
    ({"bandwidth_hz": 1e-300}, "bandwidth_hz"),
    ({"bandwidth_hz": 1e300}, "bandwidth_hz"),
    ({"bandwidth_hz": 2e3, "bandwidth_shares": [0.25, 1.0]}, "bandwidth_shares"),
    ({"channel": {"kind": "umi", "carrier_hz": 1e308}}, "channel.carrier_hz"),
    ({"channel": {"kind": "umi", "noise_figure_db": 1e308}}, "channel.noise_figure_db"),
    ({"channel": {"kind": "umi"}, "ue": {"position_m": [1e308, 0.0]}}, "ue.position_m[0]"),
    ({"channel": {"kind": "umi"}, "ue": {"speed_mps": 1e308}}, "ue.speed_mps"),
    ({"workload": {"arrival_rate_hz": 1e-308}}, "workload.arrival_rate_hz"),
    ({"workload": {"arrival_rate_hz": 1e308}}, "workload.arrival_rate_hz"),
    ({"workload": {"deadline_s": [1e308, 1e308]}}, "workload.deadline_s[0]"),
    ({"workload": {"requests_per_episode": 10**30}}, "workload.requests_per_episode"),
    ({"reward": {"weights": {"latency": 1e308}}}, "reward.weights.latency"),
    ({"ue": {"power_w": 1e308}}, "ue.power_w"),
    ({"seed": 10**30}, "seed"),
    ({"generation": {"steps": 10**9}}, "generation.steps"),
    ({"transmission": {"max_retransmissions": 10**9}}, "transmission.max_retransmissions"),
    # within each field's range, but the combination breaks a derived quantity (checked when the core is built)
    ({"es": [{"flops_per_s": 1e6}]}, "es[0].flops_per_s"),  # a Full-ES generation of hours: latency term
    ({"es": [{"flops_per_s": 1e17}]}, "es[0].flops_per_s"),  # millions of background jobs per request
    ({"workload": {"arrival_rate_hz": 1e-3}}, "workload.arrival_rate_hz"),  # the same from rare requests
    ({"channel": {"kind": "umi", "carrier_hz": 100e9}, "ue": {"tx_power_dbm": -40.0, "position_m": [5e3, 5e3]},
      "es": [{"position_m": [-5e3, -5e3]}, {"position_m": [-4e3, -5e3]}]}, "ue.position_m"),  # no usable link
]


@pytest.mark.parametrize(("overrides", "field"), EXTREME, ids=[f"{f}:{i}" for i, (_, f) in enumerate(EXTREME)])
def test_extreme_values_are_one_line_errors_naming_the_field(overrides, field):
    with pytest.raises(ConfigError) as info:
        Core(load_scenario(None, **PROFILED, **overrides))
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 600, msg
    assert f"'{field}'" in msg, msg


# the ends of every range that a scenario can reach: they build, and an episode of random
# actions keeps rewards finite and observations inside the env's observation space
EDGES = [
    {"ue": {"flops_per_s": 1e17}},
    {"ue": {"flops_per_s": 1e6}},
    {"ue": {"power_w": 1e-3}},
    {"bandwidth_hz": 4e3},
    {"bandwidth_hz": 2e9},
    {"channel": {"snr_db": -50.0}},
    {"channel": {"snr_db": 100.0}},
    {"workload": {"latency_scale_s": 1e-3, "deadline_s": [1e-3, 1e-3]}},
    {"workload": {"latency_scale_s": 3600.0, "deadline_s": [3600.0, 3600.0]}},
    {"workload": {"arrival_rate_hz": 1e4}},
    {"reward": {"weights": {"latency": 1e6}}},
    {"es": [{"load": 0.999}]},
    {"channel": {"kind": "umi"}, "ue": {"tx_power_dbm": 33.0}, "es": [{"tx_power_dbm": 60.0}]},
    {"channel": {"kind": "uma", "fading": "rician", "rician_k_db": 40.0}, "ue": {"speed_mps": 140.0}},
]


@pytest.mark.parametrize("overrides", EDGES, ids=[str(i) for i in range(len(EDGES))])
def test_range_edges_keep_rewards_finite_and_observations_in_bounds(overrides):
    from envs.common import obs_bounds

    core = Core(load_scenario(None, **PROFILED, **overrides))
    core.reset(seed=0)
    low, high = obs_bounds(core.num_es)
    obs = np.zeros((1, 1, obs_size(core.num_es)), dtype=np.float32)
    rng = np.random.default_rng(0)
    for _ in range(100):
        step = core.step(rng.integers(len(core.placements), size=(1, 1)), rng.choice([0.25, 1.0], size=(1, 1)))
        core.observe(obs)
        assert np.all(np.isfinite(step.reward)), step.reward
        assert all(np.all(np.abs(t) <= 1e4) for t in step.terms.values()), step.terms
        assert np.all(obs >= low) and np.all(obs <= high), obs


# -- sizes that grow combinatorially: refused before anything is allocated ----------------
SIZES = [
    ({"num_es": 50}, {}, "num_es"),
    ({"num_es": 10_000}, {}, "num_es"),
    ({"num_es": 20}, {}, "max_es_per_request"),  # 2**20 ES sets of every multi-ES protocol
    ({"num_es": 64}, {"max_es_per_request": 3}, "max_es_per_request"),
    ({}, {"ues": 10**9}, "num_ues"),
    ({}, {"copies": 10**9}, "copies"),
    ({}, {"copies": 2**12, "ues": 2**12}, "copies"),
]


@pytest.mark.parametrize(("scenario", "kwargs", "field"), SIZES, ids=[f"{s[2]}:{i}" for i, s in enumerate(SIZES)])
def test_combinatorial_sizes_are_refused_quickly(scenario, kwargs, field):
    t0 = time.perf_counter()
    with pytest.raises(ValueError) as info:
        Core(load_scenario(None, **PROFILED, **scenario), **kwargs)
    assert time.perf_counter() - t0 < 5.0
    msg = str(info.value)
    assert "\n" not in msg and f"'{field}'" in msg, msg


# -- an oversized input only ever shows a short excerpt in an error ----------------------
def _bomb(levels: int = 9) -> str:
    """A billion laughs in flow style: 9 levels of 9 references to the level below (9**9 leaves)."""
    text, name = "&a0 [x, x, x, x, x, x, x, x, x]", "a0"
    for k in range(1, levels):
        text, name = f"&a{k} [{text}, {', '.join(['*' + name] * 8)}]", f"a{k}"
    return text


@pytest.mark.parametrize("key", ["name", "protocols", "es", "channel", "num_es", "model", "ue", "bandwidth_shares"])
def test_yaml_bomb_error_shows_a_short_excerpt(tmp_path, key):
    path = tmp_path / "bomb.yaml"
    path.write_text(f"{key}: {_bomb()}\n")
    t0 = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        load_scenario(path)
    assert time.perf_counter() - t0 < 5.0
    msg = str(info.value)
    assert len(msg) < 400 and f"'{key}" in msg, msg[:400]
