"""The ``meg-gym`` command line: table, demo, calibrate, train-ldm, evaluate-ldm.

Every command takes ``--config FILE`` (a scenario YAML, any subset of keys). Bad input
prints a one-line error, no traceback, and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "model", None):
        out["model"] = args.model
    if getattr(args, "num_es", None) is not None:
        out["num_es"] = args.num_es
    channel: dict[str, Any] = {}
    if getattr(args, "channel", None):
        channel["kind"] = args.channel
    if getattr(args, "snr_db", None) is not None:
        channel["snr_db"] = args.snr_db
    if channel:
        out["channel"] = channel
    if getattr(args, "bits_per_value", None) is not None:
        out["transmission"] = {"bits_per_value": args.bits_per_value}
    return out


def _scenario(args: argparse.Namespace) -> Any:
    from meg_gym.config import load_scenario

    return load_scenario(args.config, **_overrides(args))


def _es_ids(protocol: str, num_es: int) -> tuple[int, ...]:
    from meg_gym.protocols import PROTOCOLS

    return tuple(range(num_es)) if PROTOCOLS[protocol].multi_es else (0,)


def cmd_table(args: argparse.Namespace) -> int:
    """Per protocol: uplink, downlink and total bits, from the tensors the stages produce."""
    from meg_gym.config import load_scenario, scenario_to_dict
    from meg_gym.ldm.components import load_model, meta_copy
    from meg_gym.protocols import PROTOCOLS
    from meg_gym.system import MegSystem
    from meg_gym.workload import TYPICAL_PROMPT

    ov = _overrides(args)
    sc = load_scenario(args.config, **ov)
    if sc.num_es < 2:  # the multi-ES protocols need two ESs: show them on two
        ov.update(num_es=2, es=[scenario_to_dict(sc)["es"][0]], protocols=list(PROTOCOLS))
        sc = load_scenario(args.config, **ov)
    num_es = sc.num_es
    comps = meta_copy(load_model(sc.model))
    system = MegSystem(sc, components=comps, judge=None)
    rows = []
    for name in PROTOCOLS:
        costs = system.costs(name, _es_ids(name, num_es))
        ul = sum(c.payload_bits for c in costs if c.kind == "send" and c.node == "ue")
        dl = sum(c.payload_bits for c in costs if c.kind == "send" and c.node != "ue")
        rows.append({"protocol": name, "num_es": len(_es_ids(name, num_es)), "uplink_bits": ul,
                     "downlink_bits": dl, "total_bits": ul + dl,
                     "flops": sum(c.flops for c in costs if c.kind == "run")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"model {sc.model} ({comps.image_size}x{comps.image_size}, latent {comps.latent_channels}x"
          f"{comps.latent_size}x{comps.latent_size}), {sc.transmission.bits_per_value} bits per value, "
          f"multi-ES protocols on {num_es} ESs; text sent as UTF-8 ({8 * len(TYPICAL_PROMPT)} bits: "
          f"{TYPICAL_PROMPT!r})")
    print(f"{'protocol':<9} {'ES':>3} {'uplink bits':>14} {'downlink bits':>14} {'total bits':>14} {'GFLOP':>10}")
    for r in rows:
        print(f"{r['protocol']:<9} {r['num_es']:>3} {r['uplink_bits']:>14,} {r['downlink_bits']:>14,} "
              f"{r['total_bits']:>14,} {r['flops'] / 1e9:>10.1f}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Every protocol live on one request; a labelled PNG grid and a table."""
    import numpy as np

    from meg_gym.demo import run_demo

    sc = _scenario(args)
    records = run_demo(sc, prompt=args.prompt, out_dir=Path(args.out), seed=args.seed,
                       rng=np.random.default_rng(args.seed), quiet=args.json)
    if args.json:
        print(json.dumps(records, indent=2))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Sweep the live engine into profiled mode's quality table (resumable), or check its fidelity."""
    from meg_gym.quality.calibrate import calibrate, check_fidelity
    from meg_gym.quality.calibration import CALIBRATION_DIR, load_table
    from meg_gym.system import MegSystem

    sc = _scenario(args)
    if sc.num_es < 2:
        from meg_gym.config import load_scenario

        sc = load_scenario(args.config, **{**_overrides(args), "num_es": 2})
    system = MegSystem(sc)
    out = Path(args.out) if args.out else CALIBRATION_DIR / f"{sc.model}.json"
    if args.check:
        result = check_fidelity(system, load_table(out), points=args.points, requests=args.requests)
        print(json.dumps(result))
        return 0
    grid = [float(x) for x in args.snr_grid.split(",")] if args.snr_grid else None
    steps = [int(x) for x in args.steps.split(",")] if args.steps else None
    table = calibrate(system, out, snr_grid_db=grid, steps_grid=steps, requests=args.requests, seed=args.seed)
    print(f"calibration table: {out} ({len(table.tables)} protocols, {len(table.snr_grid_db)} SNR points, "
          f"steps {table.steps_grid}, {table.requests_per_point} requests per point)")
    return 0


