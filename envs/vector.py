"""The native vector env: ``gym.make_vec(id, num_envs, vectorization_mode="vector_entry_point")``.

:class:`MegVectorEnv` steps ``num_envs`` profiled MEG worlds as numpy arrays
(:class:`meg_gym.batch.BatchWorld`) instead of one Python env per copy. Spaces, observation
layout, reward and info keys are those of :class:`envs.MegEnv` (box observations, scalar
or vector reward, any action codec); infos are dicts of arrays, as Gymnasium's vector
envs give. Episodes end together (every copy serves ``requests_per_episode`` requests);
autoreset is Gymnasium's default next-step mode: the step after a copy's episode ended
resets it and returns its first observation (reward 0). Live mode has no native vector
env: use ``vectorization_mode="sync"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.meg_env import _SNR_SCALE_DB, MegEnv
from meg_gym.batch import BatchWorld
from meg_gym.world import REWARD_TERMS

__all__ = ["MegVectorEnv"]


class MegVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`envs.MegEnv` (profiled) stepped together in numpy."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, config: Any = None, *, backend: str | None = None,
                 action_type: str = "multidiscrete", observation_type: str = "box", reward_type: str = "scalar",
                 render_mode: str | None = None, **overrides: Any) -> None:
        if observation_type != "box":
            raise ValueError(f"'observation_type' must be 'box' for the native vector env (got {observation_type!r})")
        if render_mode is not None:
            raise ValueError(f"'render_mode' must be None for the native vector env (got {render_mode!r}); "
                             f"render a single env instead")
        # one scalar env defines the spaces and the model; the batch steps copies of its world
        self.single_env = MegEnv(config, backend=backend, action_type=action_type, observation_type="box",
                                 reward_type=reward_type, **overrides)
        self.batch = BatchWorld(self.single_env.scenario, num_envs, world=self.single_env.world)
        self.num_envs = self.batch.num
        self.codec = self.single_env.codec
        self.reward_type = reward_type
        self.single_action_space = self.single_env.action_space
        self.single_observation_space = self.single_env.observation_space
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        if reward_type == "vector":
            self.reward_space = self.single_env.reward_space
        self.render_mode = None
        self._energy = np.zeros(self.num_envs)
        self._needs_reset = np.zeros(self.num_envs, dtype=bool)
        self._started = False

    # -- observations ---------------------------------------------------------------------
    def _observe(self) -> np.ndarray:
        b = self.batch
        n = b.num_es
        scale = b.scenario.workload.latency_scale_s
        out = np.empty((self.num_envs, 3 * n + 4), dtype=np.float32)
        out[:, :n] = b.snr_full[:, :, 0] / _SNR_SCALE_DB
        out[:, n:2 * n] = b.snr_full[:, :, 1] / _SNR_SCALE_DB
        out[:, 2 * n:3 * n] = b.queues.backlog_s() / scale
        out[:, 3 * n] = b.deadline / scale
        out[:, 3 * n + 1] = b.weight
        out[:, 3 * n + 2] = self._energy / (b.world._refs["energy_j"] * np.maximum(1, b.served))
        out[:, 3 * n + 3] = b.served / b.scenario.workload.requests_per_episode
        return out

    # -- API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if isinstance(seed, (list, tuple)):
            seed = int(np.random.SeedSequence(list(seed)).generate_state(1)[0])
        self.batch.reset(seed=seed)
        self._energy[:] = 0.0
        self._needs_reset[:] = False
        self._started = True
        return self._observe(), {}

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if not self._started:
            raise RuntimeError("step() called before reset()")
        placement, share = self.codec.decode_batch(actions, self.num_envs)  # raises before any state changes
        n = self.num_envs
        restart = self._needs_reset.copy()
        res = self.batch.step(placement, share)
        self._energy += res["energy_j"]
        if restart.any():  # next-step autoreset: these copies start a new episode instead
            self.batch.reset(rows=restart)
            self._energy[restart] = 0.0
            for v in (*(x for x in res.values() if isinstance(x, np.ndarray)), *res["terms"].values()):
                v[restart] = 0
        truncated = self.batch.done & ~restart
        self._needs_reset = truncated.copy()
        terminated = np.zeros(n, dtype=bool)
        if self.reward_type == "vector":
            reward = np.stack([res["terms"][k] for k in REWARD_TERMS], axis=1).astype(np.float32)
        else:
            reward = res["reward"].astype(np.float64)
        decisions = self.batch.decisions
        info = {
            "rewards": res["terms"], "latency_s": res["latency_s"], "quality": res["quality"], "ssim": res["ssim"],
            "uplink_bits": res["uplink_bits"], "downlink_bits": res["downlink_bits"], "energy_j": res["energy_j"],
            "deadline_missed": res["deadline_missed"],
            "protocol": np.array([decisions[k].protocol for k in placement.tolist()]),
            "bandwidth_share": self.batch.shares[share],
        }
        return self._observe(), reward, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        self.single_env.close()
