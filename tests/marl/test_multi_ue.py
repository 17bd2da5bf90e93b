"""multi_ue_v1 and es_coordination_v1: PettingZoo's API, seed and max-cycles tests, determinism, bad actions."""

import numpy as np
import pytest
from pettingzoo.test import api_test, max_cycles_test, parallel_api_test, parallel_seed_test, render_test, state_test

import envs
from envs import InvalidAction

MODULES = {"multi_ue_v1": envs.multi_ue_v1, "es_coordination_v1": envs.es_coordination_v1}
# costs counted at the tiny model's own geometry: the same code paths, without the minutes that
# FLOP-counting SD-1.5's UNet takes on first use in a process
FAST = {"cost_model": None}


class _Fast:
    """A module-like object whose factories add FAST (pettingzoo's max_cycles_test takes a module)."""

    def __init__(self, mod):
        self.mod = mod

    def parallel_env(self, **kw):
        return self.mod.parallel_env(**FAST, **kw)

    def env(self, **kw):
        return self.mod.env(**FAST, **kw)


@pytest.mark.parametrize("name", MODULES)
def test_parallel_api(name):
    env = MODULES[name].parallel_env(max_cycles=30, **FAST)
    parallel_api_test(env, num_cycles=40)


@pytest.mark.parametrize("name", MODULES)
def test_parallel_seed(name):
    parallel_seed_test(lambda: MODULES[name].parallel_env(max_cycles=20, **FAST), num_cycles=20)


@pytest.mark.parametrize("name", MODULES)
def test_aec_api(name):
    api_test(MODULES[name].env(max_cycles=15, **FAST), num_cycles=20)


@pytest.mark.parametrize("name", MODULES)
def test_state_and_render_tests(name):
    """PettingZoo's own state_test (skrl's MAPPO needs state()) and render_test (human mode included)."""
    state_test(MODULES[name].env(max_cycles=15, **FAST), MODULES[name].parallel_env(max_cycles=15, **FAST))
    render_test(lambda render_mode=None: MODULES[name].env(max_cycles=15, render_mode=render_mode, **FAST))


@pytest.mark.parametrize("name", MODULES)
def test_vector_rewards(name):
    """reward_type="vector": the five reward terms per agent, inside reward_space, their weighted sum the
    scalar reward (same seed, same actions)."""
    scalar = MODULES[name].parallel_env(max_cycles=10, **FAST)
    vector = MODULES[name].parallel_env(max_cycles=10, reward_type="vector", **FAST)
    w = scalar.scenario.reward.weights
    weights = np.array([getattr(w, k) for k in ("quality", "latency", "overhead", "energy", "deadline")])
    scalar.reset(seed=4)
    vector.reset(seed=4)
    for _ in range(5):
        acts = {a: scalar.action_space(a).sample() for a in scalar.agents}
        _, rs, *_ = scalar.step(acts)
        _, rv, *_ = vector.step(acts)
        for a in scalar.possible_agents:
            assert rv[a].shape == (5,) and vector.reward_space.contains(rv[a])
            assert float(weights @ rv[a]) == pytest.approx(rs[a], rel=1e-5, abs=1e-5)


def test_es_coordination_discrete_actions_equal_their_multidiscrete_form():
    md = envs.es_coordination_v1.parallel_env(max_cycles=10, **FAST)
    dd = envs.es_coordination_v1.parallel_env(max_cycles=10, action_type="discrete", **FAST)
    nvec = md.action_space("es_0").nvec
    md.reset(seed=1)
    dd.reset(seed=1)
    for _ in range(4):
        acts = {a: md.action_space(a).sample() for a in md.agents}
        _, r1, *_ = md.step(acts)
        _, r2, *_ = dd.step({a: np.int64(np.ravel_multi_index(tuple(v), tuple(nvec))) for a, v in acts.items()})
        assert r1 == r2
    with pytest.raises(InvalidAction, match=r"integer in \[0, "):
        dd.step({a: np.int64(10**9) for a in dd.agents})


@pytest.mark.parametrize("name", MODULES)
def test_max_cycles(name):
    max_cycles_test(_Fast(MODULES[name]))


@pytest.mark.parametrize("name", MODULES)
def test_observation_space_is_the_same_object(name):
    env = MODULES[name].parallel_env(**FAST)
    for a in env.possible_agents:
        assert env.observation_space(a) is env.observation_space(a)
        assert env.action_space(a) is env.action_space(a)
    with pytest.raises(ValueError, match="'agent' must be one of"):
        env.observation_space("nobody")


