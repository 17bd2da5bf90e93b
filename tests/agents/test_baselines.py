"""Baselines: every one runs an episode on every registered id; SB3's predict contract; errors."""

import copy

import gymnasium as gym
import numpy as np
import pytest

import envs
from agents.baselines import PolicyError, make_policy, policy_names
from tests.agents.conftest import LIVE_FAST, SHORT

NAMES = ["random", "round_robin", "crash_avoid", "greedy", "oracle", "fixed:ciag", "fixed:full_ue"]
_ENVS: dict = {}


def _env(env_id):
    if env_id not in _ENVS:
        kwargs = {**SHORT, **(LIVE_FAST if "live" in env_id else {})}
        if "live" in env_id:  # live: every oracle trial runs the real LDM, so two requests and the whole band only
            kwargs = {**kwargs, "workload": {"requests_per_episode": 2}, "bandwidth_shares": [1.0]}
        _ENVS[env_id] = gym.make(env_id, **kwargs)
    return _ENVS[env_id]


@pytest.mark.parametrize("env_id", list(envs.ENV_IDS))
@pytest.mark.parametrize("name", NAMES)
def test_baseline_runs_an_episode(env_id, name):
    if "MultiES-live" in env_id and name == "oracle":
        pytest.skip("covered by test_oracle_on_multi_es_live (slow)")
    env = _env(env_id)
    policy = make_policy(name, env)
    obs, _ = env.reset(seed=0)
    done, steps = False, 0
    while not done:
        action, state = policy.predict(obs, deterministic=True)
        assert state is None and env.action_space.contains(action)
        obs, r, term, trunc, info = env.step(action)
        assert np.isfinite(r)
        if name.startswith("fixed:"):
            assert info["protocol"] == name.split(":")[1]
        done, steps = term or trunc, steps + 1
    assert steps == env.unwrapped.scenario.workload.requests_per_episode


@pytest.mark.slow
def test_oracle_on_multi_es_live():
    env = _env("MEG/MultiES-live-v1")
    policy = make_policy("oracle", env)
    obs, _ = env.reset(seed=0)
    action, _ = policy.predict(obs)
    assert env.action_space.contains(action)


@pytest.mark.parametrize("action_type", ["discrete", "box", "multidiscrete"])
def test_oracle_takes_the_best_action_on_a_copy(action_type):
    env = gym.make("MEG/SingleES-v1", action_type=action_type, **SHORT)
    obs, _ = env.reset(seed=3)
    u = env.unwrapped
    rewards = []
    for k in range(len(u.decisions)):
        for j in range(len(u.shares)):
            rewards.append(copy.deepcopy(u).step(u.codec.encode(k, j))[1])
    action, _ = make_policy("oracle", env).predict(obs)
    _, r, *_ = env.step(action)
    assert r == pytest.approx(max(rewards))


def test_crash_avoid_picks_the_least_loaded_es():
    env = gym.make("MEG/MultiES-v1", **SHORT)
    obs, _ = env.reset(seed=0)
    p = make_policy("crash_avoid", env)
    n = env.unwrapped.scenario.num_es
    for busiest in range(n):
        o = obs.copy()
        o[2 * n:3 * n] = 1.0
        o[2 * n + busiest] = 0.0  # this ES has no backlog
        a, _ = p.predict(o)
        assert env.unwrapped.decisions[a[0]].es_ids == (busiest,)
    a, _ = make_policy("crash_avoid:ciag", env).predict(obs)
    assert env.unwrapped.decisions[a[0]].protocol == "ciag"


def test_round_robin_cycles_and_restarts_each_episode(single_env):
    p = make_policy("round_robin", single_env)
    obs, _ = single_env.reset(seed=0)
    seen = []
    for _ in range(3):
        a, _ = p.predict(obs)
        seen.append(int(a[0]))
        obs, *_ = single_env.step(a)
    assert seen == [0, 1, 2]
    obs, _ = single_env.reset(seed=1)
    assert int(p.predict(obs)[0][0]) == 0


def test_batches_and_their_limits(single_env):
    obs, _ = single_env.reset(seed=0)
    batch = np.stack([obs, obs, obs])
    actions, _ = make_policy("random", single_env, seed=1).predict(batch)
    assert actions.shape == (3, 2)
    one, _ = make_policy("greedy", single_env).predict(obs[None])
    assert one.shape == (1, 2)
    with pytest.raises(PolicyError, match="batch of 1"):
        make_policy("oracle", single_env).predict(batch)
    with pytest.raises(PolicyError, match="shape"):
        make_policy("random", single_env).predict(np.zeros(5))


def test_random_is_seeded(single_env):
    obs, _ = single_env.reset(seed=0)
    a = [make_policy("random", single_env, seed=7).predict(obs)[0].tolist() for _ in range(2)]
    assert a[0] == a[1]


def test_dict_observations(single_env):
    env = gym.make("MEG/SingleES-v1", observation_type="dict", **SHORT)
    obs, _ = env.reset(seed=0)
    for name in ("crash_avoid", "greedy", "round_robin"):
        a, _ = make_policy(name, env).predict(obs)
        assert env.action_space.contains(a)


@pytest.mark.parametrize("name,needle", [
    ("nope", "policy must be one of ['random', 'round_robin', 'crash_avoid', 'greedy', 'oracle'"),
    ("fixed:nope", "protocol must be one of the env's ['ciag', 'eiug', 'esuc', 'full_es', 'full_ue', 'uieg']"),
    ("fixed", "needs a protocol: one of ['fixed:full_ue'"),
    ("greedy:x", "takes no ':' argument"),
    ("crash_avoid:full_ue", "crash_avoid's protocol must be one of"),
])
def test_bad_names_say_what_is_allowed(single_env, name, needle):
    with pytest.raises(PolicyError) as e:
        make_policy(name, single_env)
    assert needle in str(e.value)


def test_policy_names_spell_out_fixed(single_env):
    names = policy_names(single_env)
    assert "fixed:ciag" in names and "oracle" in names and "fixed" not in names
