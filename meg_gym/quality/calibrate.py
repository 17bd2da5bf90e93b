"""``meg-gym calibrate``: sweep the live engine to build profiled mode's quality table.

For every protocol (multi-ES ones on two ESs), every point of the uplink x downlink SNR
grid (only along links that carry a noisy tensor) and every step count, the same
``requests`` requests are served live and the mean and standard deviation of SSIM, PSNR,
prompt fidelity and quality are stored. Progress is saved after every point, so an
interrupted sweep resumes where it stopped; a sweep resumed with another ``requests``
serves the remaining points with that many (the first ones of the same request stream),
and the table's meta records each protocol's count.

Run again over a finished table (same settings and grids) with a larger ``requests``, a
sweep tops the table up: each point serves only the requests it lacks (the next ones of
the same stream; channel noise is seeded per request, so the result equals a sweep run
with the larger count from the start) and merges them with the stored mean and spread.
A sweep over some ``protocols`` keeps the stored table's other protocols as they were.

``ray_address`` ("local", "auto" or ``host:port``; see :mod:`meg_gym.cluster`) fans the points
out to ``workers`` Ray actors (default: one per CPU of the cluster), each building the
system from the scenario, and so loading the model, once. A point is the same computation
wherever it runs (the requests are the driver's, the channel noise is seeded per request), so
the table equals the serial one; progress is saved as each point comes back, and a resumed
sweep (serial or not) serves only the points missing.
"""

from __future__ import annotations

import itertools
import json
import math
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from meg_gym.errors import show
from meg_gym.protocols import PROTOCOLS, Send, place
from meg_gym.quality import DEFAULT_SNR_GRID_DB
from meg_gym.quality.calibration import METRICS, QualityTable

