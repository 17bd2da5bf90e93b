"""``meg-gym calibrate``: sweep the live engine to build profiled mode's quality table.

For every protocol (multi-ES ones on two ESs), every point of the uplink x downlink SNR
grid (only along links that carry a noisy tensor) and every step count, the same
``requests`` requests are served live and the mean and standard deviation of SSIM, PSNR,
prompt fidelity and quality are stored. Progress is saved after every point, so an
interrupted sweep resumes where it stopped; a sweep resumed with another ``requests``
serves the remaining points with that many (the first ones of the same request stream),
and the table's meta records each protocol's count.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from meg_gym.protocols import PROTOCOLS, Send, place
from meg_gym.quality.calibration import METRICS, QualityTable

__all__ = ["DEFAULT_SNR_GRID_DB", "calibrate", "check_fidelity", "noisy_axes"]

DEFAULT_SNR_GRID_DB = [-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 15.0, 20.0, 30.0]


def noisy_axes(protocol: str) -> list[str]:
    """The links on which a protocol sends a tensor (text is lossless and does not count)."""
    plan = place(protocol, (0, 1) if PROTOCOLS[protocol].multi_es else (0,))
    axes = set()
    for s in plan.steps:
        if isinstance(s, Send) and s.tensor != "text":
            axes.add(s.link)
    return [a for a in ("ul", "dl") if a in axes]


def _es_ids(protocol: str) -> tuple[int, ...]:
    return (0, 1) if PROTOCOLS[protocol].multi_es else (0,)


def settings_key(system: Any) -> dict[str, Any]:
    """What a table depends on besides SNR and steps: must match the scenario that uses it."""
    sc = system.scenario
    g = system.settings
    return {
        "model": sc.model, "mode": sc.transmission.mode, "bits_per_value": sc.transmission.bits_per_value,
        "strength": g.strength, "guidance_scale": g.guidance_scale, "ue_steps": g.ue_steps,
        "sketch_scale": g.sketch_scale, "complete_steps": g.complete_steps,
        "complete_strength": g.complete_strength, "tile_overlap": g.tile_overlap,
    }


def _serve_point(system: Any, requests: list, protocol: str, snr_ul: float, snr_dl: float) -> dict[str, list[float]]:
    from meg_gym.system import Decision

    es_ids = _es_ids(protocol)
    snr = {(i, link): (snr_ul if link == "ul" else snr_dl) for i in range(system.scenario.num_es)
           for link in ("ul", "dl")}
    out: dict[str, list[float]] = {m: [] for m in METRICS}
    for req in requests:
        o = system.serve(req, Decision(protocol, es_ids), snr_db=snr, use_queues=False)
        out["ssim"].append(o.ssim)
        out["psnr_db"].append(o.psnr_db)
        out["fidelity"].append(o.fidelity if o.fidelity is not None else float("nan"))
        out["quality"].append(o.quality)
    return out


def calibrate(system: Any, out_path: Path, *, snr_grid_db: list[float] | None = None,
              steps_grid: list[int] | None = None, requests: int = 4, seed: int = 0,
              protocols: list[str] | None = None, progress: bool = True) -> QualityTable:
    """Run the sweep (resuming from ``out_path``'s partial file if there is one) and save the table."""
    from meg_gym.workload import sample_request

    grid = list(snr_grid_db or DEFAULT_SNR_GRID_DB)
    steps_grid = list(steps_grid or [system.settings.steps])
    protocols = list(protocols or [p for p in system.scenario.protocols if PROTOCOLS[p].min_es <= 2])
    rng = np.random.default_rng(seed)
    reqs = [sample_request(rng, system.comps.image_size) for _ in range(requests)]
    partial_path = Path(out_path).with_suffix(".partial.json")
    done: dict[str, Any] = json.loads(partial_path.read_text()) if partial_path.is_file() else {}
    key = settings_key(system)
    if done and done.get("settings") != key:
        done = {}
    done.setdefault("settings", key)
    points = done.setdefault("points", {})
    jobs = []
    for protocol in protocols:
        axes = noisy_axes(protocol)
        uls = grid if "ul" in axes else [grid[-1]]
        dls = grid if "dl" in axes else [grid[-1]]
        for steps, ul, dl in itertools.product(steps_grid, uls, dls):
            jobs.append((protocol, steps, ul, dl))
    base_settings = system.settings
    bar = tqdm(total=len(jobs), desc="calibrate", unit="point", disable=not progress)
    for protocol, steps, ul, dl in jobs:
        k = f"{protocol}|{steps}|{ul}|{dl}"
        if k not in points:
            system.settings = replace(base_settings, steps=steps)
            points[k] = _serve_point(system, reqs, protocol, ul, dl)
            partial_path.parent.mkdir(parents=True, exist_ok=True)
            partial_path.write_text(json.dumps(done))
        bar.update(1)
    bar.close()
    system.settings = base_settings
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    axes_of = {p: noisy_axes(p) for p in protocols}
    for protocol in protocols:
        axes = axes_of[protocol]
        uls = grid if "ul" in axes else [grid[-1]]
        dls = grid if "dl" in axes else [grid[-1]]
        tables[protocol] = {}
        for metric in METRICS:
            mean = [[[float(np.nanmean(points[f"{protocol}|{s}|{u}|{d}"][metric]))
                      if not np.all(np.isnan(points[f"{protocol}|{s}|{u}|{d}"][metric])) else 0.0
                      for d in dls] for u in uls] for s in steps_grid]
            std = [[[float(np.nanstd(points[f"{protocol}|{s}|{u}|{d}"][metric]))
                     if not np.all(np.isnan(points[f"{protocol}|{s}|{u}|{d}"][metric])) else 0.0
                     for d in dls] for u in uls] for s in steps_grid]
            tables[protocol][metric] = {"mean": mean, "std": std}
    # a resumed sweep may have served some points with another request count: record each protocol's
    served = {p: min(len(points[f"{p}|{s}|{u}|{d}"]["ssim"]) for (q, s, u, d) in jobs if q == p) for p in protocols}
    table = QualityTable(model=system.scenario.model, settings=key, snr_grid_db=grid, steps_grid=steps_grid,
                         tables=tables, axes=axes_of, requests_per_point=min(served.values()),
                         meta={"seed": seed, "num_es_multi": 2, "requests_per_point": served})
    # a table along a missing axis is constant: store the single row/column at every grid index
    for protocol in protocols:
        for metric in METRICS:
            for stat in ("mean", "std"):
                arr = tables[protocol][metric][stat]
                tables[protocol][metric][stat] = [_fill_axes(a, len(grid), axes_of[protocol]) for a in arr]
    table.save(Path(out_path))
    partial_path.unlink(missing_ok=True)
    return table


def _fill_axes(a: list[list[float]], n: int, axes: list[str]) -> list[list[float]]:
    rows = a if "ul" in axes else a * n
    return [r if "dl" in axes else r * n for r in rows]


def check_fidelity(system: Any, table: QualityTable, *, points: int = 12, requests: int = 4, seed: int = 1,
                   same_requests: bool = False, progress: bool = True) -> dict[str, float]:
    """Profiled against live on held-out settings: random SNRs off the grid.

    At each held-out point, the live mean over the point's requests is compared with the
    table's interpolated mean; returns the mean absolute errors of SSIM and quality.
    ``same_requests=False``: ``requests`` new requests per point (the error then includes
    the spread between two small samples of requests); ``True``: the requests the table was
    measured with (the same stream and count), so the error is the interpolation's alone.
    """
    from meg_gym.workload import sample_request

    rng = np.random.default_rng(seed)
    lo, hi = table.snr_grid_db[0], table.snr_grid_db[-1]
    names = list(table.tables)
    counts = table.meta.get("requests_per_point", {})
    err_ssim, err_q = [], []
    for _ in tqdm(range(points), desc="fidelity", disable=not progress):
        protocol = names[int(rng.integers(len(names)))]
        ul, dl = float(rng.uniform(lo, hi)), float(rng.uniform(lo, hi))
        if same_requests:
            req_rng = np.random.default_rng(table.meta.get("seed", 0))
            n = int(counts.get(protocol, table.requests_per_point))
            reqs = [sample_request(req_rng, system.comps.image_size) for _ in range(n)]
        else:
            reqs = [sample_request(rng, system.comps.image_size) for _ in range(requests)]
        live = _serve_point(system, reqs, protocol, ul, dl)
        steps = system.settings.steps
        err_ssim.append(abs(float(np.mean(live["ssim"])) - table.lookup(protocol, ul, dl, steps, "ssim")[0]))
        err_q.append(abs(float(np.mean(live["quality"])) - table.lookup(protocol, ul, dl, steps, "quality")[0]))
    return {"points": points, "requests": "as calibrated" if same_requests else requests,
            "ssim_mae": float(np.mean(err_ssim)), "quality_mae": float(np.mean(err_q))}
