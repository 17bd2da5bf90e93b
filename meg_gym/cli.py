"""The ``meg-gym`` command line: table, demo, calibrate, costs, train-ldm, evaluate-ldm, train, evaluate, benchmark.

The scenario commands (table, demo, calibrate, costs, train-ldm, evaluate-ldm) and evaluate /
benchmark take ``--config FILE`` (a scenario YAML, any subset of keys) and ``--torch-threads N``;
``train`` takes ``--config`` as its training config (configs/train/*.yaml). Bad input prints a
one-line error, no traceback, and exits with status 2. ``docs/cli.md`` is generated from this
parser (:func:`reference_markdown`).
"""

from __future__ import annotations

import argparse
import json
import shlex
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
    for key in ("torch_threads", "torch_device", "torch_dtype"):
        if getattr(args, key, None) is not None:
            out[key] = getattr(args, key)
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
                     "backhaul_bits": sum(c.backhaul_bits for c in costs),  # ES to ES: exchanged tile borders
                     "flops": sum(c.flops for c in costs if c.kind == "run")})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"model {sc.model} ({comps.image_size}x{comps.image_size}, latent {comps.latent_channels}x"
          f"{comps.latent_size}x{comps.latent_size}), {sc.transmission.bits_per_value} bits per value, "
          f"multi-ES protocols on {num_es} ESs; text sent as UTF-8 ({8 * len(TYPICAL_PROMPT)} bits: "
          f"{TYPICAL_PROMPT!r})")
    print(f"{'protocol':<9} {'ES':>3} {'uplink bits':>14} {'downlink bits':>14} {'total bits':>14} "
          f"{'backhaul bits':>14} {'GFLOP':>10}")
    for r in rows:
        print(f"{r['protocol']:<9} {r['num_es']:>3} {r['uplink_bits']:>14,} {r['downlink_bits']:>14,} "
              f"{r['total_bits']:>14,} {r['backhaul_bits']:>14,} {r['flops'] / 1e9:>10.1f}")
    return 0


DEMO_COST_MODEL = "sd15"


def cmd_demo(args: argparse.Namespace) -> int:
    """Every protocol live on one request; a labelled PNG grid and a table."""
    import numpy as np

    from meg_gym.demo import run_demo

    sc = _scenario(args)
    # SD-1.5-scale latency and bits unless asked otherwise: the tiny model's own are milliseconds, not what
    # a phone and an edge GPU would see (the case study's cost_model)
    cost_model = args.cost_model if args.cost_model is not None else sc.cost_model or DEMO_COST_MODEL
    if cost_model != sc.cost_model:
        from meg_gym.config import load_scenario

        sc = load_scenario(sc, cost_model=None if cost_model == "none" else cost_model)
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
    from meg_gym.quality.calibration import CALIBRATION_DIR, load_table, table_file_name
    from meg_gym.system import MegSystem

    sc = _scenario(args)
    if args.leakage:
        return _calibrate_leakage(args, sc)
    if sc.num_es < 2:
        from meg_gym.config import load_scenario

        sc = load_scenario(args.config, **{**_overrides(args), "num_es": 2})
    system = MegSystem(sc)
    # a model value is a card name or a folder path: one file name, one per transmission mode
    name = table_file_name(_safe_name(sc.model), sc.transmission.mode)
    shipped = CALIBRATION_DIR / name
    if sc.calibration:  # the scenario names its own table (generation_split: configs/calibration/generation_split.json)
        from meg_gym.core import calibration_path

        shipped = calibration_path(sc)
        name = shipped.name
    out = Path(args.out) if args.out else shipped if args.install else Path("out") / "calibration" / name
    if not args.check:  # meg_gym.quality.calibrate keeps every finished point in the partial file
        args.on_interrupt = (f"the points served so far are in {out.with_suffix('.partial.json')}: the same "
                             f"command again resumes from them")
    if args.check:  # reads a table: the one named, else the shipped one
        table_path = Path(args.out) if args.out else shipped
        result = check_fidelity(system, load_table(table_path), points=args.points, requests=args.requests,
                                same_requests=args.same_requests, seed=args.seed + 1)
        print(json.dumps(result))
        return 0
    grid = _numbers("--snr-grid", args.snr_grid, float) if args.snr_grid else None
    steps = _numbers("--steps", args.steps, int) if args.steps else None
    protocols = args.protocols.split(",") if args.protocols else None
    if args.workers is not None and args.ray is None:
        from meg_gym.config import ConfigError

        raise ConfigError(f"'--workers' needs '--ray' (local, auto or host:port) (got --workers {args.workers})")
    if args.workers is not None and args.workers < 1:
        from meg_gym.config import ConfigError

        raise ConfigError(f"'--workers' must be >= 1 (got {args.workers})")
    table = calibrate(system, out, snr_grid_db=grid, steps_grid=steps, requests=args.requests, seed=args.seed,
                      protocols=protocols, ray_address=args.ray, workers=args.workers)
    print(f"calibration table: {out} ({len(table.tables)} protocols, {len(table.snr_grid_db)} SNR points, "
          f"steps {table.steps_grid}, {table.requests_per_point} requests per point)")
    return 0


