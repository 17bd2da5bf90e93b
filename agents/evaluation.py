"""Evaluate policies over N seeds; mean and 95% confidence intervals; Markdown, CSV and PNG.

``evaluate_policies(specs, env_id, seeds)`` runs every policy for one episode per seed (the
env reset with that seed, so every policy meets the same request stream and world) and
records per-episode metrics: return, mean quality, mean latency, mean bits per request,
deadline misses, mean UE energy, and per step the protocol chosen and the link SNR.
:func:`summarize` turns them into mean and 95% confidence interval (Student t, computed here:
scipy is not a dependency). :func:`write_markdown`, :func:`write_csv` and the ``plot_*``
functions write the tables and PNG plots (matplotlib's Agg backend).

A policy spec is a baseline name (``random``, ``fixed:ciag``, ``oracle``...; see
:mod:`agents.baselines`) or ``label=path`` / ``path`` of a model trained by
:mod:`agents.training` (its run folder or a ``.zip``).
"""

from __future__ import annotations

import csv
import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from meg_gym.config import ConfigError

__all__ = [
    "METRICS",
    "EpisodeResult",
    "EvaluationError",
    "criteria",
    "evaluate_policies",
    "load_policy",
    "mean_ci",
    "plot_bars",
    "plot_learning_curves",
    "plot_protocol_vs_snr",
    "run_episode",
    "summarize",
    "t_quantile",
    "write_csv",
    "write_markdown",
]

# metric -> (column title, how an episode's value is formed)
METRICS: dict[str, str] = {
    "return": "return",
    "quality": "quality (mean)",
    "latency_s": "latency s (mean)",
    "bits": "bits per request (mean)",
    "deadline_misses": "deadline misses",
    "energy_j": "UE energy J (mean)",
}


# --------------------------------------------------------------------------------------
# Student t quantile (no scipy): regularized incomplete beta by Lentz's continued fraction
# (Numerical Recipes, 3rd ed., section 6.4), then bisection on the CDF.
# --------------------------------------------------------------------------------------
def _betacf(a: float, b: float, x: float) -> float:
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 300):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betai(a: float, b: float, x: float) -> float:
    """Regularized incomplete beta I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    lbt = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(lbt) * _betacf(a, b, x) / a
    return 1.0 - math.exp(lbt) * _betacf(b, a, 1.0 - x) / b


def _t_cdf(t: float, df: float) -> float:
    tail = 0.5 * _betai(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t with ``df`` degrees of freedom (e.g. ``t_quantile(0.975, 9)`` = 2.262)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f"'p' must be in (0, 1) (got {p})")
    if not df > 0:
        raise ValueError(f"'df' must be > 0 (got {df})")
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    lo, hi = 0.0, 1.0
    while _t_cdf(hi, df) < p:
        hi *= 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if _t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> tuple[float, float]:
    """(mean, half-width of the ``confidence`` interval of the mean); half-width NaN for one value."""
    x = np.asarray(list(values), dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan
    m = float(x.mean())
    if x.size < 2:
        return m, math.nan
    sem = float(x.std(ddof=1)) / math.sqrt(x.size)
    return m, t_quantile(0.5 + confidence / 2.0, x.size - 1) * sem


# --------------------------------------------------------------------------------------
# Policies and episodes
# --------------------------------------------------------------------------------------
class EvaluationError(ConfigError):
    """A bad policy spec, model path or evaluation setting (a ConfigError: the CLI prints one line)."""


@dataclass
class EpisodeResult:
    """One episode of one policy: its metrics and, per step, protocol and link SNR."""

    policy: str
    seed: int
    metrics: dict[str, float]
    protocols: list[str] = field(default_factory=list)
    snr_db: list[float] = field(default_factory=list)


def _spec_label(spec: str) -> tuple[str, str]:
    if "=" in spec:
        label, _, path = spec.partition("=")
        return label, path
    p = Path(spec)
    if p.suffix == ".zip" or p.is_dir():
        return (p.parent.name if p.suffix == ".zip" and p.stem == "final_model" else p.stem if p.is_file()
                else p.name), spec
    return spec, spec


def _is_model_path(path: str) -> bool:
    p = Path(path)
    return p.suffix == ".zip" or p.is_dir() or "/" in path


class _ModelPolicy:
    """A trained SB3 model with its run's VecNormalize statistics and action masks if it needs them."""

    def __init__(self, path: str, env: Any) -> None:
        from agents.training import load_model

        self.model, self.obs_rms = load_model(path)
        self.masked = type(self.model).__name__ == "MaskablePPO"
        self.env = env
        self.needs_env = self.masked
        space = self.model.observation_space
        if space.shape != env.observation_space.shape:
            raise EvaluationError(f"model {path} was trained on observations of shape {space.shape}, the env gives "
                                  f"{env.observation_space.shape}: evaluate it on the env it was trained on")

    def predict(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = True) -> Any:
        if self.obs_rms is not None:
            rms, eps, clip = self.obs_rms
            obs = np.clip((obs - rms.mean) / np.sqrt(rms.var + eps), -clip, clip).astype(np.float32)
        if self.masked:
            return self.model.predict(obs, state, episode_start, deterministic,
                                      action_masks=self.env.unwrapped.action_masks())
        return self.model.predict(obs, state, episode_start, deterministic=deterministic)


