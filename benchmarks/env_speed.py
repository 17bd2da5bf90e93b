"""Steps per second of the profiled envs against CartPole-v1, in one process, one run.

Usage: python benchmarks/env_speed.py [--steps 20000] [--json]

Actions are pre-sampled so the policy costs nothing; resets happen at episode ends.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym

import envs  # noqa: F401  (registers the MEG ids)


def steps_per_s(env_id: str, steps: int, **kwargs) -> float:
    env = gym.make(env_id, **kwargs)
    env.reset(seed=0)
    env.action_space.seed(0)
    actions = [env.action_space.sample() for _ in range(1000)]
    t0 = time.perf_counter()
    for i in range(steps):
        _, _, term, trunc, _ = env.step(actions[i % 1000])
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = {eid: steps_per_s(eid, args.steps) for eid in ("CartPole-v1", "MEG/SingleES-v0", "MEG/MultiES-v0")}
    res["single_over_cartpole"] = res["MEG/SingleES-v0"] / res["CartPole-v1"]
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:<22} {v:>12,.2f}")


if __name__ == "__main__":
    main()