def _calibrate_leakage(args: argparse.Namespace, sc: Any) -> int:
    """``calibrate --leakage``: the eavesdropper's leakage table (meg_gym.eavesdropper), resumable."""
    from meg_gym.config import ConfigError
    from meg_gym.eavesdropper import calibrate_leakage
    from meg_gym.quality.calibration import CALIBRATION_DIR
    from meg_gym.system import MegSystem

    if args.check or args.ray or args.steps:
        raise ConfigError("'--leakage' takes --snr-grid, --requests, --protocols, --seed, --out and --install only")
    name = f"leakage-{_safe_name(sc.model)}.json"
    out = Path(args.out) if args.out else CALIBRATION_DIR / name if args.install else Path("out") / "calibration" / name
    args.on_interrupt = (f"the (protocol, hop) pairs finished so far are in {out}.partial.json: the same command "
                         f"again resumes from them")
    grid = _numbers("--snr-grid", args.snr_grid, float) if args.snr_grid else None
    protocols = args.protocols.split(",") if args.protocols else None
    table = calibrate_leakage(MegSystem(sc), out, snr_grid_db=grid, requests=args.requests, seed=args.seed,
                              protocols=protocols)
    print(f"leakage table: {out} ({len(table.curves)} protocols, {len(table.snr_grid_db)} SNR points, "
          f"{table.requests} requests per point)")
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
    # the fixed protocols, and the scenario's members of the parametric families (tsplit:<k>, <protocol>@<steps>)
    names = list(dict.fromkeys([*PROTOCOLS, *sc.protocols]))
    path = save_shipped(system, names, args.max_es, folder=None if args.install else cache_dir(), progress=True)
    print(f"step costs: {path}")
    return 0


def _safe_name(model: str) -> str:
    """A model value as one file name that stays inside its folder (a path's separators and dots replaced)."""
    import re

    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(model)).strip("._") or "model"


# Per phase (steps, peak learning rate): the steps the shipped weights were trained with (their meta.json's
# vae_steps, unet_steps, classifier_steps; tests/test_cli.py checks), so the defaults reproduce them
TRAIN_LDM_DEFAULTS = {"vae": (1500, 6e-4), "unet": (7000, 3e-4), "classifier": (2000, 1e-3)}
#: the UE-class model's UNet phase (--model tiny_ue): steps and peak learning rate of its shipped weights
TRAIN_LDM_UE_DEFAULTS = (2000, 5e-4)
TRAIN_LDM_UE_POOL = 4096  # scenes encoded once by the frozen VAE (meg_gym.ldm.train.TrainSettings.latent_pool)
TRAIN_SETTINGS_THREADS = 2  # meg_gym.ldm.train.TrainSettings.threads, named here so --help needs no torch (tested)


