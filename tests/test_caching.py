"""Model caching (meg_gym.caching): capacity, the LRU / LFU / LC rules, misses, the env and its baselines."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import envs  # noqa: F401  (registers MEG/ModelCaching-v0)
from agents.baselines import CACHE_POLICIES, PolicyError, make_policy
from meg_gym.caching import ModelCache, load_catalogue
from meg_gym.config import CachingConfig, ConfigError, load_scenario
from meg_gym.core import Core

# three SD-scale models of which any two fit 5 GB, never all three (2.13 + 2.61 + 2.13 = 6.87 GB)
TWO_OF_THREE = CachingConfig(models=("sd15", "sd21", "sd15_inpainting"), es_memory_gb=5.0, rule="lru")
SD15, SD21, INPAINT = 0, 1, 2


def _ask(cache, rule, model, t):
    """One request for ``model`` at ES 0 of copy 0 at time ``t``: the rule's sets applied, then served."""
    models, uses, now = np.array([[model]]), np.array([[[True]]]), np.array([float(t)])
    cache.apply(cache.rule_action(rule, models, uses, np.zeros(1, np.int64), now), now, models, uses)
    return cache.serve(models, uses, np.zeros(1, np.int64), now)


def _names(cache):
    return {cache.names[j] for j in range(cache.k) if cache.mask[0, 0] >> j & 1}


def test_lru_evicts_the_least_recently_used():
    cache = ModelCache(TWO_OF_THREE, copies=1, num_es=1)
    for t, m in enumerate((SD15, SD15, SD21)):  # sd15 used more often, sd21 more recently
        _ask(cache, "lru", m, t)
    _ask(cache, "lru", INPAINT, 3)
    assert _names(cache) == {"sd21", "sd15_inpainting"}  # sd15 (last asked at t=1) went


def test_lfu_evicts_the_least_frequently_used():
    cache = ModelCache(TWO_OF_THREE, copies=1, num_es=1)
    for t, m in enumerate((SD15, SD15, SD21)):
        _ask(cache, "lfu", m, t)
    _ask(cache, "lfu", INPAINT, 3)
    assert _names(cache) == {"sd15", "sd15_inpainting"}  # sd21 (asked once) went


def test_lc_evicts_the_model_with_least_contexts():
    # LC: each request adds a context that halves every half-life: sd15's two old ones (t=0, 1)
    # weigh less than sd21's one fresh one (t=200) after many half-lives
    cache = ModelCache(TWO_OF_THREE.model_copy(update={"context_half_life_s": 10.0}), copies=1, num_es=1)
    for t, m in ((0, SD15), (1, SD15), (200, SD21)):
        _ask(cache, "lc", m, t)
    _ask(cache, "lc", INPAINT, 201)
    assert _names(cache) == {"sd21", "sd15_inpainting"}
    ctx = cache.contexts_now(np.array([201.0]))[0, 0]
    assert ctx[SD21] == pytest.approx(0.5 ** 0.1) and ctx[SD15] < 1e-5


def test_a_hit_needs_the_load_done():
    cache = ModelCache(TWO_OF_THREE, copies=1, num_es=1)
    load_s = cache.load_s[SD15]
    assert load_s == pytest.approx(2.13 * 8e9 / TWO_OF_THREE.backhaul_bps)
    assert not _ask(cache, "lru", SD15, 0.0).hit[0, 0]  # admitted: loading until load_s
    out = _ask(cache, "lru", SD15, load_s / 2)
    assert not out.hit[0, 0] and out.extra_s[0, 0] == pytest.approx(load_s / 2)  # on_miss wait: the rest of it
    assert _ask(cache, "lru", SD15, load_s).hit[0, 0]


def test_the_cache_never_holds_more_than_its_capacity():
    env = gym.make("MEG/ModelCaching-v0")
    u = env.unwrapped
    cap = u.scenario.caching.es_memory_gb
    cat = load_catalogue()
    assert all(sum(cat[n].memory_gb for n in s) <= cap for s in u.cache_sets)
    env.reset(seed=3)
    env.action_space.seed(3)
    most = 0.0
    for _ in range(150):  # random cache actions: every set an ES holds fits
        env.step(env.action_space.sample())
        gb = [u.world.cache.mask_gb(int(m)) for m in u.world.cache.mask[0]]
        assert max(gb) <= cap
        most = max(most, *gb)
    assert most > 0.8 * cap  # the test saw nearly full caches
    core = Core("model_caching", copies=3, ues=2)  # the rule's sets, in a batched core too
    core.reset(5)
    for _ in range(100):
        core.step(np.zeros((3, 2), np.int64), np.ones((3, 2)))
        assert max(core.cache.mask_gb(int(m)) for m in core.cache.mask.ravel()) <= cap


