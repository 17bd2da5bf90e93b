"""Agent steps per second of multi_ue_v1's vectorised form against its PettingZoo parallel env, in one process.

Usage: python benchmarks/marl_vector_speed.py [--copies 16] [--ues 32] [--es 8] [--channel umi]
                                               [--seconds 4] [--rounds 3] [--json PATH]

``envs.multi_ue_v1.vector_env(copies, num_ues=M)`` (the world core with ``copies`` copies of ``M``
UEs, one Gymnasium vector env of agent rows) and ``parallel_env(num_ues=M)`` (one copy) are built
on the scenario of ``benchmarks/marl_speed.py`` and stepped with pre-sampled actions, taking turns
``--rounds`` times; each one's best round counts (the host's speed drifts 2x over minutes).
"""

from __future__ import annotations

import argparse
import json
import time

from marl_speed import scenario_kwargs  # benchmarks/ is on the path when run as a script

import envs


def _vector_sps(vec, actions, seconds: float) -> float:
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        vec.step(actions[steps % len(actions)])
        steps += 1
    return steps * vec.num_envs / (time.perf_counter() - t0)


def _parallel_sps(env, actions, seconds: float) -> float:
    env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        env.step(actions[steps % len(actions)])
        steps += 1
        if not env.agents:
            env.reset()
    return steps * len(env.possible_agents) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=16)
    ap.add_argument("--ues", type=int, default=32)
    ap.add_argument("--es", type=int, default=8)
    ap.add_argument("--channel", default="umi")
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    kw = scenario_kwargs(args.channel, args.ues, args.es)
    vec = envs.multi_ue_v1.vector_env(args.copies, **kw)
    par = envs.multi_ue_v1.parallel_env(**kw)
    vec.reset(seed=0)
    vec.action_space.seed(0)
    v_actions = [vec.action_space.sample() for _ in range(16)]
    p_actions = [{a: par.action_space(a).sample() for a in par.possible_agents} for _ in range(16)]
    rounds = [(_vector_sps(vec, v_actions, args.seconds), _parallel_sps(par, p_actions, args.seconds))
              for _ in range(args.rounds)]
    v, p = max(r[0] for r in rounds), max(r[1] for r in rounds)
    ratios = [a / b for a, b in rounds]
    res = {"copies": args.copies, "ues": args.ues, "es": args.es, "channel": args.channel,
           "vector_agent_steps_per_s": v, "parallel_agent_steps_per_s": p, "ratio": v / p,
           "ratio_min_round": min(ratios), "ratio_max_round": max(ratios), "rounds": args.rounds}
    print(f"{args.channel} {args.copies} x {args.ues} UEs x {args.es} ESs: vector {v:,.0f} agent steps/s, "
          f"parallel env {p:,.0f}, ratio {v / p:.1f} (per round {min(ratios):.1f} to {max(ratios):.1f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
