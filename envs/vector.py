"""The native vector env: ``gym.make_vec(id, num_envs, vectorization_mode="vector_entry_point")``.

:class:`MegVectorEnv` steps ``num_envs`` profiled MEG worlds as numpy arrays (the world core,
:class:`meg_gym.core.Core`, with ``num_envs`` copies of one UE) instead of one Python env per copy. Spaces, observation
layout, reward and info keys are those of :class:`envs.MegEnv` (box observations, scalar
or vector reward, any action codec); infos are dicts of arrays, as Gymnasium's vector
envs give. Episodes end together (every copy serves ``requests_per_episode`` requests);
autoreset is Gymnasium's default next-step mode (the step after the episodes ended resets
every copy and returns its first observation, reward 0, every ``_key`` mask False), or
``autoreset_mode="SameStep"`` (the ending step returns the new episodes' first observation,
the last one in ``info["final_obs"]``) or ``"Disabled"`` (``reset()`` is the caller's). Live mode has no native vector
env: use ``vectorization_mode="sync"``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.codecs import make_codec
from envs.common import check_overrides, check_reward_type, feature_info, no_feature_info, obs_bounds, reward_space
from meg_gym.core import Core

__all__ = ["MegVectorEnv"]


class MegVectorEnv(VectorEnv):
    """``num_envs`` copies of :class:`envs.MegEnv` (profiled) stepped together: the world core with
    ``num_envs`` copies of one UE (``meg_gym.core.Core``)."""

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP, "render_modes": []}

    def __init__(self, num_envs: int = 1, config: Any = None, *, backend: str | None = None,
                 action_type: str = "multidiscrete", observation_type: str = "box", reward_type: str = "scalar",
                 render_mode: str | None = None, autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 **overrides: Any) -> None:
        from meg_gym.config import load_scenario

        try:
            self.autoreset_mode = AutoresetMode(autoreset_mode)
        except ValueError:
            raise ValueError(f"'autoreset_mode' must be one of {[m.value for m in AutoresetMode]} "
                             f"(got {autoreset_mode!r})") from None
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}

        if observation_type != "box":
            raise ValueError(f"'observation_type' must be 'box' for the native vector env (got {observation_type!r})")
        if render_mode is not None:
            raise ValueError(f"'render_mode' must be None for the native vector env (got {render_mode!r}); "
                             f"render a single env instead")
        check_reward_type(reward_type)
        check_overrides(type(self).__name__, overrides)
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
        low, high = obs_bounds(n, self.world.obs_extra)
        self.single_action_space = self.codec.space
        self.single_observation_space = spaces.Box(low, high, dtype=np.float32)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        if reward_type == "vector":
            self.reward_space = reward_space(self.scenario)
        self.render_mode = None
        self._obs = np.zeros((self.num_envs, 1, self.world.obs_width))
        self._needs_reset = False
        self._protocols = np.array([d.protocol for d in self.decisions])

    def _observe(self) -> np.ndarray:
        return self.world.observe(self._obs)[:, 0].astype(np.float32)

    # -- API ------------------------------------------------------------------------------
    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        if isinstance(seed, (list, tuple)):
            # the copies' seeds together are the core's SeedSequence entropy (all of each seed's bits kept); one
            # seed [s] is the single env's world seed s
            seed = [int(s) for s in seed]
        mask = (options or {}).get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            if mask.shape != (self.num_envs,) or (mask.any() and not mask.all()):
                raise ValueError(f"'reset_mask' must be {self.num_envs} booleans, all True or all False: the "
                                 f"copies' episodes end together (got {options['reset_mask']!r})")
            if not mask.any():
                return self._observe(), self._info(None)
        self.world.reset(seed)
        self._needs_reset = False
        return self._observe(), self._info(None)

    def _info(self, res: Any, placement: np.ndarray | None = None, share: np.ndarray | None = None) -> dict:
        """The vector info: arrays per copy, each key with its ``_key`` mask of the copies it reports on
        (Gymnasium's convention); ``res`` None: a step that served nothing (after a reset), all masks False."""
        n = self.num_envs
        served = np.full(n, res is not None)
        if res is None:
            nan = np.full(n, np.nan)
            info: dict[str, Any] = {
                "rewards": {k: np.zeros(n) for k in self.world.terms}, "latency_s": nan, "quality": nan.copy(),
                "ssim": nan.copy(), "uplink_bits": np.zeros(n, np.int64), "downlink_bits": np.zeros(n, np.int64),
                "energy_j": nan.copy(), "deadline_missed": np.zeros(n, bool), "protocol": np.full(n, ""),
                "es_mask": np.zeros((n, self.world.num_es), bool), "bandwidth_share": nan.copy(),
                "retransmissions": np.zeros(n, np.int64), "outage": np.zeros(n, bool),
                "attempts": np.zeros(n, np.int64), "es_steps": np.zeros(n, np.int64),
                "ue_steps": np.zeros(n, np.int64), "es_area": nan.copy()}
            if self.world.cache is not None:
                info["cache_hit"] = np.zeros(n, bool)
            info.update(no_feature_info(self.world, lambda: np.full(n, np.nan)))
        else:
            info = {
                "rewards": {k: v[:, 0] for k, v in res.terms.items()}, "latency_s": res.latency_s[:, 0],
                "quality": res.quality[:, 0], "ssim": res.ssim[:, 0], "uplink_bits": res.uplink_bits[:, 0],
                "downlink_bits": res.downlink_bits[:, 0], "energy_j": res.energy_j[:, 0],
                "deadline_missed": res.deadline_missed[:, 0], "protocol": self._protocols[placement],
                "es_mask": self.world.es_mask[placement], "bandwidth_share": self.shares[share],
                "retransmissions": res.retransmissions[:, 0], "outage": res.outage[:, 0],
                "attempts": res.attempts[:, 0], "es_steps": self.world.es_steps[placement],
                "ue_steps": self.world.ue_steps[placement], "es_area": self.world.es_area[placement]}
            if res.cache_hit is not None:
                info["cache_hit"] = res.cache_hit[:, 0]
            info.update(feature_info(res, lambda a: a[:, 0]))
        # Gymnasium's convention (SyncVectorEnv._add_info) masks nested dicts' keys too: info["rewards"]["_quality"]
        for key in list(info["rewards"]):
            info["rewards"]["_" + key] = served
        for key in list(info):
            info["_" + key] = served
        return info

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        if not self.world._started:
            raise RuntimeError("step() called before reset()")
        placement, share = self.codec.decode_batch(actions, self.num_envs)  # raises before any state changes
        n = self.num_envs
        no = np.zeros(n, dtype=bool)
        if self._needs_reset:
            if self.autoreset_mode == AutoresetMode.DISABLED:
                raise RuntimeError("step() after the episodes ended with autoreset_mode=DISABLED: call reset() "
                                   "(options={'reset_mask': mask} with every copy) first")
            # next-step autoreset: every copy's episode ended together; they start anew, serving nothing
            self.world.reset()
            self._needs_reset = False
            reward = np.zeros((n, len(self.world.terms)), np.float32) if self.reward_type == "vector" else np.zeros(n)
            return self._observe(), reward, no, no.copy(), self._info(None)
        res = self.world.step_checked(placement[:, None], self.shares[share][:, None])
        truncated = self.world.done.copy()
        if self.reward_type == "vector":
            reward = np.stack([res.terms[k][:, 0] for k in self.world.terms], axis=1).astype(np.float32)
        else:
            reward = res.reward[:, 0].astype(np.float64)
        info = self._info(res, placement, share)
        obs = self._observe()
        if truncated.all():
            if self.autoreset_mode == AutoresetMode.SAME_STEP:  # the new episodes' first observation now
                info["final_obs"], info["_final_obs"] = obs, truncated.copy()
                info["final_info"], info["_final_info"] = {k: v for k, v in info.items()}, truncated.copy()
                self.world.reset()
                obs = self._observe()
            else:
                self._needs_reset = True
        return obs, reward, no, truncated, info

    def action_masks(self) -> np.ndarray:
        """Per copy, the single env's ``action_masks()``: placements that can still meet the deadline
        (ignoring queues; all of them where none can), in the codec's mask layout."""
        if not self.world._started:
            raise RuntimeError("action_masks() called before reset(): the masks depend on the current requests")
        ok = self.world.feasible(self.shares[-1])[:, 0]
        ok[~ok.any(axis=1)] = True
        return np.stack([self.codec.mask(row) for row in ok])

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Gymnasium's ``VectorEnv.call``: the result for each copy. ``action_masks`` gives each
        copy's row; any other attribute of the env (called with the arguments if it is a method)
        is the same for every copy."""
        if name == "action_masks":
            return tuple(self.action_masks())
        value = getattr(self, name)
        if callable(value):
            value = value(*args, **kwargs)
        return (value,) * self.num_envs

    def get_attr(self, name: str) -> tuple[Any, ...]:
        """The attribute ``name`` for each copy (the same for all)."""
        return (getattr(self, name),) * self.num_envs

    def close(self, **kwargs: Any) -> None:
        pass
