"""The calibrated quality model of profiled mode.

``meg-gym calibrate`` runs the live engine over protocol x uplink SNR x downlink SNR x
denoising steps, several requests per point, and stores the mean and spread of SSIM,
PSNR, prompt fidelity and quality in ``configs/calibration/<name>.json``. Profiled mode
then draws quality from this table: bilinear interpolation in (uplink SNR, downlink SNR)
at the nearest calibrated step count, plus Gaussian noise with the measured spread.

A protocol that sends no tensor on a link has no axis there (its table is constant along
it): Full UE is one point. Multi-ES protocols are calibrated on two ESs with equal links
and looked up at their weakest involved link.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from meg_gym.errors import show

__all__ = ["CALIBRATION_DIR", "METRICS", "CalibrationError", "GridDraw", "QualityTable", "load_table"]

CALIBRATION_DIR = Path(__file__).resolve().parents[2] / "configs" / "calibration"


def table_file_name(model_name: str, mode: str) -> str:
    """The shipped table of a model (a safe file stem) and transmission mode: ``<model>.json`` for
    analog, ``<model>-digital.json`` for digital (one table per mode: quality depends on it)."""
    return f"{model_name}.json" if mode == "analog" else f"{model_name}-{mode}.json"
METRICS = ("ssim", "psnr_db", "fidelity", "quality")


class CalibrationError(ValueError):
    """A missing or mismatched calibration table."""


def _interp_index(grid: list[float], x: float) -> tuple[int, int, float]:
    """Bracketing indices and weight of ``x`` on a sorted grid (clamped at the ends)."""
    if len(grid) == 1 or x <= grid[0]:
        return 0, 0, 0.0
    if x >= grid[-1]:
        n = len(grid) - 1
        return n, n, 0.0
    j = bisect.bisect_right(grid, x)
    lo, hi = grid[j - 1], grid[j]
    return j - 1, j, (x - lo) / (hi - lo)


def _bilinear(a: list[list[float]], w: tuple[int, int, float, int, int, float]) -> float:
    """Bilinear interpolation on a grid (:meth:`QualityTable.draw` writes it out three times)."""
    i0, i1, wi, j0, j1, wj = w
    top = a[i0][j0] * (1 - wj) + a[i0][j1] * wj
    bot = a[i1][j0] * (1 - wj) + a[i1][j1] * wj
    return top * (1 - wi) + bot * wi


@dataclass
class QualityTable:
    """Quality statistics per protocol on an (uplink SNR, downlink SNR, steps) grid."""

    model: str
    settings: dict[str, Any]  # generation + transmission settings the table was measured with
    snr_grid_db: list[float]
    steps_grid: list[int]
    # protocol -> metric -> {"mean": [steps][ul][dl], "std": [steps][ul][dl]}
    tables: dict[str, dict[str, dict[str, Any]]]
    axes: dict[str, list[str]]  # protocol -> the links with a noisy tensor: subset of ["ul", "dl"]
    requests_per_point: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    _cache: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def _steps_index(self, steps: int | None) -> int:
        if steps is None:
            return 0
        return min(range(len(self.steps_grid)), key=lambda i: abs(self.steps_grid[i] - steps))

    def _weights(self, protocol: str, snr_ul_db: float, snr_dl_db: float) -> tuple[int, int, float, int, int, float]:
        axes = self.axes[protocol]
        grid = self.snr_grid_db
        i0, i1, wi = _interp_index(grid, snr_ul_db) if "ul" in axes else (0, 0, 0.0)
        j0, j1, wj = _interp_index(grid, snr_dl_db) if "dl" in axes else (0, 0, 0.0)
        return i0, i1, wi, j0, j1, wj

    def _grid(self, protocol: str, metric: str, stat: str, s: int) -> list[list[float]]:
        try:
            return self.tables[protocol][metric][stat][s]
        except KeyError:
            raise CalibrationError(
                f"calibration table for {self.model!r} has no entry for protocol {protocol!r}, metric {metric!r}; "
                f"protocols: {sorted(self.tables)}") from None

    def lookup(self, protocol: str, snr_ul_db: float, snr_dl_db: float, steps: int | None = None,
               metric: str = "quality") -> tuple[float, float]:
        """(mean, std) of ``metric`` for a protocol at these SNRs, bilinearly interpolated."""
        s = self._steps_index(steps)
        mean, std = self._grid(protocol, metric, "mean", s), self._grid(protocol, metric, "std", s)
        w = self._weights(protocol, snr_ul_db, snr_dl_db)
        return _bilinear(mean, w), _bilinear(std, w)

    def draw(self, protocol: str, snr_ul_db: float, snr_dl_db: float, z: float,
             steps: int | None = None) -> tuple[float, float]:
        """Profiled mode's step: quality drawn with the measured spread (``z``: a standard normal
        draw), clipped to [0, 1], and the mean SSIM, at these SNRs."""
        key = (protocol, steps)
        grids = self._cache.get(key)
        if grids is None:
            grids = self._cache[key] = self.draw_grids(protocol, steps)
        i0, i1, wi, j0, j1, wj = self._weights(protocol, snr_ul_db, snr_dl_db)
        mean, std, ssim = grids
        a, b = mean[i0], mean[i1]
        m = (a[j0] * (1 - wj) + a[j1] * wj) * (1 - wi) + (b[j0] * (1 - wj) + b[j1] * wj) * wi
        a, b = std[i0], std[i1]
        x = m + ((a[j0] * (1 - wj) + a[j1] * wj) * (1 - wi) + (b[j0] * (1 - wj) + b[j1] * wj) * wi) * z
        a, b = ssim[i0], ssim[i1]
        return (0.0 if x < 0.0 else 1.0 if x > 1.0 else x), \
            (a[j0] * (1 - wj) + a[j1] * wj) * (1 - wi) + (b[j0] * (1 - wj) + b[j1] * wj) * wi

    def draw_grids(self, protocol: str, steps: int | None) -> tuple[list, list, list]:
        """The (quality mean, quality std, SSIM mean) grids :meth:`draw` interpolates."""
        s = self._steps_index(steps)
        return tuple(self._grid(protocol, m, st, s) for m, st in
                     (("quality", "mean"), ("quality", "std"), ("ssim", "mean")))

    def sample(self, protocol: str, snr_ul_db: float, snr_dl_db: float, rng: np.random.Generator,
               steps: int | None = None, metric: str = "quality") -> float:
        """A draw with the measured spread, clipped to the metric's range."""
        mean, std = self.lookup(protocol, snr_ul_db, snr_dl_db, steps, metric)
        x = mean + std * rng.standard_normal() if std > 0 else mean
        if metric == "psnr_db":
            return max(0.0, x)
        return min(1.0, max(0.0, x))

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model, "settings": self.settings, "snr_grid_db": self.snr_grid_db,
            "steps_grid": self.steps_grid, "axes": self.axes, "requests_per_point": self.requests_per_point,
            "meta": self.meta, "tables": self.tables,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QualityTable:
        return cls(model=data["model"], settings=data["settings"], snr_grid_db=[float(x) for x in data["snr_grid_db"]],
                   steps_grid=[int(x) for x in data["steps_grid"]], tables=data["tables"], axes=data["axes"],
                   requests_per_point=int(data.get("requests_per_point", 0)), meta=data.get("meta", {}))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        tmp.replace(path)