def test_a_cache_action_out_of_range_raises_and_changes_nothing():
    env = gym.make("MEG/ModelCaching-v0")
    env.reset(seed=0)
    n_sets = len(env.unwrapped.cache_sets)
    before = env.unwrapped.world.cache.mask.copy()
    with pytest.raises(envs.InvalidAction, match=rf"action\[2\] must be in \[0, {n_sets - 1}\]"):
        env.step(np.array([0, 1, n_sets, 0]))
    with pytest.raises(ValueError, match=r"'cache\[0, 1\]' must be a cache set"):
        env.unwrapped.world.step([[0]], [[1.0]], cache=[[0, -1]])
    assert (env.unwrapped.world.cache.mask == before).all() and env.unwrapped.world.served[0] == 0


def _with_caching(**caching):
    """The shipped scenario's world with and without caching (the same streams otherwise)."""
    sc = load_scenario("model_caching", caching={"rule": "none", **caching})
    return Core(sc), Core(load_scenario(sc, caching=None))


@pytest.mark.parametrize("on_miss", ["cloud", "wait"])
def test_a_miss_costs_the_cloud_or_the_load(on_miss):
    cached, plain = _with_caching(on_miss=on_miss)
    cached.reset(7)
    plain.reset(7)
    model, deadline_s = int(cached.models[0, 0]), float(cached.deadline_s[0, 0])
    a, b = cached.step([[0]], [[1.0]]), plain.step([[0]], [[1.0]])
    extra = cached.scenario.caching.cloud_latency_s if on_miss == "cloud" else cached.cache.load_s[model]
    assert not a.cache_hit[0, 0]
    assert a.latency_s[0, 0] == pytest.approx(b.latency_s[0, 0] + extra)
    assert a.quality[0, 0] == b.quality[0, 0]
    assert a.deadline_missed[0, 0] == (a.latency_s[0, 0] > deadline_s)  # the deadline sees the wait
    if a.deadline_missed[0, 0] and not b.deadline_missed[0, 0]:
        assert a.terms["deadline"][0, 0] == -1.0 and a.reward[0, 0] < b.reward[0, 0]


def test_fallback_serves_a_loaded_model_at_the_quality_ratio():
    cached, plain = _with_caching(on_miss="fallback")
    cat = load_catalogue()
    names = cached.cache.names
    for seed in range(20):  # a seed whose first request asks for something other than SD 1.5
        cached.reset(seed)
        if names[int(cached.models[0, 0])] != "sd15":
            break
    plain.reset(seed)
    asked = names[int(cached.models[0, 0])]
    j = names.index("sd15")
    cached.cache.mask[0, :] = 1 << j  # both ESs hold SD 1.5, loaded
    a, b = cached.step([[0]], [[1.0]]), plain.step([[0]], [[1.0]])
    ratio = min(1.0, cat["sd15"].quality / cat[asked].quality)
    assert not a.cache_hit[0, 0] and a.quality[0, 0] == pytest.approx(b.quality[0, 0] * ratio)
    assert a.latency_s[0, 0] == pytest.approx(b.latency_s[0, 0])


