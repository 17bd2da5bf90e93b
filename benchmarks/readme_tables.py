"""The result tables of README.md and docs/, generated from what measured them (issue 22, item 5).

Usage: python benchmarks/readme_tables.py [--check]

A generated table sits in a Markdown file between two markers::

    <!-- table:NAME -->
    ... (rewritten by this script) ...
    <!-- /table -->

``NAME`` is a key of :data:`TABLES`: each entry reads one JSON file under ``benchmarks/results/``
(or the model's ``meta.json``, or the envs' spaces from the code) and names the command that
writes it. Without arguments the script rewrites every marked region of README.md and
docs/**/*.md (each file through a temporary file and a rename); ``--check`` rewrites nothing,
prints one line per region that differs from its source and exits 1 if any does
(``tests/test_docs.py`` runs the check, so a table cannot drift from its JSON).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # document this checkout's envs, not an installed copy
    sys.path.insert(0, str(ROOT))

__all__ = ["TABLES", "Table", "check", "doc_files", "regions", "render", "rewrite"]

# markers stand on lines of their own (a marker quoted in prose, inside backticks, is not one)
MARKER = re.compile(r"^<!-- table:(?P<name>[A-Za-z0-9_]+) -->\n(?P<body>.*?)^<!-- /table -->$",
                    re.DOTALL | re.MULTILINE)
OPEN, CLOSE = "<!-- table:", "<!-- /table -->"
_OPENS = re.compile(r"^<!-- table:", re.MULTILINE)
_CLOSES = re.compile(r"^<!-- /table -->$", re.MULTILINE)


@dataclass(frozen=True)
class Table:
    """One generated table: ``source`` (a path under the repository root, or ``None`` for tables
    read off the code), the ``command`` that writes it, and ``build(data) -> Markdown lines``."""

    source: str | tuple[str, ...] | None
    command: str
    build: Callable[[Any], list[str]]


def _num(x: float, digits: int = 3) -> str:
    """``1,234,567`` for large values, else ``digits`` significant decimals as the benchmarks print."""
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 100:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def _ratio(x: float) -> str:
    """A speed ratio: ``130x``, ``95.8x``, ``0.290x``."""
    return f"{x:.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.3f}x"


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def _head(*cols: str) -> list[str]:
    return [_row(cols), "|" + "---|" * len(cols)]


# -- speed ----------------------------------------------------------------------------------
def _env_speed(d: dict) -> list[str]:
    meg = [k for k in d if k.startswith("MEG/")]
    lines = _head("env", "steps/s", "against CartPole-v1", "target")
    lines.append(_row(["CartPole-v1", _num(d["CartPole-v1"]), "1x", ""]))
    for k in meg:
        single = "SingleES" in k
        ratio = (f"**{_ratio(d['single_over_cartpole'])}** (per round {_ratio(d['ratio_min_round'])} to "
                 f"{_ratio(d['ratio_max_round'])})") if single else _ratio(d[k] / d["CartPole-v1"])
        target = ("0.25x: " + ("met" if d["single_over_cartpole"] >= 0.25 else "**missed**")) if single else ""
        lines.append(_row([f"`{k}`", _num(d[k]), ratio, target]))
    lines.append("")
    lines.append(f"({d['rounds']} rounds of {d['steps_per_round']:,} steps each, the best round of each env.)")
    return lines


# the targets of issue 13 (native vector env against SyncVectorEnv and CartPoleVectorEnv)
_VECTOR_TARGETS = {("MEG/SingleES-v1", "SyncVectorEnv"): 60.0, ("MEG/MultiES-v1", "SyncVectorEnv"): 30.0,
                   ("MEG/SingleES-v1", "CartPoleVectorEnv"): 0.25, ("MEG/MultiES-v1", "CartPoleVectorEnv"): 0.10}
_VECTOR_FILES = ("vector_speed_SingleES_256_sync", "vector_speed_MultiES_256_sync",
                 "vector_speed_SingleES_1024_cartpole", "vector_speed_MultiES_1024_cartpole")


def _vector_speed(ds: list[dict]) -> list[str]:
    lines = _head("env", "copies", "native env steps/s", "against", "its env steps/s", "ratio (per round)", "target")
    for d in ds:
        target = _VECTOR_TARGETS.get((d["env"], d["against"]))
        verdict = "" if target is None else f"{target:g}x: " + ("met" if d["ratio"] >= target else "**missed**")
        lines.append(_row([f"`{d['env']}`", f"{d['num_envs']:,}", _num(d["native_steps_per_s"]), d["against"],
                           _num(d["other_steps_per_s"]),
                           f"**{_ratio(d['ratio'])}** ({_ratio(d['ratio_min_round'])} to "
                           f"{_ratio(d['ratio_max_round'])})", verdict]))
    d = ds[0]
    lines += ["", f"({d['rounds']} rounds of {d['seconds_per_round']:g} s per env, the best round of each.)"]
    return lines


def _marl_speed(d: dict) -> list[str]:
    lines = _head("channel", "UEs x ESs", "joint steps/s", "range over rounds", "agent steps/s",
                  "world only (joint/s)", "µs per agent step")
    for r in d["rows"]:
        rounds = r["joint_steps_per_s_rounds"]
        lines.append(_row([r["channel"], f"{r['ues']} x {r['es']}", f"**{_num(r['joint_steps_per_s'])}**",
                           f"{_num(min(rounds))}-{_num(max(rounds))}", _num(r["agent_steps_per_s"]),
                           _num(r["world_steps_per_s"]), f"{r['us_per_agent_step']:.1f}"]))
    cart = ", ".join(_num(x) for x in d["cartpole_steps_per_s"])
    lines += ["", f"(CartPole-v1 in the same process, before each round and after the last: {cart} steps/s.)"]
    return lines


def _marl_vector_speed(d: dict) -> list[str]:
    lines = _head("form", "agents", "agent steps/s")
    agents = f"{d['copies']} copies x {d['ues']} UEs ({d['es']} ESs, {d['channel']})"
    lines.append(_row(["`multi_ue_v1.vector_env`", agents, f"**{_num(d['vector_agent_steps_per_s'])}**"]))
    lines.append(_row(["`multi_ue_v1.parallel_env`, one per copy", agents, _num(d["parallel_agent_steps_per_s"])]))
    lines += ["", f"Ratio **{d['ratio']:.1f}x** (per round {d['ratio_min_round']:.1f}x to "
                  f"{d['ratio_max_round']:.1f}x, {d['rounds']} rounds)."]
    return lines


# -- the decision problem -------------------------------------------------------------------
def _agents(d: dict) -> list[str]:
    lines = _head("policy", "return", "quality", "latency s", "bits per request", "deadline misses", "UE energy J",
                  "protocols chosen")
    for r in d["rows"]:
        bold = "**" if r["policy"] in d.get("criteria", {}) else ""
        protocols = ", ".join(f"{p} {s:.0%}" for p, s in list(r["protocols"].items())[:2])
        lines.append(_row([f"{bold}{r['policy']}{bold}", f"{bold}{_num(r['return'], 1)} ± {_num(r['return_ci'], 1)}"
                           f"{bold}", f"{r['quality']:.3f}", f"{r['latency_s']:.3f}", f"{r['bits']:,.0f}",
                           f"{r['deadline_misses']:.1f}", f"{r['energy_j']:.3f}", protocols]))
    seeds = d["seeds"]
    kwargs = f" with `{json.dumps(d['env_kwargs'])}`" if d["env_kwargs"] else ""
    lines += ["", f"(`{d['env']}`{kwargs}, one episode per "
                  f"seed, seeds {seeds[0]}..{seeds[-1]}; return ± the 95% confidence interval's half width.)"]
    for model, c in d.get("criteria", {}).items():
        if c is None:
            continue
        line = f"**{model}** gains {c['gain_model']:.1f} over random"
        if "best_fixed" in c:
            line += (f"; the best fixed protocol ({c['best_fixed']}) {c['gain_best_fixed']:.1f}: "
                     f"**{c['vs_best_fixed']:+.1%}** (target >= +10%: "
                     f"{'met' if c['vs_best_fixed'] >= 0.10 else 'missed'})")
        if "gain_oracle" in c:
            line += (f"; the one-step oracle {c['gain_oracle']:.1f}: **{c['of_oracle']:.1%} of the oracle's gain** "
                     f"(target >= 90%: {'met' if c['of_oracle'] >= 0.90 else 'missed'})")
        lines += ["", line + "."]
    return lines


def _marl_policies(d: dict) -> list[str]:
    lines: list[str] = []
    for env, block in d.items():
        if lines:
            lines.append("")
        lines += _head(f"`{env}`", "return", "latency s", "deadline missed (per request)")
        best = max(r["return"] for r in block["rows"])
        for r in block["rows"]:
            b = "**" if r["return"] == best else ""
            lines.append(_row([f"{b}{r['policy']}{b}", f"{b}{r['return']:.2f} ± {r['ci95']:.2f}{b}",
                               f"{r['latency_s']:.3f}", f"{r['deadline_missed']:.3f}"]))
        seeds = block["seeds"]
        lines += ["", f"(UE energy weight {block['energy_weight']}; seeds {seeds[0]}..{seeds[-1]}, one episode each.)"]
    return lines


def _decision_problem(d: dict) -> list[str]:
    lines = _head("protocol", f"best in (share of {d['states']} states)")
    for p, s in sorted(d["best_protocol_share"].items(), key=lambda kv: -kv[1]):
        lines.append(_row([p, f"{s:.1%}"]))
    top = max(d["best_protocol_share"].values())
    lines += ["", f"(`{d['env']}`; the most frequent best protocol: {top:.1%}, target <= 60%: "
                  f"{'met' if top <= 0.60 else 'missed'}.)"]
    return lines


def _feature_baselines(d: dict) -> list[str]:
    """benchmarks/features.py's single-env baselines: return, quality, latency, the feature's metric."""
    key = "leakage" if d["scenario"] == "eavesdropper" else "aoi_s"
    title = "leakage (mean)" if key == "leakage" else "AoI s (mean)"
    lines = _head("policy", "return", "quality", "latency s", title, "deadline misses", "protocols chosen")
    for name, r in d["single_env"].items():
        protocols = ", ".join(f"{p} {s:.0%}" for p, s in list(r["protocols"].items())[:2])
        lines.append(_row([name, f"{_num(r['return'][0], 1)} ± {_num(r['return'][1], 1)}", f"{r['quality']:.3f}",
                           f"{r['latency_s']:.3f}", f"{r[key]:.3f}", f"{r['deadline_misses']:.1f}", protocols]))
    seeds = d["seeds"]
    lines += ["", f"(`{d['env']}` with `config=\"{d['scenario']}\"`, one episode per seed, seeds "
                  f"{seeds[0]}..{seeds[-1]}; return ± the 95% confidence interval's half width.)"]
    return lines


def _feature_decision(d: dict) -> list[str]:
    return _decision_problem({"env": f"{d['env']}, config={d['scenario']}", "states": d["states"],
                              "best_protocol_share": d["decision_problem"]})


def _leaks(d: dict) -> list[str]:
    """Which protocol leaks what: the leakage table read at a few eavesdropper SNRs."""
    lines = _head("protocol", "hop", "tensor", "-10 dB", "0 dB", "10 dB", "20 dB", "digital (decoded)", "encrypted")
    for p, hops in d["leaks"]["rows"].items():
        for hop, r in hops.items():
            lines.append(_row([p, hop, r["tensor"], *(f"{r[f'{x} dB']:.2f}" for x in (-10, 0, 10, 20)),
                               f"{r['digital']:.2f}", f"{r['encrypted']:.0f}"]))
    lines += ["", f"(The leakage of one hop's tensor against the eavesdropper's SNR, analog transmission; "
                  f"digital: the leakage of a bit-exact copy, once it decodes the link's rate; full_ue sends "
                  f"nothing: 0. Each value the mean of {d['leaks']['requests']} live requests.)"]
    return lines


def _eavesdropper_marl(d: dict) -> list[str]:
    blocks = d["multi_agent"]["positions"]
    lines = _head("eavesdropper at (m)", f"joint ES policy ({blocks[0]['num_ues']} UEs)", "team return",
                  "leakage (mean)")
    for m in blocks:
        for name, r in m["policies"].items():
            lines.append(_row([m["position_m"], name, f"{_num(r['return'][0], 1)} ± {_num(r['return'][1], 1)}",
                               f"{r['leakage']:.3f}"]))
    seeds = d["seeds"]
    lines += ["", f"(`envs.es_coordination_v1.parallel_env(eavesdropper={{\"position_m\": [x, y]}})`, the ESs at "
                  f"(0, 0), (120, 0), (0, 120), (120, 120); one episode per seed, seeds {seeds[0]}..{seeds[-1]}; "
                  f"team return: the episode's sum of the team reward; leakage: the mean over the requests in the "
                  f"ESs' slots.)"]
    return lines


def _leaks_digital(d: dict) -> list[str]:
    lines = _head("transmission", "policy", "return", "leakage (mean)", "latency s", "bits per request")
    for variant, rows in d["digital"].items():
        for name, r in rows.items():
            lines.append(_row([variant, name, f"{_num(r['return'][0], 1)} ± {_num(r['return'][1], 1)}",
                               f"{r['leakage']:.3f}", f"{r['latency_s']:.4f}", f"{r['bits']:,.0f}"]))
    seeds = d["seeds"]
    lines += ["", f"(`{d['env']}` with `config=\"eavesdropper\"` and `transmission.mode` digital, one episode "
                  f"per seed, seeds {seeds[0]}..{seeds[-1]}.)"]
    return lines


def _twins_marl(d: dict) -> list[str]:
    m = d["multi_agent"]
    lines = _head(f"joint policy ({m['num_ues']} UEs)", "return", "AoI s (mean)", "updates delivered")
    for name, r in m["policies"].items():
        lines.append(_row([name, f"{_num(r['return'][0], 1)} ± {_num(r['return'][1], 1)}", f"{r['aoi_s']:.2f}",
                           f"{r['delivered']:.1%}"]))
    seeds = d["seeds"]
    lines += ["", f"(`envs.multi_ue_v1.parallel_env(config=\"digital_twin\", num_ues={m['num_ues']})`, one episode "
                  f"per seed, seeds {seeds[0]}..{seeds[-1]}; return: the episode's sum of the agents' mean reward.)"]
    return lines


# -- the model and the protocols ------------------------------------------------------------
def _payload(rows: list[dict]) -> list[str]:
    lines = _head("protocol", "ESs", "uplink bits", "downlink bits", "total bits", "backhaul bits", "GFLOP")
    for r in rows:
        lines.append(_row([r["protocol"], r["num_es"], f"{r['uplink_bits']:,}", f"{r['downlink_bits']:,}",
                           f"{r['total_bits']:,}", f"{r['backhaul_bits']:,}", f"{r['flops'] / 1e9:.1f}"]))
    return lines


def _tiny_ldm(meta: dict) -> list[str]:
    ev = meta["evaluation"]
    i2i = ev["img2img"]
    acc = ", ".join(f"{k.replace('color', 'colour')} {v:.2f}" for k, v in ev["classifier_heldout_accuracy"].items())
    lines = _head("measure", "value")
    lines += [
        _row(["VAE reconstruction PSNR, held-out scenes", f"{ev['vae_heldout_psnr_db']:.1f} dB"]),
        _row(["attribute classifier, held-out accuracy", acc]),
        _row([f"img2img prompt fidelity, {i2i['requests']} held-out requests, Full ES setting ({i2i['steps']} steps, "
              f"strength {i2i['strength']})", f"{i2i['fidelity_full_es']:.3f}"]),
        _row([f"the same with Full UE's weaker setting ({i2i['ue_steps']} steps)", f"{i2i['fidelity_full_ue']:.3f}"]),
        _row(["edited attribute shown, Full ES / Full UE",
              f"{i2i['edit_success_full_es']:.2f} / {i2i['edit_success_full_ue']:.2f}"]),
        _row(["SSIM of Full UE's output against Full ES's (same request and generator)",
              f"{i2i['ssim_full_ue_vs_full_es']:.3f}"]),
    ]
    lines += ["", f"(UNet trained {meta['unet_steps']:,} steps, VAE {meta['vae_steps']:,}, classifier "
                  f"{meta['classifier_steps']:,}.)"]
    return lines


def _demo(d: Any) -> list[str]:
    rows = d["rows"] if isinstance(d, dict) else d
    lines = _head("protocol", "uplink bits", "downlink bits", "latency ms", "SSIM", "PSNR dB", "fidelity", "energy J")
    for r in rows:
        lines.append(_row([r["protocol"], f"{r['uplink_bits']:,}", f"{r['downlink_bits']:,}",
                           f"{r['latency_s'] * 1e3:.1f}", f"{r['ssim']:.3f}", f"{r['psnr_db']:.1f}",
                           "-" if r["fidelity"] is None else f"{r['fidelity']:.2f}", f"{r['energy_j']:.3f}"]))
    return lines


def _devices(_: Any) -> list[str]:
    from meg_gym.compute import DEVICES

    lines = _head("preset", "kind", "hardware", "SD it/s", "effective TFLOP/s", "power W")
    for name, d in DEVICES.items():
        lines.append(_row([f"`{name}`", d.kind.upper(), d.hardware, f"{d.sd_it_per_s:.2f} ({d.sd_model})",
                           f"{d.flops_per_s / 1e12:.2f}", f"{d.power_w:g}"]))
    return lines


# -- the envs' spaces, read off the code ----------------------------------------------------
def space_str(space: Any) -> str:
    """A space in one short Markdown line: ``Box((8,), float32)``, ``MultiDiscrete([6, 3])``, ``Discrete(18)``."""
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        return f"`Box({space.shape}, {space.dtype})`"
    if isinstance(space, spaces.MultiDiscrete):
        return f"`MultiDiscrete({space.nvec.tolist()})`"
    if isinstance(space, spaces.Discrete):
        return f"`Discrete({int(space.n)})`"
    if isinstance(space, spaces.Dict):
        return "`Dict`: " + ", ".join(f"`{k}` {space_str(v)}" for k, v in space.spaces.items())
    return f"`{space!r}`"


@cache
def _made(factory: str, **kwargs: Any) -> Any:
    """One env per (factory, arguments) per process: building one loads its scenario and step costs."""
    import gymnasium as gym

    import envs

    if factory == "gym":
        return gym.make(kwargs.pop("id"), **kwargs).unwrapped
    if factory == "vec":
        return gym.make_vec(kwargs.pop("id"), num_envs=kwargs.pop("num_envs"),
                            vectorization_mode="vector_entry_point", **kwargs)
    module, fn = factory.split(".")
    return getattr(getattr(envs, module), fn)(**kwargs)


def _env_table(_: Any) -> list[str]:
    lines = _head("env", "scenario", "observation", "action (default `action_type`)", "episode")
    for eid in ("MEG/SingleES-v1", "MEG/MultiES-v1"):
        e = _made("gym", id=eid)
        n = e.scenario.num_es
        lines.append(_row([f"`{eid}`", f"`{e.scenario.name}`: {n} ES{'s' if n > 1 else ''}, "
                           f"{len(e.scenario.protocols)} protocols", space_str(e.observation_space),
                           space_str(e.action_space),
                           f"{e.scenario.workload.requests_per_episode} requests"]))
    v = _made("vec", id="MEG/SingleES-v1", num_envs=8)
    lines.append(_row(['`gym.make_vec("MEG/SingleES-v1", num_envs=8, vectorization_mode="vector_entry_point")`',
                       "as the single env, 8 copies", space_str(v.observation_space), space_str(v.action_space),
                       "together, then autoreset"]))
    for fac, kw, agent in (("multi_ue_v1.parallel_env", {}, "ue_0"), ("es_coordination_v1.parallel_env", {}, "es_0")):
        p = _made(fac, **kw)
        who = f"{p.world.ues} UEs, {len(p.possible_agents)} agents `{p.possible_agents[0]}`..."
        lines.append(_row([f"`envs.{fac}()`", f"`{p.scenario.name}`: {p.scenario.num_es} ESs, {who}",
                           space_str(p.observation_space(agent)) + " per agent",
                           space_str(p.action_space(agent)) + " per agent", f"{p.max_cycles} steps"]))
    mv = _made("multi_ue_v1.vector_env", num_envs=2, num_ues=4)
    lines.append(_row(["`envs.multi_ue_v1.vector_env(2, num_ues=4)`", "`multi_ue`: 2 copies x 4 UEs = 8 rows",
                       space_str(mv.observation_space), space_str(mv.action_space),
                       f"{mv.max_cycles} steps, together"]))
    return lines


def _space_rows(make: Callable[..., Any], specs: list[tuple[str, dict, Callable[[Any], Any]]]) -> list[str]:
    """One row per (label, env arguments, space of the env): the env built with those arguments."""
    rows = _head("argument", "space")
    for label, kwargs, space in specs:
        sp = space(make(**kwargs))
        rows.append(_row([label, _box_bounds(sp) if label.startswith("`reward_space`") else space_str(sp)]))
    return rows


_VECTOR_REWARD = ('`reward_space` (`reward_type="vector"`)', {"reward_type": "vector"}, lambda e: e.reward_space)


def _spaces_meg(eid: str) -> Callable[[Any], list[str]]:
    def build(_: Any) -> list[str]:
        def make(**kw: Any) -> Any:
            return _made("gym", id=eid, **kw)

        obs = [('`observation_space` (`observation_type="box"`, default)', {}, lambda e: e.observation_space),
               ('`observation_space` (`observation_type="dict"`)', {"observation_type": "dict"},
                lambda e: e.observation_space)]
        acts = [(f'`action_space` (`action_type="{at}"`)', {"action_type": at}, lambda e: e.action_space)
                for at in ("multidiscrete", "discrete", "box")]
        e = make()
        lines = _space_rows(make, [*obs, *acts, _VECTOR_REWARD]) + _scenario_rows(e.scenario)
        lines += ["", f"{len(e.decisions)} placements (`env.unwrapped.decisions`) x {len(e.shares)} bandwidth shares "
                      f"{list(e.shares)}."]
        return lines
    return build


def _scenario_rows(sc: Any) -> list[str]:
    """The scenario's reward weights (of the terms its requests have) and request stream, as the env reads them."""
    from meg_gym.core import term_names

    w = ", ".join(f"{k} {getattr(sc.reward.weights, k):g}" for k in term_names(sc))
    wl = sc.workload
    return [_row([f"reward weights (scenario `{sc.name}`, `reward.weights`)", w]),
            _row(["requests (`workload`)", f"Poisson at {wl.arrival_rate_hz:g} Hz, deadline uniform in "
                  f"{list(wl.deadline_s)} s, quality weight uniform in {list(wl.quality_weight)}, "
                  f"latency scale {wl.latency_scale_s:g} s, {wl.requests_per_episode} per episode"])]


