"""Seconds per live CIAG step of MEG/SingleES-live-v1 at a given torch thread count.

Usage: python benchmarks/live_step.py [--torch-threads N] [--steps 5] [--busy]

One warm-up step (FLOP counts, the perfect-channel reference), then ``--steps`` timed steps of
CIAG on the whole band. ``--busy`` keeps one other process spinning on a core meanwhile (what
another env worker, a trainer or the tests do to a 2-core machine).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the MEG ids)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-threads", type=int, default=None, help="default: the scenario's rule (1 for tiny)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--busy", action="store_true")
    args = ap.parse_args()
    kw = {} if args.torch_threads is None else {"torch_threads": args.torch_threads}
    env = gym.make("MEG/SingleES-live-v1", **kw)
    env.reset(seed=0)
    ciag = [d.protocol for d in env.unwrapped.decisions].index("ciag")
    action = np.array([ciag, len(env.unwrapped.shares) - 1])
    env.step(action)
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        times = []
        for _ in range(args.steps):
            t = time.perf_counter()
            env.step(action)
            times.append(time.perf_counter() - t)
    finally:
        if spinner is not None:
            spinner.kill()
    import torch

    print(f"threads {torch.get_num_threads()}{' (one core busy)' if args.busy else ''}: "
          f"{', '.join(f'{x:.2f}' for x in times)} s per step")


if __name__ == "__main__":
    main()
