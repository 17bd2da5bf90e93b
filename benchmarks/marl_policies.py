"""Is the multi-agent problem a real decision problem? Hand-written joint policies on the
PettingZoo envs, profiled mode, the shipped scenarios.

Usage: python benchmarks/marl_policies.py [--episodes 10] [--energy W] [--model RUN_DIR] [--json PATH]

Every policy runs the same episodes (seeds 1000, 1001, ...; 100 steps each); the return is the
sum over the episode of the mean reward over the agents (each agent's own reward: the envs'
default ``local_ratio``). Printed: mean return and the 95% confidence interval's half width
(Student t, ``agents.evaluation.mean_ci``), mean latency and deadline-miss share per request.
``--energy W`` overrides the scenarios' reward weight of UE energy (to compare with an
earlier weighting). ``--model RUN_DIR`` adds a policy trained on ``multi_ue_v1`` with
parameter sharing (``meg-gym train --config configs/train/ppo_multi_ue.yaml``; its
``final_model.zip``), every agent acting on its own observation, deterministically.

``multi_ue_v1`` (4 UEs, 3 ESs, UMi): every UE on Full UE; every UE offloading (Full ES or
CIAG) to its best-uplink ES; ``spread k``: UEs 0..k-1 run Full ES on ESs 0..k-1 (one each),
the others Full UE; uniform random actions.
``es_coordination_v1`` (8 UEs, 4 ESs, UEs on their nearest ES with a protocol drawn
uniformly): every ES rejecting (the UEs run Full UE), serving, cooperating or handing over
every request; ``serve 1``: each ES serves its first request and rejects the rest; ``serve 1
on ES i``: only ES i (the fastest, a datacenter GPU) serves its first request; random.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import envs
from agents.evaluation import mean_ci


def episode(env, policy, seed: int) -> tuple[float, list[float], list[bool]]:
    obs, _ = env.reset(seed=seed)
    total, lat, miss = 0.0, [], []
    while env.agents:
        obs, rewards, _, _, _ = env.step(policy(env, obs))
        total += float(np.mean(list(rewards.values())))
        res = env._last[1]
        lat += res.latency_s.tolist()
        miss += res.deadline_missed.tolist()
    return total, lat, miss


def shared_model(path: Path):
    """A parameter-sharing SB3 model of a run folder: one batch of every agent's observation."""
    from stable_baselines3 import PPO

    model = PPO.load(path / "final_model.zip", device="cpu")

    def act(env, obs):
        actions, _ = model.predict(np.stack([obs[a] for a in env.agents]), deterministic=True)
        return dict(zip(env.agents, actions))
    return act


def multi_ue_policies(env) -> dict:
    w = env.world
    full_ue = w.placement_index("full_ue", (0,))
    whole = len(w.scenario.bandwidth_shares) - 1

    def every(protocol):
        def act(env, obs):
            best = w.snr_table_db()[0, :, :, 0].argmax(axis=1)
            return {a: np.array([w.placement_index(protocol, (int(best[k]),)), whole])
                    for k, a in enumerate(env.agents)}
        return act

    def spread(k_off):
        def act(env, obs):
            return {a: np.array([w.placement_index("full_es", (k,)) if k < k_off else full_ue, whole])
                    for k, a in enumerate(env.agents)}
        return act

    def random(env, obs):
        return {a: env.action_space(a).sample() for a in env.agents}

    pols = {"all Full UE": spread(0), "all Full ES, best ES": every("full_es"), "all CIAG, best ES": every("ciag")}
    pols.update({f"spread {k}: Full ES on ES 0..{k - 1}, rest Full UE": spread(k) for k in range(1, w.num_es + 1)})
    pols["random"] = random
    return pols


def es_coordination_policies(env) -> dict:
    w = env.world
    k = len(env.action_space(env.possible_agents[0]).nvec) // 2  # request slots per ES
    whole = len(env.shares) - 1
    fastest = int(np.argmax([w.system.es_flops_per_s[i] for i in range(w.num_es)]))
    modes = {0: "reject", 1: "serve", 2: "cooperate", 3: "hand over"}

    def every(mode):
        return lambda env, obs: {a: np.array([mode, whole] * k) for a in env.agents}

    def first(only=None):
        def act(env, obs):
            return {a: np.array(([1, whole] if only in (None, i) else [0, whole]) + [0, whole] * (k - 1))
                    for i, a in enumerate(env.agents)}
        return act

    pols = {f"all {name}": every(m) for m, name in modes.items()}
    pols["serve 1 per ES"] = first()
    pols[f"serve 1 on ES {fastest} only"] = first(fastest)
    pols["random"] = lambda env, obs: {a: env.action_space(a).sample() for a in env.agents}
    return pols


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--episodes", type=int, default=10)
    ap.add_argument("--energy", type=float, default=None, help="override the reward weight of UE energy")
    ap.add_argument("--model", type=Path, default=None, help="a multi_ue_v1 run folder (parameter-sharing PPO)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    kw = {} if args.energy is None else {"reward": {"weights": {"energy": args.energy}}}
    seeds = [1000 + i for i in range(args.episodes)]
    out = {}
    for name, factory, policies in (("multi_ue_v1", envs.multi_ue_v1, multi_ue_policies),
                                    ("es_coordination_v1", envs.es_coordination_v1, es_coordination_policies)):
        env = factory.parallel_env(**kw)
        print(f"\n{name} (energy weight {env.scenario.reward.weights.energy:g}), {len(seeds)} episodes")
        print(f"{'policy':44s} {'return':>18s} {'latency s':>10s} {'missed':>7s}")
        rows = []
        pols = policies(env)
        if args.model is not None and name == "multi_ue_v1":
            pols[f"trained: {args.model}"] = shared_model(args.model)
        for label, pol in pols.items():
            for k, a in enumerate(env.possible_agents):
                env.action_space(a).seed(k)
            returns, lat, miss = [], [], []
            for s in seeds:
                r, la, mi = episode(env, pol, s)
                returns.append(r)
                lat += la
                miss += mi
            mean, half = mean_ci(returns)
            rows.append({"policy": label, "return": mean, "ci95": half, "latency_s": float(np.mean(lat)),
                         "deadline_missed": float(np.mean(miss))})
            print(f"{label:44s} {mean:10.2f} ± {half:5.2f} {np.mean(lat):10.3f} {np.mean(miss):7.3f}")
        out[name] = {"energy_weight": env.scenario.reward.weights.energy, "seeds": seeds, "rows": rows}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