def _box_bounds(box: Any) -> str:
    return f"`Box(low={box.low.tolist()}, high={box.high.tolist()}, {box.dtype})`"


def _spaces_vector(_: Any) -> list[str]:
    lines = _head("argument", "space")
    for eid in ("MEG/SingleES-v1", "MEG/MultiES-v1"):
        v = _made("vec", id=eid, num_envs=8)
        for k in ("single_observation_space", "observation_space", "single_action_space", "action_space"):
            lines.append(_row([f"`{eid}`, 8 copies: `{k}`", space_str(getattr(v, k))]))
    v = _made("vec", id="MEG/SingleES-v1", num_envs=8)
    lines += ["", f"`metadata[\"autoreset_mode\"]` by default: `{v.metadata['autoreset_mode'].value}`."]
    return lines


def _spaces_marl(factory: str, agent: str) -> Callable[[Any], list[str]]:
    def build(_: Any) -> list[str]:
        def make(**kw: Any) -> Any:
            return _made(factory, **kw)

        specs = [(f'`observation_space("{agent}")`', {}, lambda p: p.observation_space(agent)),
                 (f'`action_space("{agent}")`', {}, lambda p: p.action_space(agent)),
                 (f'`action_space("{agent}")` (`action_type="discrete"`)', {"action_type": "discrete"},
                  lambda p: p.action_space(agent)),
                 ("`state_space`", {}, lambda p: p.state_space), _VECTOR_REWARD]
        p = make()
        lines = _space_rows(make, specs) + _scenario_rows(p.scenario)
        lines += ["", f"Agents by default: {', '.join(f'`{a}`' for a in p.possible_agents)}; `max_cycles` "
                      f"{p.max_cycles}."]
        return lines
    return build


