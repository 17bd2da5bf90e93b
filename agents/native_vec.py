"""SB3 on the native vector env: a Stable-Baselines3 ``VecEnv`` over :class:`envs.vector.MegVectorEnv`.

SB3 takes its own ``VecEnv`` class, not Gymnasium's vector envs, so without this adapter SB3
steps the MEG envs one Python env at a time (``DummyVecEnv``). :func:`native_vec_env` gives
what ``DummyVecEnv([Monitor(gym.make(env_id)) ...])`` gives, from one batched world core:

* **seeding**: copy ``i`` is seeded ``seed + i`` (SB3's ``VecEnv.seed`` convention), and every
  episode's world seed is drawn from that copy's Gymnasium generator, as ``MegEnv.reset``
  draws it. With one copy the episodes are those of the single env, step for step; with
  several, the copies' seeds together seed the batched core (its streams are drawn as arrays,
  so copy ``i`` is not the single env's copy with seed ``seed + i``).
* **episode statistics**: ``info["episode"] = {"r", "l", "t"}`` at each episode's end, summed
  in float64 and rounded as SB3's ``Monitor`` does (so equal to Monitor's numbers), and the
  same ``<i>.monitor.csv`` files when ``monitor_dir`` is given.
* **autoreset**: SB3's: the ending step returns the next episode's first observation, the last
  one in ``info["terminal_observation"]``, ``info["TimeLimit.truncated"]`` True (MEG episodes
  are truncated after ``requests_per_episode`` requests, never terminated).
* **resume**: :meth:`NativeVecEnv.get_counters` / :meth:`NativeVecEnv.set_counters` with the
  vector env's own state give ``agents.training`` an exact resume.

Profiled backend only (the native vector env's restriction); action masks for MaskablePPO go
through ``env_method("action_masks")``.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices

__all__ = ["NativeVecEnv", "native_vec_env"]


class NativeVecEnv(VecEnv):
    """An SB3 ``VecEnv`` over the native vector env ``vector_env`` (autoreset disabled: this class resets).

    Args:
        vector_env: a :class:`envs.vector.MegVectorEnv` built with ``autoreset_mode="Disabled"``.
        monitor_dir: a folder for Monitor-format ``<i>.monitor.csv`` files (one per copy), or None.
        append: add to existing monitor files (a resumed run) instead of starting them afresh.
    """

    def __init__(self, vector_env: Any, monitor_dir: str | Path | None = None, append: bool = False) -> None:
        from gymnasium.vector import AutoresetMode

        if vector_env.autoreset_mode != AutoresetMode.DISABLED:
            raise ValueError(f"'vector_env' must be built with autoreset_mode='Disabled' (got "
                             f"{vector_env.autoreset_mode.value!r}): the adapter resets it with per-copy seeds")
        self.vector_env = vector_env
        n = vector_env.num_envs
        super().__init__(n, vector_env.single_observation_space, vector_env.single_action_space)
        self._rngs: list[np.random.Generator] | None = None  # each copy's Gymnasium generator (MegEnv.np_random)
        self._returns = np.zeros(n)  # float64, as Monitor's sum of Python floats
        self._lengths = np.zeros(n, dtype=np.int64)
        self._t_start = time.time()
        self._writers: list[Any] = []
        if monitor_dir is not None:
            from stable_baselines3.common.monitor import ResultsWriter

            spec = getattr(vector_env, "spec", None)
            header = {"t_start": self._t_start, "env_id": str(spec.id if spec is not None else None)}
            Path(monitor_dir).mkdir(parents=True, exist_ok=True)
            self._writers = [ResultsWriter(str(Path(monitor_dir) / str(i)), header=header,
                                           override_existing=not append) for i in range(n)]
        self._actions: np.ndarray | None = None

    # -- seeding and reset ----------------------------------------------------------------
    def _world_seeds(self, seeds: list[int | None]) -> list[int]:
        """Per copy the next episode's world seed, drawn as ``MegEnv.reset`` draws it (``seeds``: copies to
        seed first, as ``MegEnv.reset(seed=...)``; None keeps a copy's generator)."""
        from gymnasium.utils import seeding

        if self._rngs is None or any(s is not None for s in seeds):
            old = self._rngs
            self._rngs = [seeding.np_random(s)[0] if s is not None or old is None else old[i]
                          for i, s in enumerate(seeds)]
        return [int(r.integers(2**63 - 1)) for r in self._rngs]

    def reset(self) -> np.ndarray:
        if any(self._options):
            raise ValueError(f"'options' must be empty for the native vector env: its copies reset together, with no "
                             f"per-copy reset options (got {self._options!r})")
        # the seeds given by seed() apply here only, as DummyVecEnv's do: SB3 seeds its env again when a model
        # loads (_setup_model), which must not reseed the episodes that autoreset starts
        obs, _ = self.vector_env.reset(seed=self._world_seeds(self._seeds))
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return obs

    # -- stepping -------------------------------------------------------------------------
    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs, reward, terminated, truncated, vinfo = self.vector_env.step(self._actions)
        reward = np.asarray(reward, dtype=np.float64)
        if reward.ndim != 1:
            raise ValueError(f"SB3 needs a scalar reward: build the env with reward_type='scalar' (got rewards of "
                             f"shape {reward.shape[1:]} per copy)")
        self._returns += reward
        self._lengths += 1
        dones = terminated | truncated
        infos = self._infos(vinfo)
        for i, info in enumerate(infos):
            info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        if dones.any():
            # the copies' episodes end together (each serves requests_per_episode requests)
            now = round(time.time() - self._t_start, 6)
            for i, info in enumerate(infos):
                info["terminal_observation"] = obs[i]
                ep = {"r": round(float(self._returns[i]), 6), "l": int(self._lengths[i]), "t": now}
                info["episode"] = ep
                if self._writers:
                    self._writers[i].write_row(ep)
            obs, _ = self.vector_env.reset(seed=self._world_seeds([None] * self.num_envs))
            self._returns[:] = 0.0
            self._lengths[:] = 0
        return obs, reward.astype(np.float32), dones, infos

    def _infos(self, vinfo: dict[str, Any]) -> list[dict[str, Any]]:
        """The vector info (arrays per copy) as SB3's list of per-copy dicts, the single env's keys."""
        keys = [k for k in vinfo if not k.startswith("_")]
        rewards = vinfo["rewards"]
        out = []
        for i in range(self.num_envs):
            d = {k: vinfo[k][i] for k in keys if k != "rewards"}
            d["rewards"] = {k: v[i] for k, v in rewards.items()}
            out.append(d)
        return out

    # -- resume ---------------------------------------------------------------------------
    def get_counters(self) -> dict[str, Any]:
        """The adapter's own state besides the vector env's: generators, episode sums, pending seeds."""
        return {"rngs": None if self._rngs is None else [copy.deepcopy(r.bit_generator.state) for r in self._rngs],
                "returns": self._returns.copy(), "lengths": self._lengths.copy(), "seeds": list(self._seeds)}

    def set_counters(self, state: dict[str, Any]) -> None:
        """Restore :meth:`get_counters` (the vector env's state is restored apart)."""
        from gymnasium.utils import seeding

        if state["rngs"] is None:
            self._rngs = None
        else:
            self._rngs = [seeding.np_random(0)[0] for _ in state["rngs"]]
            for r, s in zip(self._rngs, state["rngs"], strict=True):
                r.bit_generator.state = s
        self._returns[:] = state["returns"]
        self._lengths[:] = state["lengths"]
        self._seeds = list(state["seeds"])

    # -- VecEnv plumbing ------------------------------------------------------------------
    def close(self) -> None:
        for w in self._writers:
            w.close()
        self.vector_env.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The vector env's attribute, the same for every copy (``render_mode`` included)."""
        value = getattr(self.vector_env, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute of the vector env: one world for every copy, so only for all copies at once."""
        if len(list(self._get_indices(indices))) != self.num_envs:
            raise ValueError(f"'indices' must select every copy: the {self.num_envs} copies share one vector env "
                             f"(got {indices!r})")
        setattr(self.vector_env, attr_name, value)

    def env_method(self, method_name: str, *method_args: Any, indices: VecEnvIndices = None,
                   **method_kwargs: Any) -> list[Any]:
        """Per copy the result of ``method_name`` (``action_masks``: each copy's own row)."""
        rows = self.vector_env.call(method_name, *method_args, **method_kwargs)
        return [rows[i] for i in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        """No Gymnasium wrappers: the copies are rows of one vector env."""
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]


def native_vec_env(env_id: str, n_envs: int, seed: int | None = 0, *, monitor_dir: str | Path | None = None,
                   append: bool = False, **env_kwargs: Any) -> NativeVecEnv:
    """An SB3 ``VecEnv`` of ``n_envs`` copies of ``env_id`` (a profiled MEG id) on the native vector env.

    ``seed``: copy ``i`` gets ``seed + i`` at the first reset (None: fresh entropy).
    ``monitor_dir``/``append``: Monitor-format episode files; ``env_kwargs``: the env's keyword arguments.
    """
    import gymnasium as gym

    import envs  # noqa: F401  (registers the MEG ids)

    if isinstance(n_envs, bool) or not isinstance(n_envs, (int, np.integer)) or n_envs < 1:
        raise ValueError(f"'n_envs' must be an integer >= 1 (got {n_envs!r})")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0):
        raise ValueError(f"'seed' must be an integer >= 0 or None (got {seed!r})")
    spec = gym.registry.get(env_id)
    if spec is None or spec.vector_entry_point is None:
        known = sorted(k for k, s in gym.registry.items() if k.startswith("MEG/") and s.vector_entry_point)
        raise ValueError(f"'env' must be a MEG id with a native vector env, one of {known} (got {env_id!r})")
    venv = gym.make_vec(env_id, num_envs=int(n_envs), vectorization_mode="vector_entry_point",
                        **{**env_kwargs, "autoreset_mode": "Disabled"})
    out = NativeVecEnv(venv, monitor_dir=monitor_dir, append=append)
    out.seed(seed)
    return out