def cmd_train_ldm(args: argparse.Namespace) -> int:
    """Train the shipped tiny LDM (one phase at a time; resumable)."""
    from meg_gym.ldm.components import SHIPPED_DIR
    from meg_gym.ldm.train import DEFAULT_CKPT, TrainSettings, train

    if args.model != "tiny" and args.phase not in ("all", "unet"):
        raise SystemExit(f"train-ldm: error: --phase must be unet or all for --model {args.model} (it shares tiny's "
                         f"VAE, text encoder and classifier; got {args.phase!r})")
    phases = ["unet"] if args.model != "tiny" else ["vae", "unet", "classifier"] if args.phase == "all" \
        else [args.phase]
    for phase in phases:
        steps, lr = TRAIN_LDM_DEFAULTS[phase] if args.model == "tiny" else TRAIN_LDM_UE_DEFAULTS
        kwargs: dict[str, Any] = {"phase": phase, "steps": args.steps or steps, "lr": args.lr or lr,
                                  "seed": args.seed, "checkpoint_dir": Path(args.checkpoint_dir or DEFAULT_CKPT),
                                  "model": args.model}
        out = Path(args.out) if args.out else Path("out") / args.model
        kwargs["out_dir"] = SHIPPED_DIR / args.model if args.install else out
        if args.export_every is not None:
            kwargs["export_every"] = args.export_every
        if args.model != "tiny":
            kwargs["latent_pool"] = TRAIN_LDM_UE_POOL if args.latent_pool is None else args.latent_pool
        elif args.latent_pool:
            raise SystemExit("train-ldm: error: --latent-pool needs --model tiny_ue (tiny's VAE trains with it)")
        if args.torch_threads is not None:
            kwargs["threads"] = args.torch_threads
        settings = TrainSettings(**kwargs)
        args.on_interrupt = (  # meg_gym.ldm.train: vae and unet checkpoint; the short classifier phase does not
            f"run the same command again to resume the {phase} phase from its last checkpoint in "
            f"{settings.checkpoint_dir} (saved every {settings.checkpoint_every} steps)" if phase != "classifier"
            else "the classifier phase keeps no checkpoint: the same command again starts it over")
        print(json.dumps(train(settings)))
    return 0


def cmd_evaluate_ldm(args: argparse.Namespace) -> int:
    """Measure the shipped tiny model (VAE PSNR, classifier accuracy, img2img prompt fidelity)."""
    import torch

    from meg_gym.ldm.evaluate import evaluate_ldm

    # the tiny model, like every command that runs it: one intra-op thread unless asked (README, "Threads": a
    # second thread gains little idle and costs 3-4x when anything else runs)
    torch.set_num_threads(args.torch_threads if args.torch_threads is not None else 1)
    if args.model != "tiny":  # a UE-class model: against the default model it shares its parts with
        from meg_gym.ldm.evaluate import evaluate_ue_model

        print(json.dumps(evaluate_ue_model(args.model, requests=args.requests, write=args.install), indent=2))
        return 0
    print(json.dumps(evaluate_ldm(requests=args.requests, write=args.install,
                                  grid=Path(args.grid) if args.grid else None), indent=2))
    return 0


DEFAULT_POLICIES = "random,round_robin,crash_avoid,greedy,fixed:*,oracle"