__all__ = ["DEFAULT_SNR_GRID_DB", "calibrate", "check_fidelity", "noisy_axes"]


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
    from meg_gym.core import TABLE_OPTIONAL_SETTINGS, scenario_field

    sc = system.scenario
    g = system.settings
    for i in range(sc.num_es):  # a table has one quality per protocol, measured on ESs 0 and 1
        varied = [f for f, v in zip(("model", "guidance_scale", "seed_offset"), system.es_variant(i)) if v is not None]
        if varied:
            raise ValueError(f"'es[{i}].{varied[0]}' must be unset to calibrate: a calibration table holds one quality "
                             f"per protocol, not one per ES variant (got {getattr(sc.es[i], varied[0])!r})")
    ue = {} if sc.ue_model in (None, sc.model) else {"ue_model": sc.ue_model}  # keyed only when the UE has its own
    return {
        **ue, "model": sc.model, "mode": sc.transmission.mode, "bits_per_value": sc.transmission.bits_per_value,
        "strength": g.strength, "guidance_scale": g.guidance_scale, "ue_steps": g.ue_steps,
        "sketch_scale": g.sketch_scale, "complete_steps": g.complete_steps,
        "complete_strength": g.complete_strength, "tile_overlap": g.tile_overlap,
        "exchange_every": g.exchange_every, "selection": sc.workload.selection,
        # keyed only when not at their defaults (meg_gym.core.TABLE_OPTIONAL_SETTINGS)
        **{key: v for key, (field, default) in TABLE_OPTIONAL_SETTINGS.items()
           if (v := scenario_field(sc, field)) != default},
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


def _check_sweep(grid: list[float], steps_grid: list[int], requests: Any) -> None:
    """The sweep's axes and size, before anything runs: a one-line error naming the argument."""
    from meg_gym.config import SNR_RANGE_DB

    lo, hi = SNR_RANGE_DB
    if not all(isinstance(x, (int, float)) and lo <= x <= hi for x in grid) or sorted(set(grid)) != list(grid):
        raise ValueError(f"'snr_grid_db' must be distinct SNRs in [{lo:g}, {hi:g}] dB in increasing order "
                         f"(got {show(grid)})")
    if not all(isinstance(s, int) and 1 <= s <= 1000 for s in steps_grid) or sorted(set(steps_grid)) != steps_grid:
        raise ValueError(f"'steps_grid' must be distinct step counts in [1, 1000] in increasing order "
                         f"(got {show(steps_grid)})")
    if isinstance(requests, bool) or not isinstance(requests, int) or not 1 <= requests <= 10_000:
        raise ValueError(f"'requests' must be an integer in [1, 10000] (got {show(requests)})")


def calibrate(system: Any, out_path: Path, *, snr_grid_db: list[float] | None = None,
              steps_grid: list[int] | None = None, requests: int = 4, seed: int = 0,
              protocols: list[str] | None = None, progress: bool = True, ray_address: str | None = None,
              workers: int | None = None) -> QualityTable:
    """Run the sweep (resuming from ``out_path``'s partial file if there is one) and save the table.

    ``ray_address``: serve the points on Ray actors (``workers`` of them) instead of in this process.
    """
    from meg_gym.workload import sample_request

    grid = list(snr_grid_db or DEFAULT_SNR_GRID_DB)
    if system.scenario.transmission.mode == "digital":
        # a digital payload arrives bit-exact or fails the request (meg_gym.channel.digital, which the
        # world core runs per request): the delivered quality does not depend on the SNR, so one point
        # (the grid's best, where nothing fails) is the whole table
        grid = [max(grid)]
    steps_grid = list(steps_grid or [system.settings.steps])
    protocols = list(protocols or [p for p in system.scenario.protocols if PROTOCOLS[p].min_es <= 2])
    allowed = sorted(p for p in PROTOCOLS if PROTOCOLS[p].min_es <= 2)
    bad = [p for p in protocols if not (p in PROTOCOLS and PROTOCOLS[p].min_es <= 2)]  # families count too
    if bad:
        raise ValueError(f"calibrate: protocols {bad} are not calibratable; allowed: {allowed}, 'tsplit:<k>' and "
                         f"'<protocol>@<steps>'")
    _check_sweep(grid, steps_grid, requests)
    rng = np.random.default_rng(seed)
    reqs = [sample_request(rng, system.comps.image_size) for _ in range(requests)]
    partial_path = Path(out_path).with_suffix(".partial.json")
    done: dict[str, Any] = {}
    if partial_path.is_file():
        try:
            done = json.loads(partial_path.read_text(encoding="utf-8"))
            if not isinstance(done, dict) or not isinstance(done.get("points", {}), dict):
                raise ValueError("not a mapping of points")
        except (ValueError, UnicodeDecodeError) as exc:  # a sweep killed mid-write, or a foreign file
            warnings.warn(f"calibrate: partial sweep {str(partial_path)!r} is unreadable ({show(exc)}); "
                          f"starting the sweep afresh", stacklevel=2)
            done = {}
    key = settings_key(system)
    if done and done.get("settings") != key:
        done = {}
    done.setdefault("settings", key)
    points = done.setdefault("points", {})
    if "prior" not in done:  # the finished table this sweep tops up, as per-point summaries
        done["prior"] = _prior_points(Path(out_path), key, grid, steps_grid)
    prior = done["prior"]
    jobs = []
    for protocol in protocols:
        axes = noisy_axes(protocol)
        uls = grid if "ul" in axes else [grid[-1]]
        dls = grid if "dl" in axes else [grid[-1]]
        for steps, ul, dl in itertools.product(steps_grid, uls, dls):
            jobs.append((protocol, steps, ul, dl))
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"'workers' must be an integer >= 1 (got {workers!r})")
    if workers is not None and ray_address is None:
        raise ValueError("'workers' needs 'ray_address' ('local', 'auto' or host:port): the serial sweep has none")
    todo = [(k, (protocol, steps, ul, dl, prior[k]["n"] if k in prior else 0))
            for protocol, steps, ul, dl in jobs for k in [_key(protocol, steps, ul, dl)] if k not in points]
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), desc="calibrate", unit="point",
               disable=not progress)

    def save_point(k: str, result: dict[str, list[float]]) -> None:
        points[k] = result
        _write_atomic(partial_path, json.dumps(done))
        bar.update(1)

    if ray_address is None:
        for k, job in todo:
            save_point(k, _serve_job(system, reqs, *job))
    elif todo:
        _serve_on_ray(system, reqs, todo, ray_address, workers, save_point)
    bar.close()
    tables: dict[str, dict[str, dict[str, Any]]] = {}
    axes_of = {p: noisy_axes(p) for p in protocols}
    for protocol in protocols:
        axes = axes_of[protocol]
        uls = grid if "ul" in axes else [grid[-1]]
        dls = grid if "dl" in axes else [grid[-1]]
        tables[protocol] = {}
        for metric in METRICS:
            stats = [[[_merged(prior.get(_key(protocol, s, u, d)), points[_key(protocol, s, u, d)], metric)
                       for d in dls] for u in uls] for s in steps_grid]
            tables[protocol][metric] = {stat: [[[cell[i] for cell in row] for row in plane] for plane in stats]
                                        for i, stat in enumerate(("mean", "std"))}
    # a resumed sweep may have served some points with another request count: record each protocol's
    served = {p: min(len(points[k]["ssim"]) + (prior[k]["n"] if k in prior else 0)
                     for (q, s, u, d) in jobs if q == p for k in [_key(q, s, u, d)]) for p in protocols}
    # a table along a missing axis is constant: store the single row/column at every grid index
    for protocol in protocols:
        for metric in METRICS:
            for stat in ("mean", "std"):
                arr = tables[protocol][metric][stat]
                tables[protocol][metric][stat] = [_fill_axes(a, len(grid), axes_of[protocol]) for a in arr]
    if prior:  # protocols of the stored table this sweep left out are kept as they were
        old = json.loads(Path(out_path).read_text())
        for protocol in old["tables"]:
            if protocol not in tables:
                tables[protocol], axes_of[protocol] = old["tables"][protocol], old["axes"][protocol]
                served[protocol] = int(old["meta"]["requests_per_point"][protocol])
    table = QualityTable(model=system.scenario.model, settings=key, snr_grid_db=grid, steps_grid=steps_grid,
                         tables=tables, axes=axes_of, requests_per_point=min(served.values()),
                         meta={"seed": seed, "num_es_multi": 2, "requests_per_point": served,
                               # where it ran (provenance; quality does not depend on the device, the dtype
                               # rounds differently: docs/models.md)
                               "torch_device": system.scenario.torch_device,
                               "torch_dtype": system.scenario.torch_dtype})
    table.save(Path(out_path))
    partial_path.unlink(missing_ok=True)
    return table


