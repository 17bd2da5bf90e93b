"""MO-Gymnasium: the vector reward of MEG/SingleES-v1, scalarised by two weightings, one PPO policy each.

    python examples/mo_gymnasium_ppo.py --timesteps 20000

``mo_gymnasium.make(..., reward_type="vector")`` returns the five reward terms (quality, latency, overhead,
energy, deadline: ``meg_gym.core.REWARD_TERMS``) with ``env.unwrapped.reward_space``; MO-Gymnasium's
``LinearReward`` scalarises them for a single-objective learner (SB3 PPO here) and its
``MORecordEpisodeStatistics`` records the vector episode return. Two points of the trade-off: the scenario's
weights and a quality-first weighting. Prints ``result: mo-gymnasium ... w=[...] vector_return=[...]`` per
weighting, on one line.
"""

import argparse

import mo_gymnasium as mo_gym
import numpy as np
from mo_gymnasium.wrappers import LinearReward, MORecordEpisodeStatistics
from stable_baselines3 import PPO

import envs  # noqa: F401  (registers the MEG/ ids)
from meg_gym.core import REWARD_TERMS


def vector_return(model: PPO, weights: np.ndarray, seed: int) -> np.ndarray:
    """One deterministic episode; MORecordEpisodeStatistics' vector return (one entry per reward term)."""
    # the statistics wrapper inside the scalarisation, so it sees the vector
    env = LinearReward(MORecordEpisodeStatistics(mo_gym.make("MEG/SingleES-v1", reward_type="vector")), weights)
    obs, _ = env.reset(seed=seed)
    while True:
        obs, _, terminated, truncated, info = env.step(model.predict(obs, deterministic=True)[0])
        if terminated or truncated:
            return info["episode"]["r"]


def _fmt(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:.2f}" for v in values) + "]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--timesteps", type=int, default=20_000, help="environment steps per weighting")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    probe = mo_gym.make("MEG/SingleES-v1", reward_type="vector")
    scenario_w = probe.unwrapped.scenario.reward.weights
    weightings = {"scenario": np.array([getattr(scenario_w, k) for k in REWARD_TERMS], dtype=np.float32),
                  "quality-first": np.array([1.0, 0.1, 0.0, 0.0, 1.0], dtype=np.float32)}
    parts = []
    for name, w in weightings.items():
        env = LinearReward(mo_gym.make("MEG/SingleES-v1", reward_type="vector"), w)
        model = PPO("MlpPolicy", env, n_steps=min(1024, args.timesteps), batch_size=64, seed=args.seed, verbose=0)
        model.learn(total_timesteps=args.timesteps)
        r = vector_return(model, w, args.seed + 1)
        parts.append(f"{name} w={_fmt(w)} vector_return={_fmt(r)} scalar={float(w @ r):.2f}")
    print(f"result: mo-gymnasium PPO MEG/SingleES-v1 timesteps={args.timesteps} terms={list(REWARD_TERMS)} | "
          + " | ".join(parts))


if __name__ == "__main__":
    main()
