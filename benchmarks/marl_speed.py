"""Joint steps per second of the PettingZoo env multi_ue_v1 (profiled mode) as the number of UEs grows.

Usage: python benchmarks/marl_speed.py [--ues 2,4,8,16,32] [--es 8] [--channels umi,awgn]
                                        [--seconds 10] [--rounds 1] [--profile 32] [--json PATH]

One process. For every (channel, M UEs) the env is built on ``configs/scenarios/multi_ue.yaml``
widened to ``--es`` ESs (sites on a grid 120 m apart, loads 0.2-0.5), actions are pre-sampled
uniformly from the agents' action spaces (so the policy costs nothing), and ``env.step`` runs
for about ``--seconds`` seconds, resetting at episode ends (100 steps). ``--rounds`` passes run
over all configurations in turn, each with CartPole-v1 as a yardstick of the host's speed (it
drifts by 2x over minutes on a shared VM); each configuration's best round is reported, with
the range over rounds. Each UE's request rate
is ``0.5 * N / M`` Hz, so the load offered to each ES stays the same whatever M. ``awgn`` gives
each UE its own SNR drawn from [0, 20] dB; ``umi`` is the scenario's TR 38.901 link budget with a
moving UE per agent (all UEs' links advanced together by ``meg_gym.channel.batched``). ``world``
is the same run without the PettingZoo layer (Core.step on the decoded actions): the
bandwidth rule, the queue walk (every request against the shared ES queues, in the seeded
order), the quality draw, the channel's block and the ES queues' background run compiled over
all UEs and ESs. ``--profile M`` prints
cProfile's top functions for M UEs on the first channel.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from pathlib import Path

import numpy as np

import envs


def es_layout(n: int) -> list[dict]:
    cols = int(np.ceil(np.sqrt(n)))
    return [{"device": "edge_gpu", "load": [0.2, 0.3, 0.4, 0.5][i % 4],
             "position_m": [120.0 * (i % cols), 120.0 * (i // cols)]} for i in range(n)]


def scenario_kwargs(channel: str, m: int, n: int) -> dict:
    """multi_ue_v1's arguments for M UEs on n ESs (the module docstring's scenario)."""
    kw = dict(num_ues=m, num_es=n, es=es_layout(n), workload={"arrival_rate_hz": 0.5 * n / m})
    if channel == "awgn":
        kw.update(channel={"kind": "awgn", "snr_db": 10.0}, ue_snr_db=(0.0, 20.0))
    elif channel != "umi":
        raise SystemExit(f"--channels must name umi and/or awgn (got {channel!r})")
    return kw


def make_env(channel: str, m: int, n: int):
    return envs.multi_ue_v1.parallel_env(**scenario_kwargs(channel, m, n))


def presample(env, count: int = 256) -> list[dict]:
    for k, a in enumerate(env.possible_agents):
        env.action_space(a).seed(k)
    return [{a: env.action_space(a).sample() for a in env.possible_agents} for _ in range(count)]


def run_env(env, actions: list[dict], seconds: float) -> tuple[float, int]:
    env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while True:
        for _ in range(50):
            env.step(actions[steps % len(actions)])
            steps += 1
            if not env.agents:
                env.reset()
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return steps / dt, steps


def run_world(env, actions: list[dict], seconds: float) -> float:
    w = env.world
    decoded = []
    for a in actions:
        env.agents = env.possible_agents[:]
        decoded.append(tuple(x[None] for x in env._decode(a)))
    w.reset(0)
    steps, t0 = 0, time.perf_counter()
    while True:
        for _ in range(50):
            w.step(*decoded[steps % len(decoded)])
            steps += 1
            if w.served[0] >= env.max_cycles:
                w.reset(steps)
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return steps / dt


def cartpole_steps_per_s(seconds: float) -> float:
    """CartPole-v1 steps/s in the same process: a yardstick for how loaded the machine is."""
    import gymnasium as gym

    env = gym.make("CartPole-v1")
    env.reset(seed=0)
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(1000):
            _, _, term, trunc, _ = env.step(steps % 2)
            steps += 1
            if term or trunc:
                env.reset()
    return steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ues", default="2,4,8,16,32")
    ap.add_argument("--es", type=int, default=8)
    ap.add_argument("--channels", default="umi,awgn")
    ap.add_argument("--seconds", type=float, default=10.0, help="per configuration and round")
    ap.add_argument("--rounds", type=int, default=1, help="passes over all configurations; the best counts")
    ap.add_argument("--profile", type=int, default=0, help="cProfile this many UEs (0: no profile)")
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    ues = [int(x) for x in args.ues.split(",")]
    configs = [(channel, m) for channel in args.channels.split(",") for m in ues]
    built = {}
    for channel, m in configs:
        env = make_env(channel, m, args.es)
        built[(channel, m)] = (env, presample(env))
    # rounds alternate over the configurations (the host's speed drifts): each one's best round counts
    env_sps: dict = {c: [] for c in configs}
    world_sps: dict = {c: [] for c in configs}
    steps_run: dict = {c: 0 for c in configs}
    ref = []
    for r in range(args.rounds):
        ref.append(cartpole_steps_per_s(2.0))
        print(f"round {r + 1}/{args.rounds}: CartPole-v1 {ref[-1]:,.0f} steps/s", flush=True)
        for c in configs:
            env, acts = built[c]
            sps, steps = run_env(env, acts, args.seconds)
            env_sps[c].append(sps)
            steps_run[c] += steps
            world_sps[c].append(run_world(env, acts, args.seconds / 2))
    ref.append(cartpole_steps_per_s(2.0))
    rows = []
    print(f"CartPole-v1 per round: {', '.join(f'{x:,.0f}' for x in ref)} steps/s (best {max(ref):,.0f})")
    print(f"{'channel':<8}{'UEs':>5}{'ESs':>5}{'joint steps/s':>15}{'rounds range':>18}{'agent steps/s':>15}"
          f"{'world only':>12}{'us/agent':>10}")
    for channel, m in configs:
        sps, wsps = max(env_sps[(channel, m)]), max(world_sps[(channel, m)])
        lo = min(env_sps[(channel, m)])
        row = {"channel": channel, "ues": m, "es": args.es, "joint_steps_per_s": sps,
               "joint_steps_per_s_rounds": env_sps[(channel, m)], "agent_steps_per_s": sps * m,
               "world_steps_per_s": wsps, "us_per_agent_step": 1e6 / (sps * m), "steps": steps_run[(channel, m)],
               "placements": len(built[(channel, m)][0].world.placements)}
        rows.append(row)
        print(f"{channel:<8}{m:>5}{args.es:>5}{sps:>15,.0f}{f'{lo:,.0f}-{sps:,.0f}':>18}{sps * m:>15,.0f}"
              f"{wsps:>12,.0f}{row['us_per_agent_step']:>10.1f}")
    if args.profile:
        channel = args.channels.split(",")[0]
        env = make_env(channel, args.profile, args.es)
        acts = presample(env)
        prof = cProfile.Profile()
        prof.enable()
        run_env(env, acts, args.seconds)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(22)
        print(f"\ncProfile, {channel}, {args.profile} UEs x {args.es} ESs (sorted by own time):")
        print("\n".join(out.getvalue().splitlines()[4:]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"cartpole_steps_per_s": ref, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