def _rollout(env, seed, steps):
    obs, _ = env.reset(seed=seed)
    for a in env.possible_agents:
        env.action_space(a).seed(seed)
    out = [obs]
    for _ in range(steps):
        acts = {a: env.action_space(a).sample() for a in env.agents}
        out.append(env.step(acts))
    return out


@pytest.mark.parametrize("name", MODULES)
def test_same_seed_same_trajectory_other_seed_differs(name):
    make = MODULES[name].parallel_env
    a, b, c = (make(max_cycles=50, **FAST) for _ in range(3))
    ra, rb, rc = _rollout(a, 7, 30), _rollout(b, 7, 30), _rollout(c, 8, 30)
    from pettingzoo.test.seed_test import data_equivalence

    assert data_equivalence(ra, rb)
    assert not data_equivalence(ra, rc)


def test_reset_without_seed_continues_the_seeded_stream():
    a, b = (envs.multi_ue_v1.parallel_env(**FAST) for _ in range(2))
    a.reset(seed=3), b.reset(seed=3)
    oa, _ = a.reset()
    ob, _ = b.reset()
    assert all(np.array_equal(oa[k], ob[k]) for k in oa)


BAD_MULTI_UE = [([99, 0], r"\[0, 30\] x \[0, 2\]"), ([0, 3], r"\[0, 30\] x \[0, 2\]"), ([0.5, 1], "integers"),
                ([0, 0, 0], "2 integers")]


@pytest.mark.parametrize("bad, match", BAD_MULTI_UE)
def test_bad_action_multi_ue_names_agent_and_range_and_changes_nothing(bad, match):
    env = envs.multi_ue_v1.parallel_env(num_ues=3, **FAST)
    env.reset(seed=0)
    w = env.world
    before = (env.epoch, w.now_s.copy(), w.deadline_s.copy(), w.queues.clock.copy(), w.backlog_s().copy())
    acts = {a: np.array([1, 1]) for a in env.agents}
    acts["ue_2"] = np.array(bad)
    with pytest.raises(InvalidAction, match="agent 'ue_2'") as err:
        env.step(acts)
    assert err.match(match)
    after = (env.epoch, w.now_s, w.deadline_s, w.queues.clock.copy(), w.backlog_s())
    assert before[0] == after[0] and np.array_equal(before[1], after[1]) and np.array_equal(before[2], after[2])
    assert np.array_equal(before[3], after[3]) and np.array_equal(before[4], after[4])
    acts["ue_2"] = np.array([1, 1])
    env.step(acts)  # still works
    assert env.epoch == 1


def test_missing_or_unknown_agent_raises():
    env = envs.multi_ue_v1.parallel_env(num_ues=2, **FAST)
    env.reset(seed=0)
    with pytest.raises(InvalidAction, match=r"missing \['ue_1'\]"):
        env.step({"ue_0": np.array([0, 0])})
    with pytest.raises(InvalidAction, match=r"unknown \['ue_9'\]"):
        env.step({"ue_0": np.array([0, 0]), "ue_1": np.array([0, 0]), "ue_9": np.array([0, 0])})


def test_bad_action_es_coordination():
    env = envs.es_coordination_v1.parallel_env(**FAST)
    env.reset(seed=0)
    acts = {a: env.action_space(a).sample() for a in env.agents}
    bad = acts["es_1"].copy()
    bad[0] = 4
    acts["es_1"] = bad
    epoch = env.epoch
    with pytest.raises(InvalidAction, match=r"agent 'es_1'.*mode in \[0, 3\].*share in \[0, 2\]"):
        env.step(acts)
    assert env.epoch == epoch


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"'num_ues' must be an integer in \[1, 4096\]"):
        envs.multi_ue_v1.parallel_env(num_ues=0, **FAST)
    with pytest.raises(ValueError, match="'local_ratio' must be a number in"):
        envs.multi_ue_v1.parallel_env(local_ratio=1.5, **FAST)
    with pytest.raises(ValueError, match="'ue_snr_db' applies to the awgn"):
        envs.multi_ue_v1.parallel_env(ue_snr_db=[0, 10], **FAST)
    with pytest.raises(ValueError, match="'ue_policy' must be one of"):
        envs.es_coordination_v1.parallel_env(ue_policy="greedy", **FAST)
    with pytest.raises(ValueError, match="'ue_protocols' entry 'esuc' needs"):
        envs.es_coordination_v1.parallel_env(protocols=["full_ue", "esuc", "ciag", "uidcg"], ue_protocols=["esuc"],
                                             **FAST)


