"""Steps per second of the profiled envs against CartPole-v1, in one process.

Usage: python benchmarks/env_speed.py [--steps 20000] [--rounds 5] [--json]

Actions are pre-sampled so the policy costs nothing; resets happen at episode ends. The envs
take turns: every round runs ``--steps`` steps of each, and each env's best round is
reported (as ``timeit`` advises: the slower rounds measure the other jobs on the machine,
not the env), with the per-round ratio's range alongside.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym

import envs  # noqa: F401  (registers the MEG ids)

IDS = ("CartPole-v1", "MEG/SingleES-v1", "MEG/MultiES-v1")


class _Runner:
    def __init__(self, env_id: str) -> None:
        self.env = gym.make(env_id)
        self.env.reset(seed=0)
        self.env.action_space.seed(0)
        self.actions = [self.env.action_space.sample() for _ in range(1000)]

    def steps_per_s(self, steps: int) -> float:
        env, actions = self.env, self.actions
        t0 = time.perf_counter()
        for i in range(steps):
            _, _, term, trunc, _ = env.step(actions[i % 1000])
            if term or trunc:
                env.reset()
        return steps / (time.perf_counter() - t0)


def measure(steps: int, rounds: int) -> dict[str, float]:
    runners = {eid: _Runner(eid) for eid in IDS}
    per_round: dict[str, list[float]] = {eid: [] for eid in IDS}
    for _ in range(rounds):
        for eid, r in runners.items():
            per_round[eid].append(r.steps_per_s(steps))
    res: dict[str, float] = {eid: max(v) for eid, v in per_round.items()}
    ratios = [s / c for s, c in zip(per_round["MEG/SingleES-v1"], per_round["CartPole-v1"], strict=True)]
    res["single_over_cartpole"] = res["MEG/SingleES-v1"] / res["CartPole-v1"]
    res["ratio_min_round"], res["ratio_max_round"] = min(ratios), max(ratios)
    res["rounds"], res["steps_per_round"] = rounds, steps
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res = measure(args.steps, args.rounds)
    if args.json:
        print(json.dumps(res))
    else:
        for k, v in res.items():
            print(f"{k:<22} {v:>12,.2f}")


if __name__ == "__main__":
    main()
