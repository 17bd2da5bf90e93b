"""The ``meg-gym`` command line: table, demo, calibrate, train-ldm, evaluate-ldm, train, evaluate, benchmark.

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
    if getattr(args, "snr_db", None) is not None:  # a fixed SNR: also drops a scenario's per-request range
        channel["snr_db"] = args.snr_db
        channel["snr_range_db"] = None
    if channel:
        out["channel"] = channel
    if getattr(args, "bits_per_value", None) is not None:
        out["transmission"] = {"bits_per_value": args.bits_per_value}
    if getattr(args, "torch_threads", None) is not None:
        out["torch_threads"] = args.torch_threads
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


def _numbers(flag: str, text: str, kind: type) -> list[Any]:
    """A comma-separated flag value as numbers, or a one-line error naming the flag."""
    try:
        return [kind(x) for x in text.split(",")]
    except ValueError:
        from meg_gym.errors import show

        raise ValueError(f"'{flag}' must be comma-separated {kind.__name__}s (got {show(text)})") from None


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
    name = f"{_safe_name(sc.model)}.json"  # a model value is a card name or a folder path: one file name
    shipped = CALIBRATION_DIR / name
    out = Path(args.out) if args.out else shipped if args.install else Path("out") / "calibration" / name
    if args.check:  # reads a table: the one named, else the shipped one
        table_path = Path(args.out) if args.out else shipped
        result = check_fidelity(system, load_table(table_path), points=args.points, requests=args.requests,
                                same_requests=args.same_requests, seed=args.seed + 1)
        print(json.dumps(result))
        return 0
    grid = _numbers("--snr-grid", args.snr_grid, float) if args.snr_grid else None
    steps = _numbers("--steps", args.steps, int) if args.steps else None
    protocols = args.protocols.split(",") if args.protocols else None
    table = calibrate(system, out, snr_grid_db=grid, steps_grid=steps, requests=args.requests, seed=args.seed,
                      protocols=protocols)
    print(f"calibration table: {out} ({len(table.tables)} protocols, {len(table.snr_grid_db)} SNR points, "
          f"steps {table.steps_grid}, {table.requests_per_point} requests per point)")
    return 0


def cmd_costs(args: argparse.Namespace) -> int:
    """Count every protocol's step costs on the model's meta copy and write configs/costs/<model>.json."""
    from meg_gym.config import load_scenario, scenario_to_dict
    from meg_gym.costs import cache_dir, save_shipped
    from meg_gym.ldm.components import load_model, meta_copy
    from meg_gym.protocols import PROTOCOLS
    from meg_gym.system import MegSystem

    sc = _scenario(args)
    ov = _overrides(args)
    sc = load_scenario(args.config, **{**ov, "num_es": args.max_es, "es": [scenario_to_dict(sc)["es"][0]],
                                       "cost_model": None})
    comps = meta_copy(load_model(sc.model))
    system = MegSystem(sc, components=comps, judge=None)
    path = save_shipped(system, list(PROTOCOLS), args.max_es, folder=None if args.install else cache_dir())
    print(f"step costs: {path}")
    return 0


def _safe_name(model: str) -> str:
    """A model value as one file name that stays inside its folder (a path's separators and dots replaced)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(model)).strip("._") or "model"


def cmd_train_ldm(args: argparse.Namespace) -> int:
    """Train the shipped tiny LDM (one phase at a time; resumable)."""
    from meg_gym.ldm.components import SHIPPED_DIR
    from meg_gym.ldm.train import DEFAULT_CKPT, TrainSettings, train

    phases = ["vae", "unet", "classifier"] if args.phase == "all" else [args.phase]
    defaults = {"vae": (1500, 6e-4), "unet": (8000, 3e-4), "classifier": (600, 1e-3)}
    for phase in phases:
        steps, lr = defaults[phase]
        kwargs: dict[str, Any] = {"phase": phase, "steps": args.steps or steps, "lr": args.lr or lr,
                                  "seed": args.seed, "checkpoint_dir": Path(args.checkpoint_dir or DEFAULT_CKPT)}
        kwargs["out_dir"] = SHIPPED_DIR / "tiny" if args.install else Path(args.out)
        if args.torch_threads is not None:
            kwargs["threads"] = args.torch_threads
        print(json.dumps(train(TrainSettings(**kwargs))))
    return 0


def cmd_evaluate_ldm(args: argparse.Namespace) -> int:
    """Measure the shipped tiny model (VAE PSNR, classifier accuracy, img2img prompt fidelity)."""
    from meg_gym.ldm.evaluate import evaluate_ldm

    print(json.dumps(evaluate_ldm(requests=args.requests, write=args.install,
                                  grid=Path(args.grid) if args.grid else None), indent=2))
    return 0


DEFAULT_POLICIES = "random,round_robin,crash_avoid,greedy,fixed:*,oracle"


def cmd_train(args: argparse.Namespace) -> int:
    """Train an SB3 agent from a YAML config (PPO, A2C, DQN, SAC, MaskablePPO); --resume continues a run."""
    from agents.training import train

    try:
        summary = train(args.config, out=args.out, resume=args.resume, verbose=args.verbose,
                        n_timesteps=args.n_timesteps, seed=args.seed)
    except KeyboardInterrupt:
        print("meg-gym train: interrupted; continue from the last checkpoint with --resume", file=sys.stderr)
        return 130
    print(json.dumps(summary))
    return 0


def _benchmark(env_id: str, env_kwargs: dict[str, Any], specs: list[str], seeds: list[int], out: Path,
               run_dirs: list[str], quiet: bool) -> dict[str, Any]:
    from agents import evaluation as ev

    def progress(label: str, eps: list) -> None:
        if not quiet:
            m = ev.mean_ci([e.metrics["return"] for e in eps])
            print(f"  {label:<24} return {m[0]:10.2f} +- {m[1]:.2f}", file=sys.stderr)

    results = ev.evaluate_policies(specs, env_id, seeds, env_kwargs, progress=progress)
    rows = ev.summarize(results)
    out.mkdir(parents=True, exist_ok=True)
    title = f"{env_id} {json.dumps(env_kwargs) if env_kwargs else ''}: {len(seeds)} seeds ({seeds[0]}..{seeds[-1]})"
    table = ev.write_markdown(rows, out / "table.md", title=title)
    ev.write_csv(rows, out / "table.csv", results)
    ev.plot_bars(rows, out / "bars.png")
    ev.plot_protocol_vs_snr(results, out / "protocol_vs_snr.png")
    if run_dirs:
        refs = {f"{r['policy']} (benchmark)": r["return"] for r in rows if r["policy"] in ("random", "oracle")}
        ev.plot_learning_curves([Path(d) for d in run_dirs], out / "learning_curves.png", refs)
    models = [ev._spec_label(s)[0] for s in specs if ev._is_model_path(ev._spec_label(s)[1])]
    crit = {m: ev.criteria(rows, m) for m in models}
    record = {"env": env_id, "env_kwargs": env_kwargs, "seeds": seeds, "rows": rows, "criteria": crit,
              "files": sorted(p.name for p in out.iterdir())}
    (out / "results.json").write_text(json.dumps(record, indent=2, default=float), encoding="utf-8")
    return {"table": table, **record}


def _seeds(args: argparse.Namespace) -> list[int]:
    from meg_gym.config import ConfigError

    if args.seeds < 1:
        raise ConfigError(f"'--seeds' must be >= 1 (got {args.seeds})")
    return list(range(args.seed_start, args.seed_start + args.seeds))


def _env_kwargs(args: argparse.Namespace, base: dict[str, Any] | None = None) -> dict[str, Any]:
    from meg_gym.config import ConfigError

    kw = dict(base or {})
    if args.env_kwargs:
        try:
            extra = json.loads(args.env_kwargs)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"'--env-kwargs' must be a JSON object (got {args.env_kwargs!r}: {exc.msg})") from None
        if not isinstance(extra, dict):
            raise ConfigError(f"'--env-kwargs' must be a JSON object (got {args.env_kwargs!r})")
        kw.update(extra)
    if args.config:
        kw["config"] = args.config
    return kw