def _serve_job(system: Any, reqs: list, protocol: str, steps: int, ul: float, dl: float,
               have: int) -> dict[str, list[float]]:
    """One grid point: the requests from ``have`` on served at ``steps`` denoising steps."""
    base = system.settings
    system.settings = replace(base, steps=steps)
    try:
        return _serve_point(system, reqs[have:], protocol, ul, dl)
    finally:
        system.settings = base


def _write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def _serve_on_ray(system: Any, reqs: list, todo: list, address: str, workers: int | None, save_point: Any) -> None:
    """Serve ``todo``'s points on Ray actors (each builds the system once), saving each as it returns."""
    from meg_gym.cluster import init_ray
    from meg_gym.config import scenario_to_dict

    init_ray(address)
    import ray

    @ray.remote(num_cpus=1)
    class PointWorker:
        """Builds the scenario's system (and loads its model) once, then serves grid points."""

        def __init__(self, scenario: dict[str, Any]) -> None:
            from meg_gym.config import load_scenario
            from meg_gym.system import MegSystem

            self.system = MegSystem(load_scenario(scenario))

        def serve(self, reqs: list, job: tuple) -> dict[str, list[float]]:
            return _serve_job(self.system, reqs, *job)

    n = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
    n = min(n, len(todo))
    scenario = scenario_to_dict(system.scenario)
    actors = [PointWorker.remote(scenario) for _ in range(n)]
    reqs_ref = ray.put(reqs)
    queue = list(todo)
    running: dict[Any, tuple[str, Any]] = {}

    def submit(actor: Any) -> None:
        k, job = queue.pop(0)
        running[actor.serve.remote(reqs_ref, job)] = (k, actor)

    for a in actors:
        if queue:
            submit(a)
    try:
        while running:
            ready, _ = ray.wait(list(running), num_returns=1)
            k, actor = running.pop(ready[0])
            save_point(k, ray.get(ready[0]))
            if queue:
                submit(actor)
    finally:
        for a in actors:
            ray.kill(a)


