"""Wrappers: scalarise a vector reward (MO-Gymnasium's LinearReward, without the dependency)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

__all__ = ["LinearReward"]


class LinearReward(gym.Wrapper):
    """Scalar reward = weights . vector reward; the vector stays in ``info["vector_reward"]``."""

    def __init__(self, env: gym.Env, weights: Any = None) -> None:
        super().__init__(env)
        space = getattr(env.unwrapped, "reward_space", None)
        if space is None:
            raise ValueError("LinearReward needs an env with a vector reward (reward_type='vector')")
        if weights is None:
            from meg_gym.core import term_weights

            weights = term_weights(env.unwrapped.scenario)
        self.weights = np.asarray(weights, dtype=np.float64)
        if self.weights.shape != space.shape:
            raise ValueError(f"'weights' must have shape {space.shape} (got {self.weights.shape})")

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        obs, vec, terminated, truncated, info = self.env.step(action)
        info["vector_reward"] = vec
        return obs, float(np.dot(self.weights, vec)), terminated, truncated, info