def _spaces_marl_vector(_: Any) -> list[str]:
    mv = _made("multi_ue_v1.vector_env", num_envs=2, num_ues=4)
    lines = _head("argument (`vector_env(2, num_ues=4)`)", "space")
    for k in ("single_observation_space", "observation_space", "single_action_space", "action_space"):
        lines.append(_row([f"`{k}`", space_str(getattr(mv, k))]))
    lines += ["", f"`num_envs` (agent rows) = {mv.num_envs}; `metadata[\"autoreset_mode\"]`: "
                  f"`{mv.metadata['autoreset_mode'].value}`."]
    return lines


_CODE = "read off the code (`envs/`)"
_R = "benchmarks/results"

TABLES: dict[str, Table] = {
    "env_speed": Table(f"{_R}/env_speed.json",
                       f"python benchmarks/env_speed.py --steps 20000 --rounds 5 --json > {_R}/env_speed.json",
                       _env_speed),
    "vector_speed": Table(tuple(f"{_R}/{f}.json" for f in _VECTOR_FILES),
                          "python benchmarks/vector_speed.py --env ID --num-envs N [--against cartpole] --seconds 3 "
                          f"--rounds 3 --json {_R}/vector_speed_<Single|Multi>ES_<N>_<sync|cartpole>.json",
                          _vector_speed),
    "marl_speed": Table(f"{_R}/marl_speed.json",
                        f"python benchmarks/marl_speed.py --ues 32 --es 8 --seconds 4 --rounds 3 --json "
                        f"{_R}/marl_speed.json", _marl_speed),
    "marl_vector_speed": Table(f"{_R}/marl_vector_speed.json",
                               "python benchmarks/marl_vector_speed.py --copies 16 --ues 32 --es 8 --seconds 4 "
                               f"--rounds 3 --json {_R}/marl_vector_speed.json", _marl_vector_speed),
    "agents_single_es": Table(f"{_R}/agents_single_es/results.json",
                              "meg-gym benchmark --env MEG/SingleES-v1 --policies random,round_robin,crash_avoid,"
                              "greedy,fixed:*,oracle --model ppo=runs/ppo_single_es --seeds 10 "
                              f"--out {_R}/agents_single_es", _agents),
    "agents_aigc": Table(f"{_R}/agents_aigc/results.json",
                         "meg-gym benchmark --env MEG/SingleES-v1 --config aigc_provider_selection --policies random,"
                         "round_robin,crash_avoid,greedy,oracle --model ppo=runs/ppo_aigc --seeds 10 "
                         f"--out {_R}/agents_aigc", _agents),
    "marl_policies": Table(f"{_R}/marl_policies.json",
                           "python benchmarks/marl_policies.py --episodes 10 --model runs/ppo_multi_ue "
                           f"--json {_R}/marl_policies.json", _marl_policies),
    **{f"features_{kind}_{sc}": Table(f"{_R}/features/{sc}.json", f"python benchmarks/features.py --scenario {sc} "
                                      f"--seeds 10 --states 300 --json {_R}/features/{sc}.json", build)
       for sc in ("eavesdropper", "digital_twin")
       for kind, build in (("baselines", _feature_baselines), ("decision", _feature_decision))},
    "features_leaks": Table(f"{_R}/features/eavesdropper.json", "python benchmarks/features.py --scenario "
                            f"eavesdropper --seeds 10 --states 300 --json {_R}/features/eavesdropper.json", _leaks),
    "features_eavesdropper_marl": Table(f"{_R}/features/eavesdropper.json", "python benchmarks/features.py "
                                        f"--scenario eavesdropper --seeds 10 --states 300 --json "
                                        f"{_R}/features/eavesdropper.json", _eavesdropper_marl),
    "features_digital": Table(f"{_R}/features/eavesdropper_digital.json", "python benchmarks/features.py --scenario "
                              f"eavesdropper --digital --seeds 10 --json {_R}/features/eavesdropper_digital.json",
                              _leaks_digital),
    "features_twins_marl": Table(f"{_R}/features/digital_twin.json", "python benchmarks/features.py --scenario "
                                 f"digital_twin --seeds 10 --states 300 --json {_R}/features/digital_twin.json",
                                 _twins_marl),
    "decision_problem_single_es": Table(f"{_R}/decision_problem_SingleES.json",
                                        "python benchmarks/decision_problem.py --env MEG/SingleES-v1 --states 300 "
                                        f"--json > {_R}/decision_problem_SingleES.json", _decision_problem),
    "decision_problem_multi_es": Table(f"{_R}/decision_problem_MultiES.json",
                                       "python benchmarks/decision_problem.py --env MEG/MultiES-v1 --states 150 "
                                       f"--json > {_R}/decision_problem_MultiES.json", _decision_problem),
    "payload_sd15": Table(f"{_R}/payload_sd15.json", f"meg-gym table --model sd15 --json > {_R}/payload_sd15.json",
                          _payload),
    "tiny_ldm": Table("meg_gym/ldm/weights/tiny/meta.json",
                      "meg-gym evaluate-ldm --requests 200 --grid benchmarks/results/tiny_img2img.png --install",
                      _tiny_ldm),
    "demo_case_study": Table(f"{_R}/demo_case_study/demo.json",
                             "meg-gym demo --config configs/scenarios/case_study.yaml --snr-db 10 --json "
                             f"--out {_R}/demo_case_study > {_R}/demo_case_study/demo.json", _demo),
    "devices": Table(None, "read off the code (`meg_gym.compute.DEVICES`; sources in each preset's `source`)",
                     _devices),
    "envs": Table(None, _CODE, _env_table),
    "spaces_single_es": Table(None, _CODE, _spaces_meg("MEG/SingleES-v1")),
    "spaces_multi_es": Table(None, _CODE, _spaces_meg("MEG/MultiES-v1")),
    "spaces_vector": Table(None, _CODE, _spaces_vector),
    "spaces_multi_ue": Table(None, _CODE, _spaces_marl("multi_ue_v1.parallel_env", "ue_0")),
    "spaces_es_coordination": Table(None, _CODE, _spaces_marl("es_coordination_v1.parallel_env", "es_0")),
    "spaces_multi_ue_vector": Table(None, _CODE, _spaces_marl_vector),
}


