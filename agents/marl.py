"""Parameter-sharing training on the PettingZoo MEG envs with Stable-Baselines3, through SuperSuit.

Every agent of ``multi_ue_v1`` (UEs) or ``es_coordination_v1`` (ESs) has the same observation
and action space, so one SB3 policy can act for all of them: SuperSuit's
``pettingzoo_env_to_vec_env_v1`` turns the parallel env into a vector env with one entry per
agent, and ``concat_vec_envs_v1`` stacks ``num_vec_envs`` copies into an SB3 ``VecEnv``
(``num_envs = num_vec_envs * agents``). Agents never leave early (all truncate together), so
no black-death padding is needed; spaces that differ between agents raise instead of being
padded silently.

>>> from stable_baselines3 import PPO                                        # doctest: +SKIP
>>> venv = make_sb3_vec_env("multi_ue_v1", {"num_ues": 4}, num_vec_envs=2, seed=0)  # doctest: +SKIP
>>> PPO("MlpPolicy", venv, n_steps=64, seed=0).learn(10_000)                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

__all__ = ["MARL_ENVS", "make_parallel_env", "make_sb3_vec_env"]

# env name -> the module with its PettingZoo factories
MARL_ENVS = {"multi_ue_v1": "envs.multi_ue", "es_coordination_v1": "envs.es_coordination"}


def make_parallel_env(env_name: str, env_kwargs: dict[str, Any] | None = None) -> Any:
    """The parallel env ``env_name`` (``multi_ue_v1`` | ``es_coordination_v1``) built with ``env_kwargs``."""
    import importlib

    if env_name not in MARL_ENVS:
        raise ValueError(f"'env' must be one of {sorted(MARL_ENVS)} (got {env_name!r})")
    if env_kwargs is not None and not isinstance(env_kwargs, dict):
        raise ValueError(f"'env_kwargs' must be a mapping of keyword arguments (got {type(env_kwargs).__name__})")
    return importlib.import_module(MARL_ENVS[env_name]).parallel_env(**(env_kwargs or {}))


def make_sb3_vec_env(env_name: str, env_kwargs: dict[str, Any], num_vec_envs: int, seed: int) -> Any:
    """An SB3 ``VecEnv`` over ``num_vec_envs`` copies of the parallel env, one entry per agent.

    Copy ``i`` is reset with ``seed + i`` (SuperSuit's convention), and later resets continue
    each copy's seeded stream, so a training run is reproducible from ``seed``.
    """
    import supersuit as ss

    if isinstance(num_vec_envs, bool) or not isinstance(num_vec_envs, int) or num_vec_envs < 1:
        raise ValueError(f"'num_vec_envs' must be an integer >= 1 (got {num_vec_envs!r})")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"'seed' must be an integer >= 0 (got {seed!r})")
    par = make_parallel_env(env_name, env_kwargs)
    first = par.possible_agents[0]
    for a in par.possible_agents[1:]:
        if par.observation_space(a) != par.observation_space(first) or par.action_space(a) != par.action_space(first):
            raise ValueError(f"parameter sharing needs the same spaces for every agent; {a!r} differs from {first!r}")
    vec = ss.pettingzoo_env_to_vec_env_v1(par)
    venv = _SeedableVecEnv(ss.concat_vec_envs_v1(vec, num_vec_envs, num_cpus=0, base_class="stable_baselines3"))
    venv.seed(seed)
    return venv


def _seedable_class() -> type:
    from stable_baselines3.common.vec_env import VecEnvWrapper

    class SeedableVecEnv(VecEnvWrapper):
        """SuperSuit's SB3 wrapper with a working ``seed``: SB3 algorithms call ``env.seed(seed)``,
        which SuperSuit 3.11's concatenated env lacks. The seed goes to the next reset (copy i
        gets ``seed + i``), as SB3's own vector envs do since gym 0.26."""

        def __init__(self, venv: Any) -> None:
            super().__init__(venv)
            self._next_seed: int | None = None

        def seed(self, seed: int | None = None) -> list[int | None]:
            self._next_seed = seed
            return [None if seed is None else seed + i for i in range(self.num_envs)]

        def reset(self) -> Any:
            seed, self._next_seed = self._next_seed, None
            if seed is None:
                return self.venv.reset()
            obs, infos = self.venv.venv.reset(seed=seed)  # SuperSuit's ConcatVecEnv takes the seed
            self.venv.reset_infos = infos
            return obs

        def step_wait(self) -> Any:
            return self.venv.step_wait()

    return SeedableVecEnv


def _SeedableVecEnv(venv: Any) -> Any:  # noqa: N802 - a class made on first use (SB3 imported lazily)
    global _SEEDABLE
    if _SEEDABLE is None:
        _SEEDABLE = _seedable_class()
    return _SEEDABLE(venv)


_SEEDABLE: type | None = None
