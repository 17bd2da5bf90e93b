"""Native numpy vector env against Gymnasium's SyncVectorEnv over the same env, in one process.

Usage: python benchmarks/vector_speed.py [--env MEG/SingleES-v0] [--num-envs 256] [--seconds 5] [--json PATH]

Both are built with ``gym.make_vec`` (``vectorization_mode="vector_entry_point"`` and
``"sync"``), seeded alike, and stepped with the same pre-sampled actions for about
``--seconds`` each (after one warm-up step). Reported: env steps per second (batch steps x
num_envs) and the ratio (target >= 20 at 256 envs).
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym

import envs  # noqa: F401  (registers the MEG ids)


def env_steps_per_s(env_id: str, mode: str, num_envs: int, seconds: float) -> float:
    v = gym.make_vec(env_id, num_envs=num_envs, vectorization_mode=mode)
    v.reset(seed=0)
    v.action_space.seed(0)
    actions = [v.action_space.sample() for _ in range(64)]
    v.step(actions[0])
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        v.step(actions[steps % 64])
        steps += 1
    rate = steps * num_envs / (time.perf_counter() - t0)
    v.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="MEG/SingleES-v0")
    ap.add_argument("--num-envs", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    native = env_steps_per_s(args.env, "vector_entry_point", args.num_envs, args.seconds)
    sync = env_steps_per_s(args.env, "sync", args.num_envs, args.seconds)
    res = {"env": args.env, "num_envs": args.num_envs, "native_steps_per_s": native, "sync_steps_per_s": sync,
           "ratio": native / sync}
    print(f"{args.env} x {args.num_envs}: native {native:,.0f} env steps/s, SyncVectorEnv {sync:,.0f}, "
          f"ratio {native / sync:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
