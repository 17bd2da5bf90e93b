"""The user model (workload.satisfaction_threshold): results below the threshold are asked again."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from meg_gym.config import ConfigError, load_scenario
from meg_gym.core import Core

SC = dict(backend="profiled", num_es=2, channel={"kind": "awgn", "snr_db": 5.0}, es=[{"load": 0.3}])


def _pair(threshold, max_attempts=3, ues=3, **kw):
    """A core with the user model and one without, on the same scenario otherwise."""
    base = load_scenario("default", **SC, **kw)
    on = Core(load_scenario(base, workload={"satisfaction_threshold": threshold, "max_attempts": max_attempts}),
              ues=ues)
    return on, Core(base, system=on.system, table=on.table, ues=ues)


def _step(core, placement):
    return core.step(np.full((1, core.ues), placement), np.full((1, core.ues), 0.5))


def test_off_by_default_one_attempt_and_the_same_results():
    on, off = _pair(None)
    on.reset(2)
    off.reset(2)
    for _ in range(5):
        a, b = _step(on, 1), _step(off, 1)
        assert (a.attempts == 1).all() and np.array_equal(a.reward, b.reward)


def test_a_threshold_no_result_meets_takes_every_attempt_and_counts_all_of_them(monkeypatch):
    on, off = _pair(1.0, max_attempts=3)  # no draw reaches quality 1 here
    on.reset(4)
    off.reset(4)
    for core in (on, off):  # the clock stays (the queues are read before they drain)
        monkeypatch.setattr(core, "_advance", lambda: None)
    pl = on.placement_index("full_es", (0,))
    # each attempt takes at least the request's time on idle ESs at its bandwidth (3 UEs asking half the cell: 1/3)
    idle_s = on.idle_timing(1 / 3)[0, :, pl, 0]
    a, b = _step(on, pl), _step(off, pl)
    assert (a.attempts == 3).all()
    assert np.array_equal(a.uplink_bits, 3 * b.uplink_bits) and np.array_equal(a.downlink_bits, 3 * b.downlink_bits)
    # the response time is to the last result: three generations, each after the one before
    assert (a.latency_s[0] >= 3 * idle_s * (1 - 1e-9)).all() and (b.latency_s[0] < 3 * idle_s).any()
    assert (a.latency_s > b.latency_s).all()
    assert (a.energy_j > 2.5 * b.energy_j).all()
    assert (on.energy_j == a.energy_j).all()  # the UE's energy so far (the observation's) counts every attempt
    # the ES queue holds the repeats' work too: from now, past the last result's start
    assert on.queues.v[0, 0] > off.queues.v[0, 0] and on.queues.v[0, 1] == off.queues.v[0, 1]


def test_retries_stop_at_the_first_satisfying_result():
    on, off = _pair(0.7, max_attempts=4, ues=8)
    on.reset(9)
    off.reset(9)
    seen_retry = seen_first = False
    for _ in range(10):
        a, b = _step(on, 1), _step(off, 1)
        att, q = a.attempts[0], a.quality[0]
        assert ((q >= 0.7) | (att == 4)).all()  # satisfied, or out of attempts
        first = att == 1
        # a request satisfied the first time is the request without the user model
        assert np.array_equal(a.quality[0][first], b.quality[0][first])
        seen_first |= first.any()
        seen_retry |= (att > 1).any()
        if first.all():
            assert np.array_equal(a.latency_s, b.latency_s)
        on_states = on.queues.v.copy()
        off.queues.v[:], off.now_s[:] = on_states, on.now_s  # keep the two worlds' queues equal
    assert seen_first and seen_retry


def _two_or_satisfied(attempts, quality):
    """max_attempts 2 at threshold 1: a second attempt unless the first draw reached quality 1 (the table's clip)."""
    attempts, quality = np.asarray(attempts), np.asarray(quality)
    return bool(((attempts == 2) | ((attempts == 1) & (quality >= 1.0))).all() and (attempts == 2).any())


def test_attempts_in_every_view():
    kw = dict(config="case_study", workload={"satisfaction_threshold": 1.0, "max_attempts": 2})
    env = gym.make("MEG/SingleES-v1", **kw)
    env.reset(seed=0)
    info = env.step(env.action_space.sample())[4]
    assert _two_or_satisfied([info["attempts"]], [info["quality"]])
    vec = gym.make_vec("MEG/SingleES-v1", num_envs=3, vectorization_mode="vector_entry_point", **kw)
    vec.reset(seed=0)
    info = vec.step(vec.action_space.sample())[4]
    assert _two_or_satisfied(info["attempts"], info["quality"])
    from envs import multi_ue_v1

    par = multi_ue_v1.parallel_env(num_ues=2, backend="profiled", **kw)
    par.reset(seed=0)
    _, _, _, _, infos = par.step({a: par.action_space(a).sample() for a in par.agents})
    assert _two_or_satisfied([i["attempts"] for i in infos.values()], [i["quality"] for i in infos.values()])


def test_user_model_config_errors():
    with pytest.raises(ConfigError, match=r"'workload.satisfaction_threshold' must be <= 1 \(got 1.5\)"):
        load_scenario("default", backend="profiled", workload={"satisfaction_threshold": 1.5})
    with pytest.raises(ConfigError, match=r"'workload.max_attempts' must be in \[1, 100\] \(got 0\)"):
        load_scenario("default", backend="profiled", workload={"max_attempts": 0})
    with pytest.raises(ConfigError, match=r"'workload.satisfaction_threshold' needs backend 'profiled'"):
        load_scenario("default", backend="live", workload={"satisfaction_threshold": 0.5})
