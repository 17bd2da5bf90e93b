"""Parameter-sharing PPO through SuperSuit on the PettingZoo envs: a short run, reproducible from the seed."""

import numpy as np
import pytest

from agents.marl import make_sb3_vec_env

FAST = {"cost_model": None}


def _train(env_name, kwargs, seed=0, steps=256):
    from stable_baselines3 import PPO

    venv = make_sb3_vec_env(env_name, {**FAST, **kwargs}, num_vec_envs=2, seed=seed)
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=64, n_epochs=1, seed=seed, device="cpu")
    model.learn(steps)
    return venv, model


def test_ppo_parameter_sharing_multi_ue_is_reproducible():
    venv, m1 = _train("multi_ue_v1", {"num_ues": 3, "max_cycles": 20})
    assert venv.num_envs == 2 * 3 and m1.num_timesteps >= 256
    obs = venv.reset()
    act, _ = m1.predict(obs, deterministic=True)
    assert act.shape == (6, 2) and all(venv.action_space.contains(a) for a in act)
    _, m2 = _train("multi_ue_v1", {"num_ues": 3, "max_cycles": 20})
    p1 = np.concatenate([p.detach().numpy().ravel() for p in m1.policy.parameters()])
    p2 = np.concatenate([p.detach().numpy().ravel() for p in m2.policy.parameters()])
    assert np.array_equal(p1, p2)


def test_ppo_parameter_sharing_es_coordination():
    venv, model = _train("es_coordination_v1", {"num_ues": 6, "max_cycles": 10})
    assert venv.num_envs == 2 * 4 and model.num_timesteps >= 256


def test_bad_arguments():
    with pytest.raises(ValueError, match="'env' must be one of"):
        make_sb3_vec_env("MEG/SingleES-v1", {}, 1, 0)
    with pytest.raises(ValueError, match="'num_vec_envs' must be an integer >= 1"):
        make_sb3_vec_env("multi_ue_v1", FAST, 0, 0)