def _load(root: Path, source: Any) -> Any:
    if source is None:
        return None
    if isinstance(source, tuple):
        return [_load(root, s) for s in source]
    path = root / source
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"table source {source!r} not found under {root}") from None


def render(name: str, root: Path = ROOT) -> str:
    """The body of table ``name`` (what goes between its markers), from its source under ``root``."""
    if name not in TABLES:
        raise ValueError(f"'table' must be one of {sorted(TABLES)} (got {name!r})")
    t = TABLES[name]
    lines = t.build(_load(root, t.source))
    if t.source is None:
        note = f"Generated by `python benchmarks/readme_tables.py`, {t.command}."
    else:
        srcs = t.source if isinstance(t.source, tuple) else (t.source,)
        note = (f"Generated by `python benchmarks/readme_tables.py` from {', '.join(f'`{s}`' for s in srcs)}, "
                f"written by `{t.command}`.")
    return "\n".join([*lines, "", f"<sub>{note}</sub>", ""])


def regions(text: str, where: str = "") -> list[tuple[str, str]]:
    """The (name, body) of every marked region of ``text``; an unclosed or unknown marker raises."""
    found = [(m.group("name"), m.group("body")) for m in MARKER.finditer(text)]
    opened, closed = len(_OPENS.findall(text)), len(_CLOSES.findall(text))
    if opened != len(found) or closed != len(found):
        raise ValueError(f"{where}: every '{OPEN}NAME -->' line needs its own '{CLOSE}' line after it "
                         f"({opened} opened, {closed} closed, {len(found)} matched)")
    for name, _ in found:
        if name not in TABLES:
            raise ValueError(f"{where}: 'table' must be one of {sorted(TABLES)} (got {name!r})")
    return found