def _key(protocol: str, steps: int, ul: float, dl: float) -> str:
    return f"{protocol}|{steps}|{ul}|{dl}"


def _prior_points(path: Path, key: dict[str, Any], grid: list[float], steps_grid: list[int]) -> dict[str, Any]:
    """Per-point request count, mean and std of a finished table at ``path`` measured with the
    same settings and grids (nothing otherwise): the base a larger sweep tops up."""
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("settings") != key or [float(x) for x in data["snr_grid_db"]] != grid \
            or [int(x) for x in data["steps_grid"]] != steps_grid:
        return {}
    counts = data.get("meta", {}).get("requests_per_point", {})
    out: dict[str, Any] = {}
    for protocol, metrics in data["tables"].items():
        axes = data["axes"][protocol]
        n = int(counts.get(protocol, data.get("requests_per_point", 0)))
        for si, s in enumerate(steps_grid):
            for ui, u in enumerate(grid if "ul" in axes else [grid[-1]]):
                for di, d in enumerate(grid if "dl" in axes else [grid[-1]]):
                    out[_key(protocol, s, u, d)] = {"n": n, **{
                        m: [metrics[m]["mean"][si][ui][di], metrics[m]["std"][si][ui][di]] for m in METRICS}}
    return out


def _merged(prior: dict[str, Any] | None, new: dict[str, list[float]], metric: str) -> tuple[float, float]:
    """Mean and (population) std of a point's stored summary merged with newly served samples;
    NaN samples (no fidelity classifier) are left out, and a point with none is 0."""
    x = np.asarray(new[metric], dtype=float)
    x = x[~np.isnan(x)]
    n0, (m0, s0) = (prior["n"], prior[metric]) if prior else (0, (0.0, 0.0))
    if x.size == 0:
        return float(m0), float(s0)
    n = n0 + x.size
    mean = (n0 * m0 + x.sum()) / n
    var = (n0 * (s0 * s0 + m0 * m0) + (x * x).sum()) / n - mean * mean
    return float(mean), float(math.sqrt(max(var, 0.0)))


def _fill_axes(a: list[list[float]], n: int, axes: list[str]) -> list[list[float]]:
    rows = a if "ul" in axes else a * n
    return [r if "dl" in axes else r * n for r in rows]


def check_fidelity(system: Any, table: QualityTable, *, points: int = 12, requests: int = 4, seed: int = 1,
                   same_requests: bool = False, progress: bool = True) -> dict[str, float]:
    """Profiled against live on held-out settings: random SNRs off the grid.

    At each held-out point, the live mean over the point's requests is compared with the
    table's interpolated mean; returns the mean absolute errors of SSIM and quality.
    ``same_requests=False``: ``requests`` new requests per point (the error then includes
    the spread between two small samples of requests; ``ssim_sampling_floor`` is the mean
    absolute error that spread alone is expected to give, sqrt(2/pi) times the standard
    error of the difference of the two means); ``True``: the requests the table was
    measured with (the same stream and count), so the error is the interpolation's alone.
    """
    from meg_gym.workload import sample_request

    rng = np.random.default_rng(seed)
    lo, hi = table.snr_grid_db[0], table.snr_grid_db[-1]
    names = list(table.tables)
    counts = table.meta.get("requests_per_point", {})
    err_ssim, err_q, floor = [], [], []
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
        mean, std = table.lookup(protocol, ul, dl, steps, "ssim")
        err_ssim.append(abs(float(np.mean(live["ssim"])) - mean))
        err_q.append(abs(float(np.mean(live["quality"])) - table.lookup(protocol, ul, dl, steps, "quality")[0]))
        # the error expected from sampling alone (two independent request samples of these sizes)
        var = 0.0 if same_requests else (float(np.var(live["ssim"])) / len(reqs)
                                         + std * std / int(counts.get(protocol, table.requests_per_point) or 1))
        floor.append(math.sqrt(2.0 / math.pi * var))
    return {"points": points, "requests": "as calibrated" if same_requests else requests,
            "ssim_mae": float(np.mean(err_ssim)), "quality_mae": float(np.mean(err_q)),
            "ssim_sampling_floor": float(np.mean(floor))}
