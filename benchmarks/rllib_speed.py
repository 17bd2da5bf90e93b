"""RLlib PPO env steps per second on MEG/SingleES-v1 and multi_ue_v1 with 1 and 2 env runners (local Ray).

Usage: PYTHONPATH=. python benchmarks/rllib_speed.py [--iterations 2] [--runners 1,2] [--json [PATH]]

Each run is the shipped config (``configs/train/rllib_ppo_single_es.yaml``,
``rllib_ppo_multi_ue.yaml``: 1,024 env steps per training iteration) trained for
``--iterations`` iterations in a fresh run folder; the speed is the training loop's env steps
over its wall time (sampling and learning together; Ray's start and the algorithm's build
excluded), as ``agents.rllib.train`` reports it in ``summary.json``. A multi-agent env step is
one step of every UE.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

RESULT = Path(__file__).resolve().parent / "results" / "rllib_speed.json"
CONFIGS = {"MEG/SingleES-v1": "configs/train/rllib_ppo_single_es.yaml",
           "multi_ue_v1": "configs/train/rllib_ppo_multi_ue.yaml"}


def measure(iterations: int, runners: list[int]) -> dict[str, dict[str, float]]:
    from agents.rllib import load_rllib_config, train

    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for env, path in CONFIGS.items():
            batch = load_rllib_config(path).hyperparams.get("train_batch_size_per_learner", 4000)
            out[env] = {}
            for r in runners:
                s = train(path, out=Path(tmp) / f"{env.replace('/', '_')}_{r}", n_timesteps=iterations * batch,
                          num_env_runners=r)
                out[env][f"{r} env runners"] = s["env_steps_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--runners", default="1,2")
    ap.add_argument("--json", nargs="?", const=str(RESULT), help=f"write the result as JSON (default {RESULT})")
    args = ap.parse_args()
    res = measure(args.iterations, [int(x) for x in args.runners.split(",")])
    for env, row in res.items():
        print(env, ", ".join(f"{k}: {v:,.0f} env steps/s" for k, v in row.items()))
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps({"iterations": args.iterations, "env_steps_per_s": res}, indent=2), encoding="utf-8")
        tmp.replace(path)


if __name__ == "__main__":
    main()