def test_local_ratio_mixes_own_and_mean_reward():
    kw = dict(num_ues=3, **FAST)
    own = envs.multi_ue_v1.parallel_env(**kw)
    mixed = envs.multi_ue_v1.parallel_env(local_ratio=0.25, **kw)
    own.reset(seed=1), mixed.reset(seed=1)
    acts = {f"ue_{k}": np.array([1 + k, k % 3]) for k in range(3)}
    _, r_own, *_ = own.step(acts)
    _, r_mix, *_ = mixed.step(acts)
    mean = np.mean(list(r_own.values()))
    for a in r_own:
        assert r_mix[a] == pytest.approx(0.25 * r_own[a] + 0.75 * mean)


def test_info_rewards_are_each_agents_reward_terms():
    """info["rewards"] holds every agent's REWARD_TERMS, whose weighted sum is its reward."""
    from meg_gym.core import REWARD_TERMS

    env = envs.multi_ue_v1.parallel_env(num_ues=3, **FAST)
    env.reset(seed=2)
    wts = env.scenario.reward.weights
    _, rewards, _, _, infos = env.step({f"ue_{k}": np.array([1 + k, k % 3]) for k in range(3)})
    for a, info in infos.items():
        terms = info["rewards"]
        assert tuple(terms) == REWARD_TERMS
        assert rewards[a] == pytest.approx(sum(getattr(wts, n) * terms[n] for n in REWARD_TERMS))
        assert terms["deadline"] == (-1.0 if info["deadline_missed"] else 0.0)


def test_render_rgb_array():
    for mod in MODULES.values():
        env = mod.parallel_env(render_mode="rgb_array", **FAST)
        env.reset(seed=0)
        env.step({a: env.action_space(a).sample() for a in env.agents})
        frame = env.render()
        assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


@pytest.mark.slow
@pytest.mark.parametrize("name", MODULES)
def test_live_backend_env_two_steps(name):
    kw = {"num_ues": 2} if name == "multi_ue_v1" else {"num_ues": 2, "max_requests_per_es": 1}
    env = MODULES[name].parallel_env(backend="live", generation={"steps": 4, "ue_steps": 2, "complete_steps": 4},
                                     **kw, **FAST)
    env.reset(seed=0)
    for _ in range(2):
        _, rewards, *_ = env.step({a: env.action_space(a).sample() for a in env.agents})
        assert all(np.isfinite(r) for r in rewards.values())
    assert env.world.live


def test_vector_env_is_copies_of_the_parallel_env():
    """vector_env(N, num_ues=M): N*M agent rows with the parallel env's per-agent spaces; episodes end
    together at max_cycles and restart on the next step; the same mean reward as the parallel env."""
    kw = dict(num_ues=3, max_cycles=20, **FAST)
    par = envs.multi_ue_v1.parallel_env(**kw)
    vec = envs.multi_ue_v1.vector_env(4, **kw)
    assert vec.num_envs == 12 and vec.single_observation_space == par.observation_space("ue_0")
    assert vec.single_action_space == par.action_space("ue_0")
    obs, _ = vec.reset(seed=0)
    assert obs.shape == (12, vec.single_observation_space.shape[0])
    act = np.tile([vec.world.placement_index("ciag", (0,)), 2], (12, 1))
    v_rewards = []
    for t in range(20):
        obs, r, term, trunc, info = vec.step(act)
        assert vec.observation_space.contains(obs) and r.shape == (12,) and not term.any()
        assert trunc.all() == (t == 19) and info["protocol"].tolist() == ["ciag"] * 12
        v_rewards.append(r)
    _, r, _, trunc, _ = vec.step(act)  # the autoreset step
    assert not trunc.any() and (r == 0).all() and vec.world.served.tolist() == [0] * 4
    p_rewards = []
    for seed in range(4):
        par.reset(seed=seed)
        while par.agents:
            _, rew, *_ = par.step({a: act[0] for a in par.agents})
            p_rewards.append(list(rew.values()))
    a, b = np.mean(v_rewards), np.mean(p_rewards)
    se = np.std(v_rewards) / np.sqrt(np.size(v_rewards)) + np.std(p_rewards) / np.sqrt(np.size(p_rewards))
    assert abs(a - b) <= 5 * se + 0.05, (a, b)


@pytest.mark.parametrize("name", MODULES)
def test_aec_rejects_a_bad_action_at_its_turn_and_stays_usable(name):
    aec = MODULES[name].env(max_cycles=5, **FAST)
    aec.reset(seed=0)
    first = aec.agent_selection
    with pytest.raises(InvalidAction, match=f"agent '{first}'"):
        aec.step("not an action")
    assert aec.agent_selection == first  # nothing stored, the same turn
    for agent in aec.agent_iter(3 * len(aec.possible_agents)):
        _, _, term, trunc, _ = aec.last()
        aec.step(None if term or trunc else aec.action_space(agent).sample())