def load_policy(spec: str, env: Any, seed: int = 0) -> tuple[str, Any]:
    """(label, policy) for a baseline name or a trained model's ``[label=]path``."""
    from agents.baselines import PolicyError, make_policy

    label, path = _spec_label(spec)
    if _is_model_path(path):
        if not Path(path).exists():
            raise EvaluationError(f"model path {path!r} does not exist (give a run folder, a .zip, or a baseline "
                                  f"name)")
        from agents.rllib import RllibPolicy, is_rllib_run

        return label, (RllibPolicy(path, env) if is_rllib_run(path) else _ModelPolicy(path, env))
    try:
        return label, make_policy(path, env, seed=seed)
    except PolicyError as exc:
        raise EvaluationError(str(exc)) from None


def _snr_of(env: Any, decision_es: tuple[int, ...]) -> float:
    """The uplink SNR (dB, whole band) of the link the step used: the worst of its ESs."""
    ul, _ = env.unwrapped.link_snrs_db()
    return float(min(ul[i] for i in decision_es))


def run_episode(policy: Any, env: Any, seed: int, label: str = "", deterministic: bool = True) -> EpisodeResult:
    """One episode of ``policy`` on ``env`` reset with ``seed``; its metrics and per-step choices."""
    obs, _ = env.reset(seed=seed)
    total, steps, misses = 0.0, 0, 0
    quality, latency, bits, energy = [], [], [], []
    protocols, snrs = [], []
    start = True
    done = False
    while not done:
        snr_now = env.unwrapped.link_snrs_db()[0]
        action, _ = policy.predict(obs, episode_start=np.array([start]), deterministic=deterministic)
        start = False
        obs, reward, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        total += float(reward) if np.ndim(reward) == 0 else float(np.sum(reward))
        steps += 1
        misses += int(bool(info["deadline_missed"]))
        quality.append(info["quality"])
        latency.append(info["latency_s"])
        bits.append(info["uplink_bits"] + info["downlink_bits"])
        energy.append(info["energy_j"])
        protocols.append(info["protocol"])
        snrs.append(float(min(snr_now[i] for i in np.flatnonzero(info["es_mask"]))) if info["es_mask"].any()
                    else float(max(snr_now)))
    metrics = {"return": total, "quality": float(np.mean(quality)), "latency_s": float(np.mean(latency)),
               "bits": float(np.mean(bits)), "deadline_misses": float(misses), "energy_j": float(np.mean(energy)),
               "steps": float(steps)}
    return EpisodeResult(label, seed, metrics, protocols, snrs)


