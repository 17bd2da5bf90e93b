"""MEG/GenerationSplit-v0: the temporal split, step budgets and the UE's own model as placements."""

import warnings

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401


def test_gymnasium_and_sb3_check_env():
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check

    from tests.envs.test_gym_envs import _check_no_unexpected

    for action_type in ("multidiscrete", "discrete"):
        env = gym.make("MEG/GenerationSplit-v0", action_type=action_type)
        with warnings.catch_warnings(record=True) as rec:
            warnings.simplefilter("always")
            check_env(env.unwrapped, skip_render_check=True)
            sb3_check(env.unwrapped, warn=True)
        _check_no_unexpected(rec)


def test_info_says_how_each_request_was_divided():
    env = gym.make("MEG/GenerationSplit-v0", action_type="discrete")
    _, first = env.reset(seed=0)
    assert {"es_steps", "ue_steps", "es_area"} <= set(first)
    want = {"full_ue": (0, 12, 0.0), "tsplit:3": (3, 9, 1.0), "tsplit:6": (6, 6, 1.0), "tsplit:9": (9, 3, 1.0),
            "ciag": (12, 0, 1.0), "ssplit:0.25": (12, 12, 0.25), "ssplit:0.5": (12, 12, 0.5),
            "ssplit:0.75": (12, 12, 0.75), "full_ue@10": (0, 6, 0.0), "tsplit:3@10": (3, 3, 1.0),
            "ciag@10": (6, 0, 1.0), "ssplit:0.25@10": (6, 6, 0.25)}
    shares = len(env.unwrapped.shares)
    seen = set()
    for k, d in enumerate(env.unwrapped.decisions):
        _, _, _, _, info = env.step(k * shares + shares - 1)
        assert (info["es_steps"], info["ue_steps"], info["es_area"]) == want[d.protocol], d.protocol
        assert set(info) == set(first)
        seen.add(d.protocol)
    assert seen == set(want)


def test_fixed_split_baselines():
    from agents.baselines import PolicyError, make_policy, policy_names

    env = gym.make("MEG/GenerationSplit-v0")
    env.reset(seed=1)
    names = policy_names(env)
    assert {"fixed_split:3", "fixed_split:6", "fixed_split:9", "fixed_area:0.25", "fixed_area:0.5", "fixed_area:0.75",
            "greedy", "oracle"} <= set(names)
    for name, protocol in (("fixed_split:0", "full_ue"), ("fixed_split:6", "tsplit:6"), ("fixed_split:12", "ciag"),
                           ("fixed_area:0", "full_ue"), ("fixed_area:0.5", "ssplit:0.5"), ("fixed_area:1", "ciag")):
        pol = make_policy(name, env)
        action, _ = pol.predict(env.unwrapped._observe())
        _, _, _, _, info = env.step(action)
        assert info["protocol"] == protocol
    with pytest.raises(PolicyError, match=r"integer in \[0, 12\]"):
        make_policy("fixed_split:13", env)
    with pytest.raises(PolicyError, match=r"one of \['0', '0.0625', .*'1'\] \(got '0.3'\)"):
        make_policy("fixed_area:0.3", env)
    for name in ("greedy", "oracle"):
        pol = make_policy(name, env)
        _, _, _, _, info = env.step(pol.predict(env.unwrapped._observe())[0])
        assert np.isfinite(info["quality"])
