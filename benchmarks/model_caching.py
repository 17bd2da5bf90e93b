"""Model caching and retries until satisfied (issue 18): the baselines' table on held-out seeds.

Usage: python benchmarks/model_caching.py [--seeds 10] [--seed-start 1000] [--states 200]
       [--out benchmarks/results/model_caching] [--model label=path.zip ...]

1. ``MEG/ModelCaching-v0`` (configs/scenarios/model_caching.yaml): every cache baseline
   (agents.baselines.CACHE_POLICIES) for one episode per seed: hit ratio, mean latency,
   quality, deadline misses, return, GB loaded over the backhaul.
2. The decision problem: in ``--states`` states visited by LRU, every (placement, share) is
   tried on a copy of the env with the cache sets LRU picks (same randomness); how often each
   is the best one-step action (the routing: which ES serves the request).
3. The user model: ``MEG/SingleES-v1``'s scenario (case_study, requests at 0.5 Hz and 0.2 Hz)
   served by Full ES at the whole band, with ``workload.satisfaction_threshold`` off, 0.4, 0.5,
   0.6, 0.7 (max_attempts 3): mean attempts, response time, bits and UE energy per request.

Writes ``results.json`` and ``table.md`` under ``--out`` (a temporary file, then a rename).
"""

from __future__ import annotations

import argparse
import collections
import copy
import itertools
import json
import os
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import envs  # noqa: F401  (registers the MEG ids)
from agents.baselines import CACHE_POLICIES, make_policy


def caching_table(seeds: list[int], models: list[str]) -> list[dict]:
    """Per cache baseline (and trained model, ``label=path``), the per-episode means over ``seeds``
    (mean and standard deviation)."""
    from agents.evaluation import load_policy

    env = gym.make("MEG/ModelCaching-v0")
    rows = []
    for name in [*CACHE_POLICIES, *models]:
        name, policy = (name, make_policy(name, env)) if name in CACHE_POLICIES else load_policy(name, env)
        per_ep = collections.defaultdict(list)
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            hits, lat, qual, missed, ret, done = [], [], [], 0, 0.0, False
            while not done:
                obs, r, term, trunc, info = env.step(policy.predict(obs)[0])
                done = term or trunc
                hits.append(info["cache_hit"])
                lat.append(info["latency_s"])
                qual.append(info["quality"])
                missed += int(info["deadline_missed"])
                ret += float(r)
            per_ep["hit_ratio"].append(float(np.mean(hits)))
            per_ep["latency_s"].append(float(np.mean(lat)))
            per_ep["quality"].append(float(np.mean(qual)))
            per_ep["deadline_misses"].append(float(missed))
            per_ep["return"].append(ret)
            per_ep["loaded_gb"].append(float(env.unwrapped.world.cache.loaded_bits[0] / 8e9))
        rows.append({"policy": name, **{k: float(np.mean(v)) for k, v in per_ep.items()},
                     **{f"{k}_std": float(np.std(v)) for k, v in per_ep.items()}})
    return rows


def routing_decision(states: int, seed: int) -> dict[str, float]:
    """How often each (placement, share) is the best one-step action, with LRU's cache sets."""
    env = gym.make("MEG/ModelCaching-v0").unwrapped
    lru = make_policy("lru", env)
    obs, _ = env.reset(seed=seed)
    wins: collections.Counter[str] = collections.Counter()
    for _ in range(states):
        action = lru.predict(obs)[0]
        best, label = -np.inf, ""
        for k, d in enumerate(env.decisions):
            for j, share in enumerate(env.shares):
                trial = copy.deepcopy(env)
                r = trial.step(env.encode(k, j, action[2:]))[1]
                if r > best:
                    best, label = r, f"{d.protocol}@ES{d.es_ids[0]} share {share}"
        wins[label] += 1
        obs, _, _, trunc, _ = env.step(action)
        if trunc:
            obs, _ = env.reset()
    return {k: v / states for k, v in wins.most_common()}