def cmd_train(args: argparse.Namespace) -> int:
    """Train an SB3 agent (PPO, A2C, DQN, SAC, MaskablePPO) or, for a config with ``library: rllib``, an RLlib
    one from a YAML config; --resume continues a run."""
    import torch

    from agents.rllib import is_rllib_config
    from meg_gym.config import ConfigError

    if isinstance(args.torch_threads, bool) or args.torch_threads < 1:
        raise ConfigError(f"'--torch-threads' must be an integer >= 1 (got {args.torch_threads})")
    # process-wide, before the learner builds its networks (its envs' live models set their own, the
    # scenario's torch_threads, when they run)
    torch.set_num_threads(args.torch_threads)
    again = " ".join(shlex.quote(a) for a in args.argv) + ("" if args.resume else " --resume")
    args.on_interrupt = f"continue from the last checkpoint with: meg-gym {again}"
    kwargs: dict[str, Any] = {}
    if is_rllib_config(args.config):
        from agents.rllib import train

        kwargs["ray_address"] = args.ray_address
        if args.num_env_runners is not None:
            kwargs["num_env_runners"] = args.num_env_runners
    else:
        from agents.progress import TrainProgressBar
        from agents.training import train

        for flag, value in (("--ray-address", args.ray_address), ("--num-env-runners", args.num_env_runners)):
            if value is not None:
                raise ConfigError(f"'{flag}' applies to RLlib configs (library: rllib) only; {args.config} "
                                  f"is an SB3 config")
        kwargs["callbacks"] = [TrainProgressBar()]
    summary = train(args.config, out=args.out, resume=args.resume, verbose=args.verbose,
                    n_timesteps=args.n_timesteps, seed=args.seed, **kwargs)
    print(json.dumps(summary))
    return 0


