"""The envs with SB3: subprocess vector envs (spawn), a short PPO run, the live variant."""

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the MEG ids)


def _make():
    # the spawned process imports this module, and with it ``envs``, which registers the ids
    return gym.make("MEG/SingleES-v1")


def test_subproc_vec_env_with_spawn():
    from stable_baselines3.common.vec_env import SubprocVecEnv

    venv = SubprocVecEnv([_make, _make], start_method="spawn")
    try:
        venv.seed(0)
        obs = venv.reset()
        assert obs.shape == (2, 8)  # 4 per ES + 4 (Core.observe)
        for _ in range(5):
            obs, rew, done, info = venv.step(np.array([venv.action_space.sample() for _ in range(2)]))
        assert np.isfinite(rew).all() and "rewards" in info[0]
    finally:
        venv.close()


def test_ppo_smoke_256_steps():
    from stable_baselines3 import PPO

    env = gym.make("MEG/SingleES-v1")
    model = PPO("MlpPolicy", env, n_steps=64, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256)
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)


def test_live_env_runs_the_real_pipeline():
    env = gym.make("MEG/SingleES-live-v1", render_mode="rgb_array", generation={"steps": 4, "ue_steps": 2,
                                                                                  "complete_steps": 4})
    env.reset(seed=0)
    _, r, _, _, info = env.step(np.array([4, 2]))  # CIAG on the whole band
    assert info["protocol"] == "ciag" and np.isfinite(r)
    out = env.unwrapped.last_outcome
    assert out.output.shape == (3, 64, 64) and out.uplink_bits > 0
    assert env.render().shape[2] == 3
