"""Agents for the MEG environments: baseline policies, SB3 training from YAML, evaluation and benchmarks.

* :mod:`agents.baselines`: ``make_policy(name, env)`` (random, round_robin, crash_avoid, greedy,
  fixed:<protocol>, oracle), each with SB3's ``predict``;
* :mod:`agents.training`: ``train(config)`` for PPO, A2C, DQN, SAC and MaskablePPO with
  TensorBoard logs, checkpoints and an exact ``resume``;
* :mod:`agents.evaluation`: policies over N seeds, mean and 95% confidence intervals, Markdown
  and CSV tables, PNG plots.

Imports go one way: ``agents -> envs -> meg_gym``.
"""

from __future__ import annotations

from agents.baselines import POLICIES, make_policy, policy_names

__all__ = ["POLICIES", "make_policy", "policy_names"]