def _print_result(res: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps({k: v for k, v in res.items() if k != "table"}, default=float))
        return
    print(res["table"])
    for model, c in res["criteria"].items():
        if c:
            line = f"{model}: gain over random {c['gain_model']:.2f}"
            if "best_fixed" in c:
                line += f"; best fixed ({c['best_fixed']}) {c['gain_best_fixed']:.2f} -> {c['vs_best_fixed']:+.1%}"
            if "of_oracle" in c:
                line += f"; oracle {c['gain_oracle']:.2f} -> {c['of_oracle']:.1%} of the oracle's gain"
            print(line)
    print(f"written: {', '.join(res['files'])}")


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Evaluate trained models (and baselines) on held-out seeds: tables and plots."""
    from agents.training import run_config
    from meg_gym.config import ConfigError

    models = args.model
    label, _, path = models[0].rpartition("=") if "=" in models[0] else ("", "", models[0])
    p = Path(path)
    run_dir = p if p.is_dir() else (p.parent.parent if p.parent.name == "checkpoints" else p.parent)
    cfg = run_dir / "config.yaml"
    base: dict[str, Any] = {}
    env_id = args.env
    if cfg.exists():
        saved = run_config(run_dir)
        env_id = env_id or saved.get("env")
        kept = ("action_type", "observation_type")  # the model's own; baselines take the env's defaults
        base = {k: v for k, v in (saved.get("env_kwargs") or {}).items() if k not in kept}
    if not env_id:
        raise ConfigError(f"'--env' is needed: {str(cfg)!r} (the model's training config) was not found")
    specs = list(models) + ([s for s in args.policies.split(",") if s] if args.policies else [])
    runs = [m.split("=", 1)[-1] for m in models if Path(m.split("=", 1)[-1]).is_dir()]
    res = _benchmark(env_id, _env_kwargs(args, base), specs, _seeds(args), Path(args.out), runs, args.json)
    _print_result(res, args.json)
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Baselines (and trained models) over N seeds: mean and 95% CI, Markdown/CSV tables, PNG plots."""
    specs = [s for s in args.policies.split(",") if s] + list(args.model or [])
    runs = list(args.runs or []) + [m.split("=", 1)[-1] for m in (args.model or [])
                                    if Path(m.split("=", 1)[-1]).is_dir()]
    res = _benchmark(args.env, _env_kwargs(args), specs, _seeds(args), Path(args.out), list(dict.fromkeys(runs)),
                     args.json)
    _print_result(res, args.json)
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="meg-gym", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--config", help="scenario YAML file (any subset of keys)")
        sp.add_argument("--torch-threads", type=int, help="torch intra-op threads when the model runs "
                                                          "(default: 1 for the tiny model, torch's own otherwise)")
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
    c.add_argument("--protocols", help="comma-separated protocols to sweep (default: all the scenario offers); "
                                       "a stored table's other protocols are kept")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", help="table path (default out/calibration/<model>.json; --install: the shipped "
                                 "configs/calibration/<model>.json)")
    c.add_argument("--install", action="store_true", help="write (and top up) the shipped table in configs/")
    c.add_argument("--check", action="store_true", help="measure profiled-vs-live error on held-out settings")
    c.add_argument("--same-requests", action="store_true",
                   help="with --check: serve the requests the table was measured with (the interpolation error alone)")

    co = add("costs", cmd_costs, "count step costs (FLOPs, bits) of every protocol into the user cache "
                                 "(~/.cache/meg_gym/costs/<model>.json, read by every env)")
    co.add_argument("--model", help="model card name (tiny, sd15) or a local diffusers folder")
    co.add_argument("--max-es", type=int, default=3, help="count multi-ES protocols on 2..max-es ESs")
    co.add_argument("--install", action="store_true", help="write the shipped configs/costs/<model>.json instead")

    tr = add("train-ldm", cmd_train_ldm, "train the shipped tiny LDM (hours on CPU; resumable)")
    tr.add_argument("--phase", choices=["vae", "unet", "classifier", "all"], default="all")
    tr.add_argument("--steps", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int, default=0)
    tr.add_argument("--checkpoint-dir")
    tr.add_argument("--out", default="out/tiny", help="where to write the weights (default out/tiny; the first "
                                                      "phase starts from the shipped weights)")
    tr.add_argument("--install", action="store_true", help="write over the shipped weights in the package")
    ev = add("evaluate-ldm", cmd_evaluate_ldm, "measure the shipped tiny model and print the numbers")
    ev.add_argument("--requests", type=int, default=200, help="held-out requests to measure on")
    ev.add_argument("--install", action="store_true", help="also store the numbers in the shipped meta.json")
    ev.add_argument("--grid", help="also save the first 8 requests as a PNG grid here")

    tn = sub.add_parser("train", help="train an SB3 agent from a YAML config", description=cmd_train.__doc__)
    tn.add_argument("--config", required=True, help="training config (configs/train/*.yaml)")
    tn.add_argument("--out", help="run folder (default runs/<config name>)")
    tn.add_argument("--resume", action="store_true", help="continue the run folder from its latest checkpoint")
    tn.add_argument("--n-timesteps", type=int, help="override the config's n_timesteps")
    tn.add_argument("--seed", type=int, help="override the config's seed")
    tn.add_argument("--verbose", type=int, default=0)
    tn.set_defaults(fn=cmd_train)

    def eval_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seeds", type=int, default=10, help="episodes, one per seed (default 10)")
        sp.add_argument("--seed-start", type=int, default=1000,
                        help="first seed (default 1000: held out from training)")
        sp.add_argument("--env-kwargs", help="JSON keyword arguments for gym.make, e.g. '{\"action_type\": \"box\"}'")
        sp.add_argument("--out", default="out/benchmark", help="folder for table.md, table.csv, results.json, PNGs")
        sp.add_argument("--json", action="store_true")

    en = add("evaluate", cmd_evaluate, "evaluate trained models on held-out seeds: tables and plots")
    en.add_argument("--model", action="append", required=True, help="[label=]run folder or .zip (repeatable)")
    en.add_argument("--env", help="env id (default: the one the first model was trained on)")
    en.add_argument("--policies", help="baselines to add, comma-separated (e.g. random,fixed:*,oracle)")
    eval_args(en)
    en.set_defaults(out="out/evaluate")

    bm = add("benchmark", cmd_benchmark, "baselines and trained models over N seeds: tables and plots")
    bm.add_argument("--env", required=True, help="env id, e.g. MEG/SingleES-v1")
    bm.add_argument("--policies", default=DEFAULT_POLICIES, help=f"comma-separated (default {DEFAULT_POLICIES})")
    bm.add_argument("--model", action="append", help="a trained model as [label=]run folder or .zip (repeatable)")
    bm.add_argument("--runs", nargs="*", help="run folders whose learning curves to plot")
    eval_args(bm)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``meg-gym``: a user error (:func:`meg_gym.errors.user_error`) is one line on
    stderr and exit status 2, an interrupt status 130; anything else is a bug and keeps its traceback."""
    from meg_gym.errors import user_error

    args = _parser().parse_args(argv)
    try:
        return int(args.fn(args) or 0)
    except KeyboardInterrupt:
        print(f"meg-gym {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        line = user_error(exc)
        if line is None:
            raise
        print(f"meg-gym {args.command}: error: {line}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
