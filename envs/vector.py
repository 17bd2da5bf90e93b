"""The native vector env: ``gym.make_vec(id, num_envs, vectorization_mode="vector_entry_point")``.

:class:`MegVectorEnv` steps ``num_envs`` profiled MEG worlds as numpy arrays (the world core,
:class:`meg_gym.core.Core`, with ``num_envs`` copies of one UE) instead of one Python env per copy. Spaces, observation
layout, reward and info keys are those of :class:`envs.MegEnv` (box observations, scalar
or vector reward, any action codec); infos are dicts of arrays, as Gymnasium's vector
envs give. Episodes end together (every copy serves ``requests_per_episode`` requests);
autoreset is Gymnasium's default next-step mode: the step after the episodes ended resets
every copy and returns its first observation (reward 0). Live mode has no native vector
env: use ``vectorization_mode="sync"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.codecs import make_codec
from envs.meg_env import reward_space
from envs.multi_ue import obs_bounds
from meg_gym.core import REWARD_TERMS, Core, obs_size

__all__ = ["MegVectorEnv"]


class MegVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`envs.MegEnv` (profiled) stepped together: the world core with
    ``num_envs`` copies of one UE (``meg_gym.core.Core``)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, config: Any = None, *, backend: str | None = None,
                 action_type: str = "multidiscrete", observation_type: str = "box", reward_type: str = "scalar",
                 render_mode: str | None = None, **overrides: Any) -> None:
        from meg_gym.config import load_scenario

        if observation_type != "box":
            raise ValueError(f"'observation_type' must be 'box' for the native vector env (got {observation_type!r})")
        if render_mode is not None:
            raise ValueError(f"'render_mode' must be None for the native vector env (got {render_mode!r}); "
                             f"render a single env instead")
        if reward_type not in ("scalar", "vector"):
            raise ValueError(f"'reward_type' must be one of ['scalar', 'vector'] (got {reward_type!r})")
        if backend is not None:
            overrides["backend"] = backend
        self.scenario = load_scenario(config, **overrides)
        if self.scenario.backend != "profiled":
            raise ValueError(f"'backend' must be 'profiled' for the native vector env (got {self.scenario.backend!r}):"
                             f" live mode runs the split LDM one request at a time; use "
                             f"gym.make_vec(..., vectorization_mode='sync')")
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ValueError(f"'num_envs' must be an int >= 1 (got {num_envs!r})")
        self.world = Core(self.scenario, copies=int(num_envs))
        self.num_envs = self.world.copies
        self.decisions = self.world.placements
        self.shares = np.asarray(self.scenario.bandwidth_shares, dtype=np.float64)
        self.codec = make_codec(action_type, len(self.decisions), len(self.shares))
        self.reward_type = reward_type
        n = self.scenario.num_es
        low, high = obs_bounds(n)
        self.single_action_space = self.codec.space
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        if reward_type == "vector":
            self.reward_space = reward_space(self.scenario)
        self.render_mode = None
        self._obs = np.zeros((self.num_envs, 1, obs_size(n)))
        self._needs_reset = False
        self._protocols = np.array([d.protocol for d in self.decisions])

    def _observe(self) -> np.ndarray:
        return self.world.observe(self._obs)[:, 0].astype(np.float32)

    # -- API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if isinstance(seed, (list, tuple)):
            seed = int(np.random.SeedSequence(list(seed)).generate_state(1)[0])
        self.world.reset(seed)
        self._needs_reset = False
        return self._observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if not self.world._started:
            raise RuntimeError("step() called before reset()")
        placement, share = self.codec.decode_batch(actions, self.num_envs)  # raises before any state changes
        n = self.num_envs
        if self._needs_reset:  # next-step autoreset: every copy's episode ended together; they start anew
            self.world.reset()
            self._needs_reset = False
            zero = np.zeros(n)
            terms = {k: zero.copy() for k in REWARD_TERMS}
            reward = np.zeros((n, len(REWARD_TERMS)), np.float32) if self.reward_type == "vector" else zero.copy()
            info = {"rewards": terms, "latency_s": zero.copy(), "quality": zero.copy(), "ssim": zero.copy(),
                    "uplink_bits": np.zeros(n, np.int64), "downlink_bits": np.zeros(n, np.int64),
                    "energy_j": zero.copy(), "deadline_missed": np.zeros(n, bool),
                    "protocol": self._protocols[placement], "bandwidth_share": self.shares[share]}
            return self._observe(), reward, np.zeros(n, bool), np.zeros(n, bool), info
        res = self.world.step_checked(placement[:, None], self.shares[share][:, None])
        truncated = self.world.done.copy()
        self._needs_reset = bool(truncated.all())
        terms = {k: v[:, 0] for k, v in res.terms.items()}
        if self.reward_type == "vector":
            reward = np.stack([terms[k] for k in REWARD_TERMS], axis=1).astype(np.float32)
        else:
            reward = res.reward[:, 0].astype(np.float64)
        info = {
            "rewards": terms, "latency_s": res.latency_s[:, 0], "quality": res.quality[:, 0], "ssim": res.ssim[:, 0],
            "uplink_bits": res.uplink_bits[:, 0], "downlink_bits": res.downlink_bits[:, 0],
            "energy_j": res.energy_j[:, 0], "deadline_missed": res.deadline_missed[:, 0],
            "protocol": self._protocols[placement], "bandwidth_share": self.shares[share],
        }
        return self._observe(), reward, np.zeros(n, dtype=bool), truncated, info

    def close(self, **kwargs: Any) -> None:
        pass
