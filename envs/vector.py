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

from envs.codecs import InvalidAction
from envs.meg_env import MegEnv
from meg_gym.batch import BatchWorld
from meg_gym.world import REWARD_TERMS

__all__ = ["MegVectorEnv"]

_SNR_SCALE_DB = 30.0


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

    # -- actions ----------------------------------------------------------------------------
    def _decode(self, actions: Any) -> tuple[np.ndarray, np.ndarray]:
        """Placement and share indices per copy; a malformed batch raises before anything changes."""
        c, n = self.codec, self.num_envs
        a = np.asarray(actions)
        if c.name == "multidiscrete":
            ok = a.shape == (n, 2) and (a.dtype.kind in "iu" or (np.isfinite(a).all() and (a % 1 == 0).all()))
            if ok:
                p, s = a[:, 0].astype(np.int64), a[:, 1].astype(np.int64)
                ok = bool(((p >= 0) & (p < c.n_placements) & (s >= 0) & (s < c.n_shares)).all())
            if not ok:
                raise InvalidAction(f"actions must be an array of shape ({n}, 2) of integers in [0, "
                                    f"{c.n_placements - 1}] x [0, {c.n_shares - 1}] (got {actions!r})")
            return p, s
        if c.name == "discrete":
            total = c.n_placements * c.n_shares
            ok = a.shape == (n,) and (a.dtype.kind in "iu" or (np.isfinite(a).all() and (a % 1 == 0).all()))
            if ok:
                i = a.astype(np.int64)
                ok = bool(((i >= 0) & (i < total)).all())
            if not ok:
                raise InvalidAction(f"actions must be an array of shape ({n},) of integers in [0, {total - 1}] "
                                    f"(got {actions!r})")
            return i // c.n_shares, i % c.n_shares
        a = a.astype(np.float64) if a.dtype.kind in "fiu" else a
        if a.shape != (n, 2) or a.dtype.kind != "f" or not np.isfinite(a).all() or (np.abs(a) > 1.0).any():
            raise InvalidAction(f"actions must be an array of shape ({n}, 2) of finite numbers in [-1, 1] "
                                f"(got {actions!r})")
        p = np.minimum(c.n_placements - 1, ((a[:, 0] + 1.0) / 2.0 * c.n_placements).astype(np.int64))
        s = np.minimum(c.n_shares - 1, ((a[:, 1] + 1.0) / 2.0 * c.n_shares).astype(np.int64))
        return p, s

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
        placement, share = self._decode(actions)  # raises before any state changes
        n = self.num_envs
        restart = self._needs_reset.copy()
        res = self.batch.step(placement, share)
        self._energy += res["energy_j"]
        if restart.any():  # next-step autoreset: these copies start a new episode instead
            self.batch.reset(rows=restart)
            self._energy[restart] = 0.0
            for v in (res["reward"], res["latency_s"], res["quality"], res["ssim"], res["energy_j"],
                      *res["terms"].values()):
                v[restart] = 0.0
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
            "deadline_missed": res["deadline_missed"] & ~restart,
            "protocol": np.array([decisions[k].protocol for k in placement.tolist()]),
            "bandwidth_share": self.batch.shares[share],
        }
        return self._observe(), reward, terminated, truncated, info

    def close(self, **kwargs: Any) -> None:
        self.single_env.close()
