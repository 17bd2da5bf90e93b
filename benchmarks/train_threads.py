"""Learner steps per second of `meg-gym train` at one torch thread against two, in alternating rounds.

Usage: python benchmarks/train_threads.py [--config configs/train/ppo_generation_split.yaml] [--steps 8192]
    [--rounds 2] [--threads 1,2] [--json benchmarks/results/train_threads.json]

Each round trains a fresh run of ``--steps`` steps per thread count (a subprocess each, the order
alternating between rounds, so that a drift in the machine's load hits both alike) and records its
wall time. What it answers: whether `meg-gym train`'s default of one intra-op thread costs a small
policy anything on an idle machine, and what a second thread costs when something else runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one_run(config: str, steps: int, threads: int) -> float:
    """Seconds of one ``meg-gym train`` of ``steps`` steps at ``threads`` torch threads (start-up included)."""
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "meg_gym.cli", "train", "--config", config, "--n-timesteps", str(steps),
                        "--torch-threads", str(threads), "--out", str(Path(out) / "run")],
                       check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/train/ppo_generation_split.yaml")
    ap.add_argument("--steps", type=int, default=8192)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--json")
    args = ap.parse_args()
    counts = [int(x) for x in args.threads.split(",")]
    seconds: dict[int, list[float]] = {t: [] for t in counts}
    for r in range(args.rounds):
        for t in (counts if r % 2 == 0 else counts[::-1]):
            seconds[t].append(one_run(args.config, args.steps, t))
            print(f"round {r}: {t} thread(s) {args.steps / seconds[t][-1]:.0f} steps/s", flush=True)
    rate = {t: args.steps / (sum(v) / len(v)) for t, v in seconds.items()}
    base = counts[0]
    result = {"config": args.config, "steps": args.steps, "rounds": args.rounds, "load_average": os.getloadavg(),
              "seconds": seconds, "steps_per_s": rate,
              "ratio_to_first": {t: rate[t] / rate[base] for t in counts}}
    print(json.dumps(result, indent=1))
    if args.json:
        from meg_gym.files import atomic_write

        atomic_write(Path(args.json), json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