def make_eval_env(env_id: str, env_kwargs: dict | None = None) -> Any:
    """``gym.make(env_id, **env_kwargs)`` with one-line errors for an unknown id."""
    import gymnasium as gym

    import envs  # noqa: F401  (registers the MEG ids)

    if env_id not in gym.registry or not env_id.startswith("MEG/"):
        known = sorted(k for k in gym.registry if k.startswith("MEG/"))
        raise EvaluationError(f"'env' must be one of {known} (got {env_id!r})")
    return gym.make(env_id, **(env_kwargs or {}))


def _model_env_kwargs(path: str) -> dict[str, Any]:
    """The action and observation types a trained model's run was configured with."""
    from agents.training import run_config

    p = Path(path)
    run_dir = p if p.is_dir() else (p.parent.parent if p.parent.name == "checkpoints" else p.parent)
    kw = run_config(run_dir).get("env_kwargs") or {}
    if not isinstance(kw, dict):
        return {}
    return {k: kw[k] for k in ("action_type", "observation_type") if k in kw}


def evaluate_policies(specs: Sequence[str], env_id: str, seeds: Sequence[int], env_kwargs: dict | None = None,
                      deterministic: bool = True, progress: Any = None, bar: bool = False
                      ) -> dict[str, list[EpisodeResult]]:
    """Every policy for one episode per seed; ``{label: [EpisodeResult]}``.

    ``progress(label, episodes)`` is called after each policy; ``bar``: a tqdm bar over all the
    episodes on stderr (``progress`` should then print with ``tqdm.write``).

    ``fixed:*`` stands for ``fixed:<p>`` for every protocol the env offers. A trained model runs
    on the env with the action and observation types it was trained with (other keyword
    arguments from ``env_kwargs``); baselines on ``env_kwargs`` as given.
    """
    from agents.baselines import policy_names

    cache: dict[str, Any] = {}

    def env_for(kwargs: dict[str, Any]) -> Any:
        key = json.dumps(kwargs, sort_keys=True, default=str)
        if key not in cache:
            cache[key] = make_eval_env(env_id, kwargs)
        return cache[key]

    base_kwargs = dict(env_kwargs or {})
    env = env_for(base_kwargs)
    expanded: list[str] = []
    for s in specs:
        expanded += [n for n in policy_names(env) if n.startswith("fixed:")] if s in ("fixed:*", "fixed:all") else [s]
    out: dict[str, list[EpisodeResult]] = {}
    from tqdm import tqdm

    episodes = tqdm(total=len(expanded) * len(seeds), desc="episodes", unit="episode", disable=not bar, leave=False)
    for spec in expanded:
        label, path = _spec_label(spec)
        e = env_for({**base_kwargs, **_model_env_kwargs(path)}) if _is_model_path(path) else env
        label, policy = load_policy(spec, e)
        if label in out:
            raise EvaluationError(f"policy label {label!r} given twice: name models as label=path")
        episodes.set_postfix_str(label)
        out[label] = []
        for s in seeds:
            out[label].append(run_episode(policy, e, int(s), label, deterministic))
            episodes.update(1)
        if progress:
            progress(label, out[label])
    episodes.close()
    for e in cache.values():
        e.close()
    return out


# --------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------
def summarize(results: dict[str, list[EpisodeResult]], confidence: float = 0.95) -> list[dict[str, Any]]:
    """Per policy: for each metric its mean and CI half-width (``<metric>`` and ``<metric>_ci``),
    the number of episodes and the protocols chosen (share of steps)."""
    rows = []
    for label, eps in results.items():
        row: dict[str, Any] = {"policy": label, "episodes": len(eps)}
        for m in METRICS:
            row[m], row[f"{m}_ci"] = mean_ci([e.metrics[m] for e in eps], confidence)
        counts = Counter(p for e in eps for p in e.protocols)
        n = sum(counts.values()) or 1
        row["protocols"] = {p: c / n for p, c in counts.most_common()}
        rows.append(row)
    return rows


