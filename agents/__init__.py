"""Agents for the MEG environments: baseline policies, SB3 training from YAML, evaluation and benchmarks.

* :mod:`agents.baselines`: ``make_policy(name, env)`` (random, round_robin, crash_avoid, greedy,
  fixed:<protocol>, oracle), each with SB3's ``predict``;
* :mod:`agents.training`: ``train(config)`` for PPO, A2C, DQN, SAC and MaskablePPO with
  TensorBoard logs, checkpoints and an exact ``resume``;
* :mod:`agents.native_vec`: ``native_vec_env(env_id, n_envs, seed=0, **env_kwargs)``, an SB3
  ``VecEnv`` over the native vector env (``vec_env: native`` in a training config);
* :mod:`agents.evaluation`: policies over N seeds, mean and 95% confidence intervals, Markdown
  and CSV tables, PNG plots.

Imports go one way: ``agents -> envs -> meg_gym``.
"""

from __future__ import annotations

from agents.baselines import POLICIES, make_policy, policy_names

__all__ = ["POLICIES", "make_policy", "native_vec_env", "policy_names"]


def __getattr__(name: str) -> object:
    # native_vec_env on first use: ``import agents`` stays free of SB3's vector-env imports
    if name == "native_vec_env":
        from agents.native_vec import native_vec_env

        return native_vec_env
    raise AttributeError(f"module 'agents' has no attribute {name!r}")