def _rendered(text: str, root: Path, where: str, names: set[str] | None) -> str:
    regions(text, where)  # validates before anything is built

    def sub(m: re.Match) -> str:
        name = m.group("name")
        if names is not None and name not in names:
            return m.group(0)
        return f"{OPEN}{name} -->\n{render(name, root)}{CLOSE}"

    return MARKER.sub(sub, text)


def doc_files(root: Path = ROOT) -> list[Path]:
    """README.md and every Markdown file under docs/."""
    return [p for p in [root / "README.md", *sorted((root / "docs").rglob("*.md"))] if p.is_file()]


def check(root: Path = ROOT, names: set[str] | None = None) -> list[str]:
    """One line per marked region under ``root`` that differs from its source (``names``: only these tables)."""
    stale = []
    for path in doc_files(root):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root)
        new = dict(regions(_rendered(text, root, str(rel), names), str(rel)))
        for name, body in regions(text, str(rel)):
            if body != new[name]:
                src = TABLES[name].source or "the code"
                stale.append(f"{rel}: table '{name}' differs from {src}; run python benchmarks/readme_tables.py")
    return stale


def rewrite(root: Path = ROOT, names: set[str] | None = None) -> list[Path]:
    """Rewrite every marked region under ``root``; returns the files that changed. Every table is
    built before any file is written (a bad marker or a missing source changes nothing); each file
    goes to a temporary file in its folder, then is renamed over the original."""
    pending = []
    for path in doc_files(root):
        text = path.read_text(encoding="utf-8")
        new = _rendered(text, root, str(path.relative_to(root)), names)
        if new != text:
            pending.append((path, new))
    changed = []
    for path, new in pending:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(new)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table differs from its source")
    args = ap.parse_args(argv)
    try:
        if args.check:
            stale = check()
            for line in stale:
                print(line)
            return 1 if stale else 0
        for path in rewrite():
            print(f"rewrote {path.relative_to(ROOT)}")
    except (ValueError, FileNotFoundError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