def criteria(rows: list[dict[str, Any]], model: str, random: str = "random", oracle: str = "oracle"
             ) -> dict[str, Any] | None:
    """The README's evidence: ``model``'s gain over random against the best fixed protocol's and the oracle's.

    ``vs_best_fixed`` = (R_model - R_random) / (R_best_fixed - R_random) - 1 (target >= 0.10);
    ``of_oracle`` = (R_model - R_random) / (R_oracle - R_random) (target >= 0.90).
    """
    by = {r["policy"]: r for r in rows}
    fixed = [r for r in rows if r["policy"].startswith("fixed:")]
    if model not in by or random not in by:
        return None
    r0 = by[random]["return"]
    gain = by[model]["return"] - r0
    out: dict[str, Any] = {"model": model, "gain_model": gain}
    if fixed:
        best = max(fixed, key=lambda r: r["return"])
        out.update(best_fixed=best["policy"], gain_best_fixed=best["return"] - r0)
        out["vs_best_fixed"] = gain / out["gain_best_fixed"] - 1.0 if out["gain_best_fixed"] > 0 else math.nan
    if oracle in by:
        out["gain_oracle"] = by[oracle]["return"] - r0
        out["of_oracle"] = gain / out["gain_oracle"] if out["gain_oracle"] > 0 else math.nan
    return out


def _fmt(x: float) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    a = abs(x)
    if a >= 1e5:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.1f}"
    return f"{x:.3f}"


def write_markdown(rows: list[dict[str, Any]], path: Path | None = None, title: str = "") -> str:
    """A Markdown table: mean ± 95% CI per metric, and the two most chosen protocols."""
    head = ["policy", "episodes", *METRICS.values(), "protocols chosen"]
    lines = [f"**{title}**", ""] if title else []
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["policy"], str(r["episodes"])]
        cells += [f"{_fmt(r[m])} ± {_fmt(r[f'{m}_ci'])}" for m in METRICS]
        cells.append(", ".join(f"{p} {s:.0%}" for p, s in list(r["protocols"].items())[:2]))
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text, encoding="utf-8")
    return text


