"""Is the allocation a real decision problem? An exhaustive one-step oracle per state.

Usage: python benchmarks/decision_problem.py [--env MEG/SingleES-v1] [--config SCENARIO] [--states 300] [--json]

In each visited state every action is tried on a copy of the env (same randomness), and the
protocol of the best one is recorded; states are visited by a random policy. Reported: how
often each protocol is the best. The target for the default scenarios: no single protocol
best in more than 60% of states.
"""

from __future__ import annotations

import argparse
import collections
import copy
import json

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the MEG ids)


def best_protocol_shares(env_id: str, states: int, seed: int = 0, config: str | None = None) -> dict[str, float]:
    """How often each protocol is the one-step best; ``config``: a scenario instead of the id's own."""
    env = gym.make(env_id, action_type="discrete", **({} if config is None else {"config": config})).unwrapped
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    wins: collections.Counter[str] = collections.Counter()
    n = env.action_space.n
    for _ in range(states):
        rewards = []
        for a in range(n):
            trial = copy.deepcopy(env)
            rewards.append(trial.step(a)[1])
        best = int(np.argmax(rewards))
        wins[env.decisions[best // len(env.shares)].protocol] += 1
        _, _, _, trunc, _ = env.step(int(rng.integers(n)))
        if trunc:
            env.reset()
    return {p: c / states for p, c in wins.most_common()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="MEG/SingleES-v1")
    ap.add_argument("--config", help="a scenario instead of the env id's own (e.g. eavesdropper)")
    ap.add_argument("--states", type=int, default=300)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    shares = best_protocol_shares(args.env, args.states, config=args.config)
    if args.json:
        print(json.dumps({"env": args.env, "config": args.config, "states": args.states,
                          "best_protocol_share": shares}))
    else:
        print(f"{args.env}: best protocol over {args.states} states (one-step oracle)")
        for p, s in shares.items():
            print(f"  {p:<8} {s:6.1%}")


if __name__ == "__main__":
    main()
