"""Native numpy vector env against Gymnasium's SyncVectorEnv over the same env, in one process.

Usage: python benchmarks/vector_speed.py [--env MEG/SingleES-v1] [--num-envs 256] [--seconds 5]
                                         [--rounds 3] [--against sync|cartpole] [--json PATH]

``--against cartpole`` compares with Gymnasium's own numpy ``CartPoleVectorEnv`` (CartPole-v1's
vector entry point) at the same number of copies instead of SyncVectorEnv over the MEG env.

Both are built with ``gym.make_vec`` (``vectorization_mode="vector_entry_point"`` and
``"sync"``), seeded alike, and stepped with the same pre-sampled actions. They take turns,
``--rounds`` times ``--seconds`` each (after one warm-up step); each one's best round is
reported (the slower rounds measure the other jobs on the machine), as env steps per second
(batch steps x num_envs), with the ratio (target >= 20 at 256 envs) and the per-round ratios'
range.
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym

import envs  # noqa: F401  (registers the MEG ids)


class _Runner:
    def __init__(self, env_id: str, mode: str, num_envs: int) -> None:
        self.env_id = env_id
        self.v = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
        self.v.reset(seed=0)
        self.v.action_space.seed(0)
        self.actions = [self.v.action_space.sample() for _ in range(64)]
        self.v.step(self.actions[0])
        self.num_envs = num_envs

    def env_steps_per_s(self, seconds: float) -> float:
        v, actions = self.v, self.actions
        steps, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            v.step(actions[steps % 64])
            steps += 1
        return steps * self.num_envs / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="MEG/SingleES-v1")
    ap.add_argument("--num-envs", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--against", choices=("sync", "cartpole"), default="sync")
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    native_env = _Runner(args.env, "vector_entry_point", args.num_envs)
    sync_env = _Runner(args.env, "sync", args.num_envs) if args.against == "sync" \
        else _Runner("CartPole-v1", "vector_entry_point", args.num_envs)
    rounds = [(native_env.env_steps_per_s(args.seconds), sync_env.env_steps_per_s(args.seconds))
              for _ in range(args.rounds)]
    native, sync = max(r[0] for r in rounds), max(r[1] for r in rounds)
    ratios = [n / s for n, s in rounds]
    other = "SyncVectorEnv" if args.against == "sync" else "CartPoleVectorEnv"
    res = {"env": args.env, "num_envs": args.num_envs, "against": other, "native_steps_per_s": native,
           "other_steps_per_s": sync,
           "ratio": native / sync, "ratio_min_round": min(ratios), "ratio_max_round": max(ratios),
           "rounds": args.rounds, "seconds_per_round": args.seconds}
    print(f"{args.env} x {args.num_envs}: native {native:,.0f} env steps/s, {other} {sync:,.0f}, "
          f"ratio {native / sync:.3g} (per round {min(ratios):.3g} to {max(ratios):.3g})")
    native_env.v.close()
    sync_env.v.close()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