def retries_table(seeds: list[int]) -> list[dict]:
    """Full ES at the whole band on case_study, the user model off and at three thresholds."""
    rows = []
    for rate_hz, thr in itertools.product((0.5, 0.2), (None, 0.4, 0.5, 0.6, 0.7)):
        env = gym.make("MEG/SingleES-v1", workload={"satisfaction_threshold": thr, "max_attempts": 3,
                                                    "arrival_rate_hz": rate_hz})
        u = env.unwrapped
        k = next(i for i, d in enumerate(u.decisions) if d.protocol == "full_es")
        action = u.codec.encode(k, len(u.shares) - 1)
        acc = collections.defaultdict(list)
        for seed in seeds:
            env.reset(seed=seed)
            done = False
            while not done:
                _, r, term, trunc, info = env.step(action)
                done = term or trunc
                acc["attempts"].append(info["attempts"])
                acc["latency_s"].append(info["latency_s"])
                acc["quality"].append(info["quality"])
                acc["mbit"].append((info["uplink_bits"] + info["downlink_bits"]) / 1e6)
                acc["energy_j"].append(info["energy_j"])
                acc["satisfied"].append(thr is None or info["quality"] >= thr)
                acc["reward"].append(r)
        rows.append({"arrival_rate_hz": rate_hz, "threshold": thr, **{k2: float(np.mean(v)) for k2, v in acc.items()}})
    return rows


def _fmt_caching(rows: list[dict]) -> str:
    out = ["| policy | hit ratio | latency (s) | quality | deadline misses / 200 | return | GB loaded |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['policy']} | {r['hit_ratio']:.3f} ± {r['hit_ratio_std']:.3f} | {r['latency_s']:.3f} | "
                   f"{r['quality']:.3f} | {r['deadline_misses']:.1f} | {r['return']:.1f} ± {r['return_std']:.1f} | "
                   f"{r['loaded_gb']:.1f} |")
    return "\n".join(out)


def _fmt_retries(rows: list[dict]) -> str:
    out = ["| arrivals (Hz) | threshold | attempts | response time (s) | quality | satisfied | Mbit / request |"
           " UE energy (J) | reward |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append(f"| {r['arrival_rate_hz']} | {r['threshold'] if r['threshold'] is not None else 'off'} | "
                   f"{r['attempts']:.3f} | "
                   f"{r['latency_s']:.3f} | {r['quality']:.3f} | {r['satisfied']:.3f} | {r['mbit']:.1f} | "
                   f"{r['energy_j']:.4f} | {r['reward']:.3f} |")
    return "\n".join(out)


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--seed-start", type=int, default=1000)
    ap.add_argument("--states", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/model_caching")
    ap.add_argument("--model", action="append", default=[], help="a trained model to add, label=path.zip")
    args = ap.parse_args()
    if args.seeds < 1 or args.states < 1:
        raise SystemExit(f"'--seeds' and '--states' must be >= 1 (got {args.seeds} and {args.states})")
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    t0 = time.perf_counter()
    caching = caching_table(seeds, args.model)
    routing = routing_decision(args.states, args.seed_start)
    retries = retries_table(seeds)
    command = (f"python benchmarks/model_caching.py --seeds {args.seeds} --seed-start {args.seed_start} "
               f"--states {args.states}" + "".join(f" --model {m}" for m in args.model))
    record = {"command": command, "seeds": seeds, "caching": caching,
              "routing_best_action_share": routing, "retries": retries,
              "wall_s": round(time.perf_counter() - t0, 1)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write(out / "results.json", json.dumps(record, indent=2))
    table = (f"MEG/ModelCaching-v0, {len(seeds)} held-out seeds ({seeds[0]}..{seeds[-1]}), one episode of 200 "
             f"requests each (mean ± std over episodes)\n\n{_fmt_caching(caching)}\n\n"
             f"Best one-step (placement, share) over {args.states} LRU states: "
             + ", ".join(f"{k} {v:.1%}" for k, v in routing.items())
             + f"\n\nUser model on case_study, Full ES at the whole band, max_attempts 3\n\n{_fmt_retries(retries)}\n")
    _write(out / "table.md", table)
    print(table)


if __name__ == "__main__":
    main()