def write_csv(rows: list[dict[str, Any]], path: Path, results: dict[str, list[EpisodeResult]] | None = None) -> None:
    """The summary as CSV (mean and CI columns); with ``results``, also ``<stem>_episodes.csv``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = ["policy", "episodes", *(c for m in METRICS for c in (m, f"{m}_ci")), "protocols"]
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for r in rows:
            w.writerow([*(r[c] for c in cols[:-1]), json.dumps(r["protocols"])])
    if results is not None:
        with path.with_name(path.stem + "_episodes.csv").open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["policy", "seed", *METRICS, "steps"])
            for label, eps in results.items():
                for e in eps:
                    w.writerow([label, e.seed, *(e.metrics[m] for m in METRICS), e.metrics["steps"]])


# --------------------------------------------------------------------------------------
# Plots (Agg backend: no display needed)
# --------------------------------------------------------------------------------------
def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_bars(rows: list[dict[str, Any]], path: Path, metrics: Sequence[str] = ("return", "quality", "latency_s",
                                                                                 "deadline_misses")) -> Path:
    """One bar per policy for each metric, with its 95% CI as error bars."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 4.0))
    axes = np.atleast_1d(axes)
    labels = [r["policy"] for r in rows]
    for ax, m in zip(axes, metrics):
        vals = [r[m] for r in rows]
        err = [0.0 if math.isnan(r[f"{m}_ci"]) else r[f"{m}_ci"] for r in rows]
        ax.bar(range(len(rows)), vals, yerr=err, capsize=3, color="C0")
        ax.set_xticks(range(len(rows)))
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=8)
        ax.set_title(METRICS[m], fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def plot_protocol_vs_snr(results: dict[str, list[EpisodeResult]], path: Path, bins: int = 8) -> Path:
    """Per policy, the share of each protocol chosen in each bin of the link's uplink SNR."""
    plt = _plt()
    labels = list(results)
    protocols = sorted({p for eps in results.values() for e in eps for p in e.protocols})
    snrs = np.concatenate([np.asarray(e.snr_db) for eps in results.values() for e in eps]) if labels else np.zeros(1)
    lo, hi = float(np.min(snrs)), float(np.max(snrs))
    hi = hi if hi > lo else lo + 1.0
    edges = np.linspace(lo, hi, bins + 1)
    cols = min(3, len(labels)) or 1
    rows_n = math.ceil(len(labels) / cols) or 1
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.5 * cols, 3.4 * rows_n), squeeze=False)
    centres = 0.5 * (edges[:-1] + edges[1:])
    for ax, label in zip(axes.flat, labels):
        snr = np.concatenate([np.asarray(e.snr_db) for e in results[label]])
        prot = np.array([p for e in results[label] for p in e.protocols])
        idx = np.clip(np.digitize(snr, edges) - 1, 0, bins - 1)
        bottom = np.zeros(bins)
        for k, p in enumerate(protocols):
            share = np.array([np.mean(prot[idx == b] == p) if np.any(idx == b) else 0.0 for b in range(bins)])
            ax.bar(centres, share, width=(edges[1] - edges[0]) * 0.9, bottom=bottom, label=p, color=f"C{k % 10}")
            bottom += share
        ax.set_title(label, fontsize=10)
        ax.set_xlabel("uplink SNR of the link used (dB)")
        ax.set_ylabel("share of requests")
    for ax in list(axes.flat)[len(labels):]:
        ax.axis("off")
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="upper center", ncol=min(len(protocols), 6), fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def learning_curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray, str]:
    """(timesteps, mean return, source) of a training run: its periodic evaluations if any, else the
    training episodes of its Monitor files, else (an RLlib run) its ``progress.csv`` iterations."""
    run_dir = Path(run_dir)
    ev = run_dir / "evaluations.npz"
    if ev.exists():
        data = np.load(ev)
        return data["timesteps"], data["results"].mean(axis=1), "evaluation on fixed seeds"
    progress = run_dir / "progress.csv"
    if progress.exists() and not list(run_dir.glob("monitor/*.monitor.csv")):
        with progress.open(encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if r["episode_return_mean"] not in ("", "nan")]
        if rows:  # RLlib's mean return of the episodes each training iteration finished
            return (np.array([int(r["timesteps"]) for r in rows]),
                    np.array([float(r["episode_return_mean"]) for r in rows]), "training episodes (RLlib)")
    points: list[tuple[float, float]] = []
    for f in sorted(run_dir.glob("monitor/*.monitor.csv")):
        with f.open(encoding="utf-8") as fh:
            next(fh)  # the JSON header line
            reader = csv.DictReader(fh)
            steps = 0
            for row in reader:
                steps += int(row["l"])
                points.append((steps, float(row["r"])))
    if not points:
        raise EvaluationError(f"run folder {str(run_dir)!r} has no evaluations.npz or monitor files")
    n_files = max(1, len(list(run_dir.glob("monitor/*.monitor.csv"))))
    pts = sorted((s * n_files, r) for s, r in points)  # per-env steps -> total steps (envs step together)
    return np.array([p[0] for p in pts]), np.array([p[1] for p in pts]), "training episodes"


def plot_learning_curves(run_dirs: Sequence[Path], path: Path, references: dict[str, float] | None = None) -> Path:
    """Mean return against timesteps for each run; ``references`` (e.g. random, oracle) as lines."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.0))
    for k, d in enumerate(run_dirs):
        x, y, source = learning_curve(Path(d))
        ax.plot(x, y, marker="o", ms=3, label=f"{Path(d).name} ({source})", color=f"C{k}")
    for k, (name, value) in enumerate((references or {}).items()):
        ax.axhline(value, ls="--", lw=1, color=f"C{(k + len(run_dirs)) % 10}", label=name)
    ax.set_xlabel("timesteps")
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    plt = _plt()
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