def cmd_train_ldm(args: argparse.Namespace) -> int:
    """Train the shipped tiny LDM (one phase at a time; resumable)."""
    from meg_gym.ldm.train import DEFAULT_CKPT, TrainSettings, train

    phases = ["vae", "unet", "classifier"] if args.phase == "all" else [args.phase]
    defaults = {"vae": (1500, 6e-4), "unet": (8000, 3e-4), "classifier": (600, 1e-3)}
    for phase in phases:
        steps, lr = defaults[phase]
        kwargs: dict[str, Any] = {"phase": phase, "steps": args.steps or steps, "lr": args.lr or lr,
                                  "seed": args.seed, "checkpoint_dir": Path(args.checkpoint_dir or DEFAULT_CKPT)}
        if args.out:
            kwargs["out_dir"] = Path(args.out)
        print(json.dumps(train(TrainSettings(**kwargs))))
    return 0


def cmd_evaluate_ldm(args: argparse.Namespace) -> int:
    """Measure the shipped tiny model (VAE PSNR, classifier accuracy, img2img prompt fidelity)."""
    from meg_gym.ldm.evaluate import evaluate_ldm

    print(json.dumps(evaluate_ldm(requests=args.requests, write=not args.no_write,
                                  grid=Path(args.grid) if args.grid else None), indent=2))
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meg-gym", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", help="scenario YAML file (any subset of keys)")
        sp.set_defaults(fn=fn)
        return sp

    t = add("table", cmd_table, "payload bits per protocol, from the tensors the stages produce")
    t.add_argument("--model", help="model card name (tiny, sd15) or a local diffusers folder")
    t.add_argument("--bits-per-value", type=int)
    t.add_argument("--num-es", type=int, help="ESs for the multi-ES protocols (default 2)")
    t.add_argument("--json", action="store_true")

    d = add("demo", cmd_demo, "run every protocol live on one request; write a PNG grid")
    d.add_argument("--model")
    d.add_argument("--channel", help="channel kind: awgn, perfect, umi, uma")
    d.add_argument("--snr-db", type=float)
    d.add_argument("--prompt")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--out", default="out/demo")
    d.add_argument("--json", action="store_true")

    c = add("calibrate", cmd_calibrate, "sweep the live engine into profiled mode's quality table")
    c.add_argument("--snr-grid", help="comma-separated SNRs in dB (default -20,-10,-5,0,5,10,15,20,30)")
    c.add_argument("--steps", help="comma-separated denoising step counts (default: the scenario's)")
    c.add_argument("--requests", type=int, default=4, help="requests per point")
    c.add_argument("--points", type=int, default=12, help="held-out points for --check")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", help="table path (default configs/calibration/<model>.json)")
    c.add_argument("--check", action="store_true", help="measure profiled-vs-live error on held-out settings")

    tr = add("train-ldm", cmd_train_ldm, "train the shipped tiny LDM (hours on CPU; resumable)")
    tr.add_argument("--phase", choices=["vae", "unet", "classifier", "all"], default="all")
    tr.add_argument("--steps", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--checkpoint-dir")
    tr.add_argument("--out", help="where to write the weights (default: the shipped folder)")
    ev = add("evaluate-ldm", cmd_evaluate_ldm, "measure the shipped tiny model; stores the numbers in its meta.json")
    ev.add_argument("--requests", type=int, default=200)
    ev.add_argument("--no-write", action="store_true", help="print only; leave meta.json alone")
    ev.add_argument("--grid", help="also save the first 8 requests as a PNG grid here")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``meg-gym``."""
    from meg_gym.errors import USER_ERRORS  # noqa: I001

    args = _parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except USER_ERRORS as exc:
        print(f"meg-gym {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
