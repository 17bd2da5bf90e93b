"""The eavesdropper and digital-twin scenarios measured: baselines on held-out seeds, the decision problem.

Usage: python benchmarks/features.py --scenario eavesdropper|digital_twin [--seeds 10] [--states 300]
       [--json PATH]
       python benchmarks/features.py --scenario eavesdropper --digital [--seeds 10] [--json PATH]

* Single-env view (``gym.make("MEG/SingleES-v1", config=SCENARIO)``, profiled): the baselines
  (random, round_robin, greedy, every fixed protocol, the one-step oracle) for one episode per seed
  (1000, 1001, ...: held out from training), each reported as mean return with the 95% confidence
  interval's half width (``agents.evaluation.mean_ci``), mean quality and latency, mean leakage or
  mean age of information per request, deadline misses per episode and the protocols chosen.
* The decision problem: the one-step oracle's best protocol in ``--states`` states visited by a
  random policy (``benchmarks/decision_problem.py``); target: no protocol best in more than 60%.
* eavesdropper: which protocol leaks what, read off the shipped leakage table (live-measured):
  per protocol the tensor on each hop and the leakage at eavesdropper SNRs -10, 0, 10, 20 dB
  (analog), from a bit-exact copy (digital, once decodable), and 0 encrypted; the multi-ES protocols'
  too, placed on ESs 0 and 1. Then the multi-agent form (``envs.es_coordination_v1.parallel_env(
  eavesdropper={"position_m": ...})``, the eavesdropper amid the four ESs at [60, 60] and off-site at
  [300, 300]): joint ES policies
  (every slot rejected, served, cooperated or handed over, or random), the team return and the mean
  leakage of the requests in the ESs' slots.
* eavesdropper ``--digital``: the same scenario with digital transmission (the eavesdropper at
  -20..20 dB reads a payload only when it decodes the link's rate), without and with encryption:
  fixed protocols and the one-step oracle, mean leakage, latency and bits per request.
* digital_twin: the multi-agent form (``envs.multi_ue_v1.parallel_env(config="digital_twin",
  num_ues=8)``): hand-written joint policies, the mean AoI over agents and steps and the share
  of updates delivered within the period.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from agents.baselines import make_policy, policy_names  # noqa: E402
from agents.evaluation import mean_ci  # noqa: E402
from benchmarks.decision_problem import best_protocol_shares  # noqa: E402

FEATURE_KEY = {"eavesdropper": "leakage", "digital_twin": "aoi_s"}


def single_env(scenario: str, seeds: list[int]) -> dict:
    env = gym.make("MEG/SingleES-v1", config=scenario)
    key = FEATURE_KEY[scenario]
    names = ["random", "round_robin", "greedy", *[n for n in policy_names(env) if n.startswith("fixed:")], "oracle"]
    out = {}
    for name in names:
        rets, qual, lat, feat, miss = [], [], [], [], []
        chosen: collections.Counter[str] = collections.Counter()
        for s in seeds:
            policy = make_policy(name, env, seed=s)
            obs, _ = env.reset(seed=s)
            total, done, q, la, f, m = 0.0, False, [], [], [], 0
            while not done:
                action, _ = policy.predict(obs)
                obs, r, term, trunc, info = env.step(action)
                done = term or trunc
                total += float(r)
                q.append(info["quality"])
                la.append(info["latency_s"])
                f.append(info[key])
                m += int(info["deadline_missed"])
                chosen[info["protocol"]] += 1
            rets.append(total)
            qual.append(np.mean(q))
            lat.append(np.mean(la))
            feat.append(np.mean(f))
            miss.append(m)
        n = sum(chosen.values())
        out[name] = {"return": mean_ci(rets), "quality": float(np.mean(qual)), "latency_s": float(np.mean(lat)),
                     key: float(np.mean(feat)), "deadline_misses": float(np.mean(miss)),
                     "protocols": {p: c / n for p, c in chosen.most_common(3)}}
        print(f"{name:<14} return {out[name]['return'][0]:9.1f} +- {out[name]['return'][1]:5.1f}  "
              f"{key} {out[name][key]:.3f}  latency {out[name]['latency_s']:.2f}", flush=True)
    return out


def leaks_table() -> dict:
    from meg_gym.channel.digital import DigitalLink  # noqa: F401  (the digital rows use the exact copy)
    from meg_gym.config import load_scenario
    from meg_gym.eavesdropper import _interp_rows, leakage_table_path, load_leakage_table
    from meg_gym.protocols import PROTOCOLS, Send, place

    table = load_leakage_table(leakage_table_path(load_scenario("eavesdropper")))
    rows = {}
    for p in [p for p in PROTOCOLS if p in table.curves]:  # the protocols' order, single-ES ones first
        plan = place(p, (0, 1) if PROTOCOLS[p].multi_es else (0,))
        sent: dict[str, list[str]] = {}
        for s in plan.steps:  # every tensor a hop carries once (a multi-ES plan sends one per ES or tile)
            if isinstance(s, Send) and s.tensor != "text" and s.tensor not in sent.setdefault(s.link, []):
                sent[s.link].append(s.tensor)
        rows[p] = {}
        for hop, curve in table.curves[p].items():
            at = {f"{x:g} dB": float(_interp_rows(np.array(table.snr_grid_db), np.array([curve]), np.array([x]))[0])
                  for x in (-10.0, 0.0, 10.0, 20.0)}
            rows[p][hop] = {"tensor": " + ".join(sent[hop]), **at, "digital": table.exact[p][hop], "encrypted": 0.0}
    return {"requests": table.requests, "rows": rows}


def eavesdropper_marl(seeds: list[int]) -> dict:
    """es_coordination_v1 with an eavesdropper amid the four ESs and one off-site: joint ES policies."""
    return {"positions": [_eavesdropper_marl_at(seeds, at) for at in ((60.0, 60.0), (300.0, 300.0))]}


def _eavesdropper_marl_at(seeds: list[int], position_m: tuple[float, float]) -> dict:
    """es_coordination_v1 with an eavesdropper at ``position_m``: the team return and the leakage of joint
    ES policies."""
    from envs.es_coordination import MODES

    par = envs.es_coordination_v1.parallel_env(eavesdropper={"position_m": list(position_m)})
    k, last = par.slots, len(par.shares) - 1

    def every_slot(mode):
        return lambda obs: {a: np.array([mode, last] * k) for a in obs}

    rng = np.random.default_rng(0)
    policies = {f"every slot: {m}": every_slot(j) for j, m in enumerate(MODES)}
    policies["random"] = lambda obs: {a: par.action_space(a).sample() for a in obs}
    out = {}
    for name, policy in policies.items():
        rets, leak = [], []
        for s in seeds:
            obs, _ = par.reset(seed=s)
            for a in par.agents:  # every agent's space: the random policy's draws repeat run to run
                par.action_space(a).seed(int(rng.integers(2**31)))
            total = 0.0
            while par.agents:
                obs, _, _, _, infos = par.step(policy(obs))
                total += float(next(iter(infos.values()))["team_reward"])
                slots = np.concatenate([i["leakage"] for i in infos.values()])
                leak += slots[~np.isnan(slots)].tolist()  # the requests in the ESs' slots (NaN: an empty slot)
            rets.append(total)
        out[name] = {"return": mean_ci(rets), "leakage": float(np.mean(leak))}
        print(f"{list(position_m)} {name:<24} return {out[name]['return'][0]:8.1f} +- {out[name]['return'][1]:5.1f}  "
              f"leakage {out[name]['leakage']:.3f}", flush=True)
    return {"num_ues": par.world.ues, "position_m": list(position_m), "policies": out}


def twins_marl(seeds: list[int], num_ues: int = 8) -> dict:
    par = envs.multi_ue_v1.parallel_env(config="digital_twin", num_ues=num_ues)
    w = par.world

    def best_es(protocol):
        def act(obs):
            n = w.num_es
            return {a: np.array([w.placement_index(protocol, (int(np.argmax(o[:n])),)), 2]) for a, o in obs.items()}
        return act

    def spread(protocol):
        def act(obs):
            return {a: np.array([w.placement_index(protocol, (k % w.num_es,)), 1]) for k, a in enumerate(obs)}
        return act

    rng = np.random.default_rng(0)
    policies = {
        "all full_ue": lambda obs: {a: np.array([w.placement_index("full_ue", (0,)), 0]) for a in obs},
        "all full_es, best uplink ES": best_es("full_es"),
        "all ciag, best uplink ES": best_es("ciag"),
        "full_es spread over the ESs": spread("full_es"),
        "ciag spread over the ESs": spread("ciag"),
        "random": lambda obs: {a: par.action_space(a).sample() for a in obs},
    }
    out = {}
    for name, policy in policies.items():
        rets, aoi, fresh = [], [], []
        for s in seeds:
            obs, _ = par.reset(seed=s)
            par.action_space(par.agents[0]).seed(int(rng.integers(2**31)))
            total, a_list = 0.0, []
            while par.agents:
                obs, rew, _, _, infos = par.step(policy(obs))
                total += float(np.mean(list(rew.values())))
                a_list += [i["aoi_s"] for i in infos.values()]
                fresh.append(float(np.mean(w.age_s == w.twin.period_s)))
            rets.append(total)
            aoi.append(np.mean(a_list))
        out[name] = {"return": mean_ci(rets), "aoi_s": float(np.mean(aoi)), "delivered": float(np.mean(fresh))}
        print(f"{name:<30} return {out[name]['return'][0]:8.1f} +- {out[name]['return'][1]:5.1f}  "
              f"aoi {out[name]['aoi_s']:.2f} s  delivered {out[name]['delivered']:.1%}", flush=True)
    return {"num_ues": num_ues, "policies": out}


def digital(seeds: list[int]) -> dict:
    out = {}
    for label, eve in (("digital", {}), ("digital, encrypted", {"encryption": True})):
        env = gym.make("MEG/SingleES-v1", config="eavesdropper", transmission={"mode": "digital"},
                       eavesdropper={"snr_range_db": [-20.0, 20.0], **eve})
        rows = {}
        for name in ("fixed:full_es", "fixed:uieg", "fixed:ciag", "fixed:esuc", "oracle"):
            rets, leak, lat, bits = [], [], [], []
            for s in seeds:
                policy = make_policy(name, env, seed=s)
                obs, _ = env.reset(seed=s)
                total, done = 0.0, False
                while not done:
                    obs, r, term, trunc, info = env.step(policy.predict(obs)[0])
                    done = term or trunc
                    total += float(r)
                    leak.append(info["leakage"])
                    lat.append(info["latency_s"])
                    bits.append(info["uplink_bits"] + info["downlink_bits"])
                rets.append(total)
            rows[name] = {"return": mean_ci(rets), "leakage": float(np.mean(leak)), "latency_s": float(np.mean(lat)),
                          "bits": float(np.mean(bits))}
            print(f"{label:<20} {name:<14} return {rows[name]['return'][0]:8.1f}  leakage {rows[name]['leakage']:.3f}"
                  f"  latency {rows[name]['latency_s']:.4f}  bits {rows[name]['bits']:,.0f}", flush=True)
        out[label] = rows
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenario", choices=sorted(FEATURE_KEY), required=True)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--states", type=int, default=300)
    ap.add_argument("--digital", action="store_true", help="eavesdropper: digital transmission, plain and encrypted")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args()
    seeds = list(range(1000, 1000 + args.seeds))
    if args.digital:
        res = {"scenario": args.scenario, "env": "MEG/SingleES-v1", "seeds": seeds, "digital": digital(seeds)}
        if args.json:
            from meg_gym.files import atomic_write

            atomic_write(args.json, json.dumps(res, indent=1) + "\n")
        return
    res = {"scenario": args.scenario, "env": "MEG/SingleES-v1", "seeds": seeds, "states": args.states}
    res["decision_problem"] = best_protocol_shares("MEG/SingleES-v1", args.states, config=args.scenario)
    print("one-step best protocol:", {k: f"{v:.1%}" for k, v in res["decision_problem"].items()}, flush=True)
    res["single_env"] = single_env(args.scenario, seeds)
    if args.scenario == "eavesdropper":
        res["leaks"] = leaks_table()
        res["multi_agent"] = eavesdropper_marl(seeds)
    else:
        res["multi_agent"] = twins_marl(seeds)
    if args.json:
        from meg_gym.files import atomic_write

        atomic_write(args.json, json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
