"""Digital twins (scenario 'digital_twin'): periodic requests and each twin's age of information."""

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401
from meg_gym.config import ConfigError, load_scenario
from meg_gym.core import Core


def _core(ues=4, **kw):
    return Core(load_scenario("digital_twin", **kw), ues=ues)


def _step(core, protocol, es=(0,), share=1.0):
    p = core.placement_index(protocol, es)
    return core.step(np.full((1, core.ues), p), np.full((1, core.ues), share))


def test_requests_come_every_period_and_twins_start_one_period_old():
    core = _core()
    core.reset(0)
    period = core.twin.period_s
    assert (core.age_s == period).all()
    for k in range(3):
        _step(core, "full_es")
        assert core.now_s[0] == pytest.approx((k + 1) * period)


def test_aoi_resets_on_delivery():
    core = _core(ues=1, digital_twin={"period_s": 3.0, "min_quality": 0.0})
    core.reset(1)
    a0 = core.age_s.copy()
    res = _step(core, "full_es")
    assert not res.outage.any() and (res.latency_s <= 3.0).all()
    # the mean of the sawtooth: a0 L / T + T / 2; the twin's age at the next request is the period
    assert np.allclose(res.aoi_s, a0 * res.latency_s / 3.0 + 1.5)
    assert (core.age_s == 3.0).all()
    assert np.allclose(res.terms["aoi"], -res.aoi_s / 3.0)


def test_aoi_grows_while_nothing_is_delivered():
    # Full UE takes 2.9 s on the phone preset: never within a 1 s period
    core = _core(ues=2, digital_twin={"period_s": 1.0}, workload={"deadline_s": [1.0, 1.0]})
    core.reset(2)
    for _ in range(4):
        a0 = core.age_s.copy()
        res = _step(core, "full_ue")
        assert (res.latency_s > 1.0).all()
        assert np.allclose(res.aoi_s, a0 + 0.5) and np.allclose(core.age_s, a0 + 1.0)
    assert np.allclose(core.age_s, 5.0)
    res = _step(core, "full_es")  # an update in time brings the age back, one that is not leaves it growing
    ok = ~res.outage & (res.latency_s <= 1.0) & (res.quality >= core.twin.min_quality)
    assert np.array_equal(core.age_s, np.where(ok, 1.0, 6.0))


def test_an_update_below_min_quality_does_not_count():
    core = _core(ues=8, digital_twin={"period_s": 3.0, "min_quality": 0.9})
    core.reset(3)
    res = _step(core, "full_es")
    low = res.quality < 0.9
    assert low.any() and (~low).any()  # this seed: some results below the bar, some above
    timely = ~res.outage & (res.latency_s <= 3.0)
    assert np.array_equal(core.age_s, np.where(timely & ~low, 3.0, 6.0))


def test_the_observation_holds_the_age():
    env = gym.make("MEG/SingleES-v1", config="digital_twin")
    from gymnasium.utils.env_checker import check_env

    check_env(env.unwrapped)
    obs, info = env.reset(seed=0)
    assert obs[-1] == 1.0 and np.isnan(info["aoi_s"])
    w = env.unwrapped.world
    obs, _, _, _, info = env.step(env.unwrapped.codec.encode(w.placement_index("full_ue", (0,)), 2))
    assert obs[-1] == pytest.approx(w.age_s[0, 0] / w.twin.period_s) and info["aoi_s"] > 0
    assert "aoi" in info["rewards"]


def test_many_ues_share_the_ess():
    from pettingzoo.test import parallel_api_test

    par = envs.multi_ue_v1.parallel_env(config="digital_twin", num_ues=8)
    parallel_api_test(par, num_cycles=20)
    obs, _ = par.reset(seed=4)
    assert len(par.agents) == 8
    _, _, _, _, infos = par.step({a: par.action_space(a).sample() for a in par.agents})
    assert all(i["aoi_s"] >= 1.5 for i in infos.values())  # at least half a period
    vec = envs.multi_ue_v1.vector_env(2, config="digital_twin", num_ues=8)
    vec.reset(seed=0)
    _, _, _, _, info = vec.step(vec.action_space.sample())
    assert info["aoi_s"].shape == (16,)


def test_config_errors_are_one_line():
    for kw, match in [({"digital_twin": {"period_s": 0.0}}, "digital_twin.period_s' must be in"),
                      ({"digital_twin": {"min_quality": 2.0}}, "digital_twin.min_quality'"),
                      ({"digital_twin": {"every": 2}}, "digital_twin.every' is not a known field")]:
        with pytest.raises(ConfigError, match=match) as err:
            load_scenario("digital_twin", **kw)
        assert "\n" not in str(err.value)