def test_same_seed_same_episode():
    def run(seed):
        env = gym.make("MEG/ModelCaching-v0")
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(11)
        out = [obs]
        for _ in range(40):
            obs, r, _, _, info = env.step(env.action_space.sample())
            out += [obs, np.array([r, info["cache_hit"], info["latency_s"], info["quality"]], dtype=np.float64)]
        return out

    a, b, c = run(4), run(4), run(5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_check_env_passes():
    check_env(gym.make("MEG/ModelCaching-v0").unwrapped, skip_render_check=True)


def test_zipf_requests():
    core = Core("model_caching", copies=50, ues=1)
    core.reset(0)
    seen = []
    for _ in range(200):
        seen.append(core.models.ravel().copy())
        core.step(np.zeros((50, 1), np.int64), np.ones((50, 1)))
    seen = np.concatenate(seen)
    share = np.bincount(seen, minlength=core.cache.k) / len(seen)
    assert np.abs(share - core.cache.popularity).max() < 0.01  # 10 000 draws: 3 standard errors < 0.015


def test_caching_config_errors():
    with pytest.raises(ConfigError, match=r"'caching.models\[1\]' must be one of \[.*'sdxl'.*\] \(got 'sd99'\)"):
        load_scenario("model_caching", caching={"models": ["sd15", "sd99"]})
    with pytest.raises(ConfigError, match=r"'caching.models\[0\]' must fit in es_memory_gb=4.0 \(got 'sdxl'"):
        load_scenario("model_caching", caching={"models": ["sdxl"], "es_memory_gb": 4.0})
    with pytest.raises(ConfigError, match=r"'caching.on_miss' must be one of \['wait', 'cloud', 'fallback'\]"):
        load_scenario("model_caching", caching={"on_miss": "drop"})
    with pytest.raises(ConfigError, match=r"'protocols' must hold only protocols that run on an ES .*full_ue"):
        load_scenario("model_caching", protocols=["full_es", "full_ue"])
    with pytest.raises(ValueError, match="'caching' must be set"):
        gym.make("MEG/ModelCaching-v0", caching=None)
    with pytest.raises(ValueError, match=r"'action_type' must be one of \['multidiscrete'\] .*\(got 'discrete'\)"):
        gym.make("MEG/ModelCaching-v0", action_type="discrete")


def test_views_report_cache_hits():
    vec = gym.make_vec("MEG/SingleES-v1", num_envs=2, vectorization_mode="vector_entry_point",
                       config="model_caching", protocols=["full_es"])
    vec.reset(seed=0)
    _, _, _, _, info = vec.step(np.zeros((2, 2), np.int64))
    assert info["cache_hit"].shape == (2,) and info["attempts"].tolist() == [1, 1]
    from envs import multi_ue_v1

    par = multi_ue_v1.parallel_env(config="model_caching", num_ues=2)
    par.reset(seed=0)
    _, _, _, _, infos = par.step({a: np.array([0, 1]) for a in par.agents})
    assert all("cache_hit" in i for i in infos.values())


@pytest.mark.parametrize("name", CACHE_POLICIES)
def test_cache_baselines_act_in_the_env(name):
    env = gym.make("MEG/ModelCaching-v0")
    policy = make_policy(name, env)
    obs, _ = env.reset(seed=1)
    hits = []
    for _ in range(30):
        obs, _, _, _, info = env.step(policy.predict(obs)[0])
        hits.append(info["cache_hit"])
    assert (sum(hits) == 0) == (name == "no_cache")
    with pytest.raises(PolicyError, match="needs MEG/ModelCaching"):
        make_policy(name, gym.make("MEG/SingleES-v1"))


def test_per_es_agents_pass_pettingzoo_api_and_seed_tests():
    from pettingzoo.test import parallel_api_test, parallel_seed_test

    from envs import model_caching_v0

    parallel_api_test(model_caching_v0.parallel_env(num_ues=3), num_cycles=30)
    parallel_seed_test(lambda: model_caching_v0.parallel_env(num_ues=3))


def test_per_es_agents_hold_the_sets_they_pick():
    from envs import model_caching_v0

    par = model_caching_v0.parallel_env(num_ues=4)
    par.reset(seed=2)
    sdxl_only = par.cache_sets.index(("sdxl",))
    two_sd = par.cache_sets.index(("sd15", "sd21"))
    _, _, _, _, infos = par.step({"es_0": sdxl_only, "es_1": two_sd})
    assert infos["es_0"]["cache_set"] == ("sdxl",) and infos["es_1"]["cache_set"] == ("sd15", "sd21")
    assert sum(i["requests"] for i in infos.values()) == 4
    held = par.world.cache.held()[0]
    names = par.world.cache.names
    assert {names[j] for j in np.flatnonzero(held[0])} == {"sdxl"}
    with pytest.raises(envs.InvalidAction, match=r"agent 'es_1': action must be a cache set in \[0, 33\]"):
        par.step({"es_0": 0, "es_1": 34})