def _benchmark(env_id: str, env_kwargs: dict[str, Any], specs: list[str], seeds: list[int], out: Path,
               run_dirs: list[str], quiet: bool) -> dict[str, Any]:
    from tqdm import tqdm

    from agents import evaluation as ev

    def progress(label: str, eps: list) -> None:
        if not quiet:
            m = ev.mean_ci([e.metrics["return"] for e in eps])
            tqdm.write(f"  {label:<24} return {m[0]:10.2f} +- {m[1]:.2f}", file=sys.stderr)

    results = ev.evaluate_policies(specs, env_id, seeds, env_kwargs, progress=progress, bar=not quiet)
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
    if args.torch_threads is not None:  # a scenario key: live envs run the model with it
        kw["torch_threads"] = args.torch_threads
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
    from meg_gym.quality import DEFAULT_SNR_GRID_DB  # the package's light module: no numba, no torch

    p = argparse.ArgumentParser(
        prog="meg-gym", description="Mobile Edge Generation: a latent diffusion model split between a phone (UE) "
                                    "and edge servers (ES), over a simulated wireless channel.",
        epilog="meg-gym COMMAND --help lists a command's options; docs/cli.md lists them all.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    threads_default = "default: 1 for the tiny model, torch's own otherwise"

    def add(name: str, fn: Callable[[argparse.Namespace], int], help_: str, scenario: bool = True,
            threads: str = threads_default) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_)
        if scenario:
            sp.add_argument("--config", help="scenario YAML file, or a shipped scenario's name (case_study); any "
                                             "subset of keys, the rest from configs/scenarios/default.yaml")
        sp.add_argument("--torch-threads", type=int, help=f"torch intra-op threads when the model runs ({threads})")
        sp.add_argument("--torch-device", help="where the model runs: cpu, cuda, cuda:N, mps (default: the scenario's)")
        sp.add_argument("--torch-dtype", help="the model's dtype: fp32, fp16, bf16 (default: the scenario's)")
        sp.set_defaults(fn=fn)
        return sp

    t = add("table", cmd_table, "payload bits per protocol, from the tensors the stages produce")
    t.add_argument("--model", help="model card name (tiny, sd15) or a local diffusers folder (default: the "
                                   "scenario's, tiny)")
    t.add_argument("--bits-per-value", type=int, help="bits per transmitted tensor value, 1..32 (default: the "
                                                       "scenario's, 16)")
    t.add_argument("--num-es", type=int, help="ESs for the multi-ES protocols (default 2)")
    t.add_argument("--json", action="store_true", help="print the rows as JSON instead of the table")

    d = add("demo", cmd_demo, "run every protocol live on one request; write a PNG grid")
    d.add_argument("--model", help="model that generates: a card name (tiny, sd15) or a local diffusers folder "
                                   "(default: the scenario's, tiny)")
    d.add_argument("--cost-model", help=f"card whose FLOPs and tensor sizes set latency and bits (default: the "
                                        f"scenario's cost_model, else {DEMO_COST_MODEL}: Stable Diffusion 1.5 "
                                        f"scale); 'none': the generating model's own")
    d.add_argument("--channel", help="channel kind: awgn, perfect, umi, uma (default: the scenario's, awgn)")
    d.add_argument("--snr-db", type=float, help="fixed SNR of every link in dB (awgn, perfect; replaces a "
                                                "scenario's per-request range; default 10)")
    d.add_argument("--prompt", help="the edit prompt (default: one drawn from the caption grammar)")
    d.add_argument("--seed", type=int, default=0,
                   help="seed of the request (input image, prompt, noise; default %(default)s)")
    d.add_argument("--out", default="out/demo", help="folder for grid.png (default %(default)s)")
    d.add_argument("--json", action="store_true", help="print the records as JSON instead of the table")

    c = add("calibrate", cmd_calibrate, "sweep the live engine into profiled mode's quality table")
    c.add_argument("--snr-grid", help=f"comma-separated SNRs in dB (default "
                                      f"{','.join(f'{x:g}' for x in DEFAULT_SNR_GRID_DB)})")
    c.add_argument("--steps", help="comma-separated denoising step counts (default: the scenario's)")
    c.add_argument("--requests", type=int, default=4, help="requests per point (default %(default)s)")
    c.add_argument("--points", type=int, default=12, help="held-out points for --check (default %(default)s)")
    c.add_argument("--protocols", help="comma-separated protocols to sweep (default: all the scenario offers); "
                                       "a stored table's other protocols are kept")
    c.add_argument("--seed", type=int, default=0,
                   help="seed of the sweep's requests (default %(default)s; --check uses seed + 1, held out)")
    c.add_argument("--out", help="table path (default out/calibration/<model>.json; --install: the shipped "
                                 "configs/calibration/<model>.json)")
    c.add_argument("--install", action="store_true", help="write (and top up) the shipped table in configs/")
    c.add_argument("--ray", metavar="ADDRESS", help="serve the grid points on Ray workers: local (a local Ray with "
                                                    "this machine's cores), auto (a running cluster) or host:port")
    c.add_argument("--workers", type=int, help="with --ray: how many workers, each loading the model once "
                                               "(default: one per CPU of the cluster)")
    c.add_argument("--check", action="store_true", help="measure profiled-vs-live error on held-out settings")
    c.add_argument("--leakage", action="store_true",
                   help="the eavesdropper's leakage table instead (leakage-<model>.json: per protocol and hop, "
                        "against the eavesdropper's SNR; default grid -20,-10,0,10,20,30)")
    c.add_argument("--same-requests", action="store_true",
                   help="with --check: serve the requests the table was measured with (the interpolation error alone)")

    co = add("costs", cmd_costs, "count step costs (FLOPs, bits) of every protocol into the user cache "
                                 "(~/.cache/meg_gym/costs/<model>.json, read by every env)")
    co.add_argument("--model", help="model card name (tiny, sd15) or a local diffusers folder (default: the "
                                    "scenario's, tiny)")
    co.add_argument("--max-es", type=int, default=3,
                    help="count multi-ES protocols on 2..max-es ESs (default %(default)s)")
    co.add_argument("--install", action="store_true", help="write the shipped configs/costs/<model>.json instead")

    tr = add("train-ldm", cmd_train_ldm, "train the shipped tiny LDM (hours on CPU; resumable)", scenario=False,
             threads=f"default {TRAIN_SETTINGS_THREADS}: a batch of 32 uses both cores")
    tr.add_argument("--phase", choices=["vae", "unet", "classifier", "all"], default="all",
                    help="the phase to train; all: vae, unet, classifier in turn (default %(default)s)")
    tr.add_argument("--steps", type=int, help="optimiser steps per phase (default: " + ", ".join(
        f"{ph} {n:,}" for ph, (n, _) in TRAIN_LDM_DEFAULTS.items()) + ")")
    tr.add_argument("--lr", type=float, help="peak learning rate (default: " + ", ".join(
        f"{ph} {lr:g}" for ph, (_, lr) in TRAIN_LDM_DEFAULTS.items()) + ")")
    tr.add_argument("--seed", type=int, default=0,
                    help="seed of the training scenes and the weights (default %(default)s)")
    tr.add_argument("--checkpoint-dir", help="checkpoint folder; running the same command again resumes from it "
                                             "(default ~/.cache/meg_gym/train-ldm)")
    tr.add_argument("--model", choices=["tiny", "tiny_ue"], default="tiny",
                    help="tiny: the default model; tiny_ue: the UE-class UNet alone (configs/models/tiny_ue.yaml), "
                         "against tiny's frozen VAE and text encoder (default %(default)s)")
    tr.add_argument("--latent-pool", type=int, help=f"--model tiny_ue: scenes encoded once by the frozen VAE and "
                                                    f"drawn from (default {TRAIN_LDM_UE_POOL}; 0: fresh scenes)")
    tr.add_argument("--export-every", type=int, help="export the weights every N UNet steps (default 1000)")
    tr.add_argument("--out", help="where to write the weights (default out/<model>; the first "
                                  "phase starts from the shipped weights)")
    tr.add_argument("--install", action="store_true", help="write over the shipped weights in the package")
    ev = add("evaluate-ldm", cmd_evaluate_ldm, "measure the shipped tiny model and print the numbers",
             scenario=False, threads="default 1, as for the tiny model everywhere")
    ev.add_argument("--requests", type=int, default=200, help="held-out requests to measure on (default %(default)s)")
    ev.add_argument("--model", choices=["tiny", "tiny_ue"], default="tiny",
                    help="tiny: the default model; tiny_ue: the UE-class model against tiny (Full UE, the temporal "
                         "splits, fidelity and SSIM against tiny's Full ES output, FLOPs per step; default "
                         "%(default)s)")
    ev.add_argument("--install", action="store_true", help="also store the numbers in the shipped meta.json")
    ev.add_argument("--grid", help="also save the first 8 requests as a PNG grid here")

    tn = sub.add_parser("train", help="train an SB3 or RLlib agent from a YAML config", description=cmd_train.__doc__)
    tn.add_argument("--config", required=True, help="training config (configs/train/*.yaml)")
    tn.add_argument("--out", help="run folder (default runs/<config name>)")
    tn.add_argument("--resume", action="store_true", help="continue the run folder from its latest checkpoint")
    tn.add_argument("--n-timesteps", type=int, help="override the config's n_timesteps")
    tn.add_argument("--seed", type=int, help="override the config's seed")
    tn.add_argument("--torch-threads", type=int, default=1,
                    help="torch intra-op threads of the learner (default 1: a small policy's minibatches gain "
                         "nothing from a second thread, and lose most of their speed to it when anything else "
                         "runs)")
    tn.add_argument("--verbose", type=int, default=0, choices=[0, 1, 2],
                    help="0: a progress bar (default); 1: also SB3's table of training statistics; 2: SB3's debug "
                         "output (also on --resume)")
    tn.add_argument("--ray-address", help="RLlib configs: the Ray cluster ('auto', host:port; default: a local "
                                          "Ray with this machine's cores)")
    tn.add_argument("--num-env-runners", type=int, help="RLlib configs: override the config's num_env_runners (0: "
                                                        "sample in the driver, which a loaded machine needs: remote "
                                                        "runners there miss RLlib's sample timeout)")
    tn.set_defaults(fn=cmd_train)

    def eval_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--seeds", type=int, default=10, help="episodes, one per seed (default %(default)s)")
        sp.add_argument("--seed-start", type=int, default=1000,
                        help="first seed (default %(default)s: held out from training)")
        sp.add_argument("--env-kwargs", help="JSON keyword arguments for gym.make, e.g. '{\"action_type\": \"box\"}'")
        sp.add_argument("--out", default="out/benchmark",
                        help="folder for table.md, table.csv, results.json, PNGs (default %(default)s)")
        sp.add_argument("--json", action="store_true", help="print the results as one JSON line instead of the table")

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


