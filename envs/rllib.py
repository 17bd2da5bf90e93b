"""The MEG ids for RLlib's remote workers: ``PPOConfig().environment("MEG/SingleES-v1")`` works as written.

Why: RLlib (2.60, new API stack) builds envs on its EnvRunner actors, processes that never ran
the driver's ``import envs``, so gymnasium there knows no ``MEG`` namespace ("Namespace MEG not
found"). An EnvRunner first looks the id up in Ray's tune registry
(``ray/rllib/env/single_agent_env_runner.py``, ``SingleAgentEnvRunner.make_env``: ``_global_registry.contains
(ENV_CREATOR, config.env)``), which the driver ships to every worker through Ray's key-value store, and only
then falls back to ``gym.make_vec(id)``. So each MEG id is registered there with a creator that lives in this
module: unpickling it on a worker imports ``envs``, which registers the gymnasium ids, and then builds the env
with ``gym.make``. Gymnasium's own form ``"envs:MEG/SingleES-v1"`` (import ``envs``, then make) works too,
with or without this.

Ray is never imported for this: :func:`register_with_ray` runs at ``import envs`` when Ray's tune registry is
already loaded, else right after it loads (a one-shot import hook), so ``import envs`` stays as fast without
Ray and the import order in a user's script does not matter.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from typing import Any

import gymnasium as gym

__all__ = ["make_env", "register_with_ray"]

_RAY_REGISTRY = "ray.tune.registry"


def make_env(env_id: str, env_config: Any) -> Any:
    """Build ``env_id`` from RLlib's env config (a dict of the env's keyword arguments).

    RLlib's EnvRunner calls this with ``num_envs`` added when ``gym_env_vectorize_mode="vector_entry_point"``:
    the envs' native vector env (``envs.vector.MegVectorEnv``) is built then; otherwise one ``gym.make`` env.
    """
    kwargs = dict(env_config)  # EnvContext is a dict (its worker_index etc. are attributes, not keys)
    num_envs = kwargs.pop("num_envs", None)
    if num_envs is None:
        return gym.make(env_id, **kwargs)
    return gym.make_vec(env_id, num_envs=num_envs, vectorization_mode="vector_entry_point", **kwargs)


def register_with_ray(env_ids: Any = None) -> None:
    """Register the MEG gymnasium ids (default: all of ``envs.ENV_IDS``) in Ray's tune registry.

    Imports Ray's tune registry (call it only where Ray is wanted); :mod:`envs` calls it itself when Ray is
    loaded. Idempotent: registering an id again stores the same creator.
    """
    from functools import partial

    from ray.tune.registry import register_env

    from envs import ENV_IDS

    for env_id in ENV_IDS if env_ids is None else env_ids:
        register_env(env_id, partial(make_env, env_id))


class _AfterRayRegistry(importlib.abc.MetaPathFinder):
    """One-shot: when ``ray.tune.registry`` is first imported, run :func:`register_with_ray` right after it.

    A meta-path finder that only wraps the module's normal loader (PEP 451: ``find_spec`` returns the spec
    the other finders give, its ``exec_module`` followed by the registration); it removes itself on first use.
    """

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != _RAY_REGISTRY:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module: Any) -> None:
            exec_module(module)
            register_with_ray()  # the module is in sys.modules already (importlib puts it there before exec)

        spec.loader.exec_module = exec_then_register
        return spec


def _install() -> None:
    """Register now if Ray's tune registry is loaded, else once it is; nothing if Ray is not installed."""
    if _RAY_REGISTRY in sys.modules:
        register_with_ray()
    elif not any(isinstance(f, _AfterRayRegistry) for f in sys.meta_path) and importlib.util.find_spec("ray"):
        sys.meta_path.insert(0, _AfterRayRegistry())