class GridDraw:
    """:meth:`QualityTable.draw` for arrays of requests at once (the world core, :mod:`meg_gym.core`).

    Built once from a table, the protocols requests may use and the step count; called with
    each request's protocol (an index into ``protocols``), its (uplink, downlink) SNRs as an
    (requests, 2) array and its standard normal ``z``, it returns the quality draws, clipped
    to [0, 1], and the mean SSIMs. The same bilinear interpolation with the same operations as
    :meth:`QualityTable.draw`. A protocol's grids are constant along a link it sends no noisy
    tensor on, so interpolating along it changes nothing: no per-protocol axes are needed
    (floats may differ from ``draw``'s in the last place there). A protocol the table lacks
    gets NaN grids, and a request that uses it raises the table's own error.
    """

    def __init__(self, table: QualityTable, protocols: list[str], steps: int | None) -> None:
        self.table, self.protocols, self.steps = table, list(protocols), steps
        grid = np.asarray(table.snr_grid_db, dtype=np.float64)
        n = len(grid)
        stats = []
        for name in self.protocols:
            try:
                stats.append(np.asarray(table.draw_grids(name, steps), dtype=np.float64))  # (3, ul, dl)
            except (KeyError, ValueError):  # not calibrated: a request using it raises the table's error
                stats.append(np.full((3, n, n), np.nan))
        # ([quality mean, quality std, SSIM mean], protocols * ul * dl): one gather per call
        self._flat = np.stack(stats).transpose(1, 0, 2, 3).reshape(3, -1).copy()
        missing = np.isnan(self._flat[0, ::n * n])
        self._missing = missing if missing.any() else None
        self._grid = grid
        self._inner = grid[1:-1]  # a cell's lower index is how many of these lie at or below x
        self._span = np.diff(grid) if n > 1 else np.ones(1)  # grid[j + 1] - grid[j]

    def __call__(self, index: np.ndarray, snr_db: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self._missing is not None and self._missing[index].any():
            k = int(np.flatnonzero(self._missing[index])[0])
            self.table.lookup(self.protocols[index[k]], 0.0, 0.0, self.steps, "quality")
        q, ssim = np.empty(len(index)), np.empty(len(index))
        _grid_draw(self._flat, self._grid, self._inner, self._span, index, snr_db, z, q, ssim)
        return q, ssim


@njit(cache=True)
def _grid_draw(flat, grid, inner, span, index, snr, z, q_out, ssim_out):
    """:meth:`GridDraw.__call__` compiled (numba): per request, its cell and weights on each
    link (clamped at the grid's ends, as ``_interp_index``), the bilinear interpolation of
    the three stats with the operations of :meth:`QualityTable.draw`, the clipped draw."""
    n = grid.shape[0]
    d = 1 if n > 1 else 0
    lo = np.zeros(2, dtype=np.int64)
    w = np.zeros(2)
    v = np.empty(3)
    for r in range(index.shape[0]):
        for link in range(2):
            x = snr[r, link]
            x = grid[0] if x < grid[0] else x  # NaN stays NaN, as with np.maximum / np.minimum
            x = grid[n - 1] if x > grid[n - 1] else x
            k = 0  # np.searchsorted(inner, x, side="right")
            while k < inner.shape[0] and not x < inner[k]:
                k += 1
            lo[link] = k
            if n > 1:
                w[link] = (x - grid[k]) / span[k]
        base = index[r] * (n * n) + lo[0] * n + lo[1]
        wi, wj = w[0], w[1]
        vj = 1 - wj
        for st in range(3):
            c0, c1 = flat[st, base], flat[st, base + d]
            c2, c3 = flat[st, base + d * n], flat[st, base + d * n + d]
            v[st] = (c0 * vj + c1 * wj) * (1 - wi) + (c2 * vj + c3 * wj) * wi
        qr = v[0] + v[1] * z[r]
        qr = 0.0 if qr < 0.0 else qr
        q_out[r] = 1.0 if qr > 1.0 else qr
        ssim_out[r] = v[2]


def load_table(path: str | Path) -> QualityTable:
    """Load a calibration table; a missing, malformed or implausible file raises :class:`CalibrationError`
    (:func:`check_table`: nothing in it is used unchecked)."""
    p = Path(path)
    if not p.is_file():
        raise CalibrationError(f"calibration table {str(p)!r} does not exist (run 'meg-gym calibrate')")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise TypeError(f"the top level must be a JSON object (got {type(data).__name__})")
        table = QualityTable.from_json(data)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise CalibrationError(f"calibration table {str(p)!r} is malformed ({show(exc, 200)})") from None
    check_table(table, repr(str(p)))
    return table


_UNIT_METRICS = ("quality", "ssim", "fidelity")  # metrics that are fractions in [0, 1]


def check_table(table: QualityTable, shown: str = "") -> None:
    """A table's schema and values: a model name and settings, strictly increasing finite grids,
    at least one request per point, known protocols with their noisy axes, and per protocol a
    quality and an SSIM grid, every grid of shape (steps, SNRs, SNRs) with finite values, the
    spreads >= 0 and the quality, SSIM and fidelity means in [0, 1]. A table that fails would give
    wrong or NaN returns with exit 0, so this raises :class:`CalibrationError` naming the entry."""
    from meg_gym.protocols import PROTOCOLS

    def fail(what: str) -> None:
        raise CalibrationError(f"calibration table {shown or table.model!r}: {what}")

    if not isinstance(table.model, str) or not table.model:
        fail(f"'model' must be a model name (got {show(table.model)})")
    if not isinstance(table.settings, dict):
        fail(f"'settings' must be a mapping of the settings it was measured with (got {show(table.settings)})")
    if table.settings.get("model", table.model) != table.model:
        fail(f"'settings.model' {show(table.settings['model'])} differs from 'model' {show(table.model)}")
    grid, steps = table.snr_grid_db, table.steps_grid
    if not grid or not all(math.isfinite(x) for x in grid) or any(b <= a for a, b in zip(grid, grid[1:])):
        fail(f"'snr_grid_db' must be finite SNRs in strictly increasing order (got {show(grid)})")
    if not steps or any(s < 1 for s in steps) or any(b <= a for a, b in zip(steps, steps[1:])):
        fail(f"'steps_grid' must be step counts >= 1 in strictly increasing order (got {show(steps)})")
    if table.requests_per_point < 1:
        fail(f"'requests_per_point' must be >= 1 (got {table.requests_per_point})")
    if not isinstance(table.tables, dict) or not isinstance(table.axes, dict) or not table.tables:
        fail("'tables' and 'axes' must be mappings by protocol, with at least one protocol")
    shape = (len(steps), len(grid), len(grid))
    for name, metrics in table.tables.items():
        if name not in PROTOCOLS:
            fail(f"protocol {show(name)} is not one of {list(PROTOCOLS)}")
        axes = table.axes.get(name)
        if not isinstance(axes, list) or not set(axes) <= {"ul", "dl"}:
            fail(f"'axes.{name}' must be a subset of ['ul', 'dl'] (got {show(axes)})")
        if not isinstance(metrics, dict) or not {"quality", "ssim"} <= set(metrics):
            fail(f"'tables.{name}' must hold 'quality' and 'ssim' grids (got {show(metrics)})")
        for metric, stats in metrics.items():
            for stat in ("mean", "std"):
                where = f"'tables.{name}.{metric}.{stat}'"
                try:
                    a = np.asarray(stats[stat], dtype=np.float64)
                except (KeyError, TypeError, ValueError):
                    fail(f"{where} must be a {shape} grid of numbers")
                if a.shape != shape:
                    fail(f"{where} must have shape (steps, SNRs, SNRs) = {shape} (got {a.shape})")
                if not np.all(np.isfinite(a)):
                    fail(f"{where} holds {a[~np.isfinite(a)][0]} (must be finite)")
                if stat == "std" and np.any(a < 0):
                    fail(f"{where} holds {a.min()} (a spread must be >= 0)")
                if stat == "mean" and metric in _UNIT_METRICS and (np.any(a < 0) or np.any(a > 1)):
                    v = a.min() if np.any(a < 0) else a.max()
                    fail(f"{where} holds {v} (must be in [0, 1])")