def reference_markdown() -> str:
    """Every command and option with its help text, as Markdown: ``docs/cli.md`` (a test keeps them equal)."""
    p = _parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    out = ["# The meg-gym command line", "",
           "Generated from the parser in `meg_gym/cli.py`, defaults included; regenerate with",
           "`python -c \"from meg_gym.cli import reference_markdown as r; print(r(), end='')\" > docs/cli.md`",
           "(`tests/test_cli.py` fails when this file and the parser differ).", "", p.description or "", "",
           "Long commands show a progress bar on stderr: `demo` (over the protocols, weighed by their FLOPs, after",
           "printing its estimated wall time), `train` (steps/s and the latest mean episode return; it first",
           "prints where the TensorBoard logs go and the `tensorboard --logdir` command), `train-ldm`,",
           "`calibrate`, `costs`, `evaluate-ldm`, `evaluate` and `benchmark`. Ctrl-C stops any of them with one",
           "line (exit status 130) that says how to resume: `train` with the same command and `--resume`,",
           "`train-ldm` and `calibrate` with the same command (from the checkpoint or the partial file it",
           "names), or that nothing was written.", ""]
    for name, sp in sub.choices.items():
        fmt = sp._get_formatter()
        out += [f"## `meg-gym {name}`", "", sp.description or "", "", "| option | what it does |", "|---|---|"]
        for action in sp._actions:
            if not action.option_strings or "-h" in action.option_strings:
                continue
            flag = "/".join(action.option_strings)
            if action.choices:
                flag += " {" + ",".join(str(c) for c in action.choices) + "}"
            elif action.nargs != 0:
                flag += f" {action.metavar or action.dest.upper()}"
            out.append(f"| `{flag}` | {fmt._expand_help(action).replace('|', '&#124;')} |")
        out.append("")
    return "\n".join(out)


def _interrupted(args: argparse.Namespace) -> int:
    """Ctrl-C: close the progress bars, then one line saying how to resume (``args.on_interrupt``, which a
    command sets once it knows its checkpoint or partial file), else that nothing was written."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):  # left standing, ended by a newline: the line starts below
        bar.leave = True
        bar.close()
    hint = getattr(args, "on_interrupt", "stopped before writing anything")
    # after a newline: a terminal echoes ^C where the cursor is, and a bar tqdm already dropped (garbage collected
    # with leave=False) leaves the cursor after its text when stderr is a file
    print(f"\nmeg-gym {args.command}: interrupted; {hint}", file=sys.stderr)
    return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``meg-gym``: a user error (:func:`meg_gym.errors.user_error`) is one line on
    stderr and exit status 2, Ctrl-C one line saying how to resume and status 130; anything else is a
    bug and keeps its traceback."""
    args = _parser().parse_args(argv)  # first: --help and usage errors need none of the heavy imports below
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        from meg_gym.errors import user_error  # noqa: I001

        try:
            return int(args.fn(args) or 0)
        except KeyboardInterrupt:
            raise
        except Exception as exc:
            line = user_error(exc)
            if line is None:
                raise
            print(f"meg-gym {args.command}: error: {line}", file=sys.stderr)
            return 2
    except KeyboardInterrupt:
        return _interrupted(args)


if __name__ == "__main__":
    sys.exit(main())
