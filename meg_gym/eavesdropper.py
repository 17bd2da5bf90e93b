"""An eavesdropper overhearing MEG's seeds, sketches and images (the MEG paper's open problem 2).

"If they were to be intercepted by an eavesdropper, the eavesdropper could perform the generation
tasks illegally ... based on the eavesdropped seeds" (MEG, open problems). The scenario's
``eavesdropper`` section places one receiver with its own channel (:class:`EveChannel`, built
from the same channel models as the UE's: :func:`~meg_gym.channel.batched.make_channel_batch`).

**Leakage** of a request, in [0, 1]: for every tensor sent (a seed, a sketch, an image, a
generated latent) the eavesdropper gets its own copy and finishes the generation from it with
the public model (the plan's remaining stages, :func:`meg_gym.executor._eavesdrop`); its result
``e`` is scored against the user's output ``u`` as quality is scored against the reference:

    score(e) = w SSIM(e, u) + (1 - w) fidelity(e, prompt)        (w = reward.ssim_weight)

and the request's leakage is the largest score over its sends (the eavesdropper keeps its best
copy): ``leakage = max_sends score``, 0 when nothing is sent (Full UE) or nothing could be read
(digital payloads below its decoding threshold, or encrypted). Without the prompt-fidelity judge
the score is SSIM alone. The prompt is sent beside every payload: an eavesdropper that reads a
noisy seed also has the text that guides its generation.

What it can read: analog transmission, the tensor plus the channel's noise at its SNR; digital
transmission, the bit-exact payload when its SNR reaches the threshold of the rate the link
chose for the receiver (:func:`meg_gym.channel.digital.decodable`, the one link model), else
nothing; with ``eavesdropper.encryption`` (digital only) nothing, at AES-GCM's overhead
(:func:`encryption_costs`).

**Live** mode runs all of that per request. **Profiled** mode reads a :class:`LeakageTable`
that ``meg-gym calibrate --leakage`` measured live: per protocol and hop (uplink, downlink), the
mean score over requests at each eavesdropper SNR of a grid (analog), and from a bit-exact copy
(``exact``: digital, once decodable); the request's leakage is the larger of its hops'
(:class:`LeakageModel`). The table's user has a perfect channel (its output is the reference).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from meg_gym.errors import show

__all__ = ["HOPS", "EveChannel", "LeakageModel", "LeakageTable", "calibrate_leakage", "encryption_costs",
           "leakage_score", "leakage_table_path", "load_leakage_table"]

HOPS = ("ul", "dl")
SCHEMA = 1


def leakage_score(eavesdropped: list[Any], user_output: Any, prompt: str, judge: Any, ssim_weight: float) -> float:
    """The request's leakage (module docstring): the best score of the eavesdropper's results against
    the user's output (images (3, H, W) in [0, 1] on the CPU); 0 with no result."""
    from meg_gym.quality.metrics import ssim

    best = 0.0
    for e in eavesdropped:
        s = float(ssim(e, user_output))
        score = s if judge is None else ssim_weight * s + (1.0 - ssim_weight) * float(judge.score(e, prompt))
        best = max(best, min(1.0, max(0.0, score)))
    return best


# --------------------------------------------------------------------------------------
# The eavesdropper's channel
# --------------------------------------------------------------------------------------
class EveChannel:
    """The eavesdropper's links for ``rows`` UEs' requests (every copy's UEs), a static receiver.

    awgn / perfect: a :class:`~meg_gym.channel.batched.FixedSnrBatch` at ``eavesdropper.snr_db``
    (``snr_range_db``: drawn per block); both hops read its SNR to each ES. umi / uma: a
    :class:`~meg_gym.channel.batched.Tr38901Batch` with every row at ``eavesdropper.position_m``
    (mobility static), whose downlinks are the ESs' sends as it receives them; the UE's send
    reaches it over the same TR 38.901 law between two UE-height antennas (h_BS = h_UT, NLOS, as
    3GPP TR 37.885's sidelink reuses the UMi law for vehicle-to-vehicle links), with a Rayleigh
    block per request, at the UE's transmit power and the UE receiver's noise figure."""

    def __init__(self, scenario: Any, rows: int) -> None:
        from meg_gym.channel.batched import make_channel_batch
        from meg_gym.system import channel_params

        sc, eve = scenario, scenario.eavesdropper
        self.kind = sc.channel.kind
        params = channel_params(sc)
        if self.kind in ("umi", "uma"):
            params.update(ue_position_m=tuple(eve.position_m), mobility="static")
        else:
            params["snr_db"] = eve.snr_db
            params.pop("snr_range_db", None)
            if eve.snr_range_db is not None:
                params["snr_range_db"] = tuple(eve.snr_range_db)
        self.batch = make_channel_batch(self.kind, rows, **params)
        self.rows = rows
        self.position_m = None if eve.position_m is None else np.asarray(eve.position_m, dtype=np.float64)
        self._ul_db = np.zeros(rows)  # the UE's send at the eavesdropper, per Hz for umi/uma

    @property
    def scales_with_bandwidth(self) -> bool:
        return self.batch.scales_with_bandwidth

    def reset(self, rng: np.random.Generator, num_es: int, ue_positions_m: np.ndarray | None) -> None:
        if self.kind in ("umi", "uma"):
            self.batch.reset(rng, num_es, ue_positions_m=np.tile(self.position_m, (self.rows, 1)),
                             area_m=self._area(ue_positions_m, num_es))
        else:
            self.batch.reset(rng, num_es)
        self._uplink(rng, ue_positions_m)

    def _area(self, ue_positions_m: np.ndarray | None, num_es: int) -> tuple[float, ...]:
        pos = self.position_m[None] if ue_positions_m is None else np.concatenate([ue_positions_m,
                                                                                   self.position_m[None]])
        return self.batch.walk_area(num_es, pos)

    def advance(self, dt_s: Any, rng: np.random.Generator, ue_positions_m: np.ndarray | None) -> None:
        self.batch.advance(0.0 if self.kind in ("umi", "uma") else dt_s, rng)  # a static receiver: new blocks
        self._uplink(rng, ue_positions_m)

    def _uplink(self, rng: np.random.Generator, ue_positions_m: np.ndarray | None) -> None:
        """umi/uma: the UE's send at the eavesdropper (per Hz), from each UE's position now."""
        if self.kind not in ("umi", "uma") or ue_positions_m is None:
            return
        from meg_gym.channel.links import THERMAL_NOISE_DBM_PER_HZ, _pathloss_db

        t = self.batch.template
        d = np.hypot(ue_positions_m[:, 0] - self.position_m[0], ue_positions_m[:, 1] - self.position_m[1])
        pl = _pathloss_db(d, False, t.carrier_hz, t.ue_height_m, t.ue_height_m, tuple(t.scenario.pathloss_law))
        gain = rng.standard_exponential(self.rows)  # Rayleigh: |h|^2 ~ Exp(1)
        fade = 10.0 * np.log10(np.maximum(gain, 1e-12))
        self._ul_db = t.ue_tx_power_dbm - pl + fade - (THERMAL_NOISE_DBM_PER_HZ + t.noise_figure_db)

    def snr_db(self, bandwidth_hz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per request row at its bandwidth: (the UE's send at the eavesdropper (rows,), each ES's send
        at it (rows, num_es)), in dB."""
        base = self.batch.base_db
        off = 10.0 * np.log10(bandwidth_hz) if self.scales_with_bandwidth else np.zeros(len(bandwidth_hz))
        dl = base[:, :, 1] - off[:, None]
        ul = self._ul_db - off if self.kind in ("umi", "uma") else base[:, 0, 0] - off
        return ul, dl

    def snr_now_db(self, bandwidth_hz: float) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`snr_db` with every row at one bandwidth (the observation's whole cell)."""
        return self.snr_db(np.full(self.rows, float(bandwidth_hz)))


# --------------------------------------------------------------------------------------
# Encryption
# --------------------------------------------------------------------------------------
def encryption_costs(eve: Any, payload_bits: int) -> tuple[int, float]:
    """AES-GCM on one tensor of ``payload_bits``: (bits added: IV and tag, NIST SP 800-38D; seconds:
    encrypting at the sender plus decrypting at the receiver at ``encryption_rate_bps`` each)."""
    return int(eve.encryption_overhead_bits), 2.0 * payload_bits / float(eve.encryption_rate_bps)


# --------------------------------------------------------------------------------------
# The calibrated table
# --------------------------------------------------------------------------------------
class LeakageError(ValueError):
    """A missing, corrupt or mismatched leakage table."""


@dataclass
class LeakageTable:
    """Mean leakage per protocol and hop: ``curves[p][hop]`` over ``snr_grid_db`` (analog copies),
    ``exact[p][hop]`` from a bit-exact copy; a hop on which the protocol sends no tensor is absent."""

    model: str
    settings: dict[str, Any]
    snr_grid_db: list[float]
    requests: int
    curves: dict[str, dict[str, list[float]]]
    exact: dict[str, dict[str, float]]

    def to_json(self) -> dict[str, Any]:
        return {"schema": SCHEMA, "model": self.model, "settings": self.settings, "snr_grid_db": self.snr_grid_db,
                "requests": self.requests, "curves": self.curves, "exact": self.exact}

    def save(self, path: str | Path) -> None:
        from meg_gym.files import atomic_write

        atomic_write(path, json.dumps(self.to_json(), indent=1) + "\n")


def leakage_table_path(scenario: Any) -> Path:
    """The scenario's leakage table: ``eavesdropper.leakage_table``, else the shipped one of its model."""
    from meg_gym.quality.calibration import CALIBRATION_DIR

    given = scenario.eavesdropper.leakage_table
    return Path(given) if given else CALIBRATION_DIR / f"leakage-{Path(scenario.model).name}.json"


def load_leakage_table(path: str | Path) -> LeakageTable:
    """A leakage table from JSON, checked (schema, grid, values in [0, 1]); a one-line error otherwise."""
    p = Path(path)
    if not p.is_file():
        raise LeakageError(f"no leakage table at {str(p)!r}: run meg-gym calibrate --leakage (or name one in "
                           f"'eavesdropper.leakage_table')")
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError) as e:
        raise LeakageError(f"leakage table {str(p)!r} is not valid JSON: {e}") from None

    def fail(what: str) -> None:
        raise LeakageError(f"leakage table {str(p)!r}: {what}")

    if not isinstance(d, dict) or d.get("schema") != SCHEMA:
        fail(f"'schema' must be {SCHEMA} (got {show(d.get('schema') if isinstance(d, dict) else d)})")
    grid = d.get("snr_grid_db")
    if not (isinstance(grid, list) and grid and all(isinstance(x, (int, float)) and math.isfinite(x) for x in grid)
            and all(a < b for a, b in zip(grid, grid[1:]))):
        fail(f"'snr_grid_db' must be a strictly increasing list of finite SNRs (got {show(grid)})")
    curves, exact = d.get("curves"), d.get("exact")
    if not isinstance(curves, dict) or not isinstance(exact, dict):
        fail("'curves' and 'exact' must be mappings protocol -> hop -> values")
    for p_name, hops in curves.items():
        for hop, values in (hops or {}).items():
            ok = hop in HOPS and isinstance(values, list) and len(values) == len(grid) and all(
                isinstance(v, (int, float)) and 0.0 <= v <= 1.0 for v in values)
            if not ok:
                fail(f"curves[{p_name!r}][{hop!r}] must be {len(grid)} values in [0, 1] (got {show(values)})")
            e = (exact.get(p_name) or {}).get(hop)
            if not (isinstance(e, (int, float)) and 0.0 <= e <= 1.0):
                fail(f"exact[{p_name!r}][{hop!r}] must be a value in [0, 1] (got {show(e)})")
    if not isinstance(d.get("settings"), dict):
        fail("'settings' must record what the table was measured with")
    return LeakageTable(str(d.get("model")), d["settings"], [float(x) for x in grid], int(d.get("requests", 0)),
                        curves, {k: dict(v) for k, v in exact.items()})


# what a leakage table depends on besides the eavesdropper's SNR (the quality table's, less the mode:
# a digital copy is the exact one, which the table holds)
_SETTINGS = ("model", "bits_per_value", "strength", "guidance_scale", "ue_steps", "sketch_scale", "complete_steps",
             "complete_strength", "tile_overlap", "steps", "ssim_weight")


def leakage_settings(system: Any) -> dict[str, Any]:
    from meg_gym.quality.calibrate import settings_key

    key = settings_key(system)
    key.pop("mode")
    return {**key, "steps": system.settings.steps, "ssim_weight": system.scenario.reward.ssim_weight}


class LeakageModel:
    """Profiled leakage for a core's placements from a :class:`LeakageTable` (module docstring).

    Per placement its hops' curves on the table's grid and their exact-copy values; a hop it does
    not send a tensor on gives 0. ``digital``: a hop leaks its exact value when the eavesdropper
    decodes it (:func:`~meg_gym.channel.digital.decodable` at the rate chosen for the user's
    worst link on that hop), else 0; ``encrypted``: 0."""

    def __init__(self, table: LeakageTable, protocols: list[str], mode: str, digital: Any, encrypted: bool,
                 combining_db: float = 0.0) -> None:
        missing = sorted({p for p in protocols if p not in table.curves and _sends(p)})
        if missing:
            raise LeakageError(f"the leakage table of model {table.model!r} lacks protocols {missing}: run meg-gym "
                               f"calibrate --leakage --protocols {','.join(missing)}")
        n = len(protocols)
        self.grid = np.asarray(table.snr_grid_db)
        self.curve = np.zeros((2, n, len(self.grid)))
        self.exact = np.zeros((2, n))
        self.sends = np.zeros((2, n), dtype=bool)
        for j, p in enumerate(protocols):
            for h, hop in enumerate(HOPS):
                if hop in table.curves.get(p, {}):
                    self.sends[h, j] = True
                    self.curve[h, j] = table.curves[p][hop]
                    self.exact[h, j] = table.exact[p][hop]
        self.mode, self.digital, self.encrypted = mode, digital, encrypted
        self.combining_db = combining_db

    def __call__(self, idx: np.ndarray, eve_db: np.ndarray, user_db: np.ndarray) -> np.ndarray:
        """Leakage of requests on placements ``idx`` (r,), with the eavesdropper's SNR on each hop
        ``eve_db`` (r, 2) and the user's worst link per hop ``user_db`` (r, 2)."""
        from meg_gym.channel.digital import decodable

        out = np.zeros(len(idx))
        if self.encrypted:
            return out
        for h in range(2):
            sends = self.sends[h, idx]
            if not sends.any():
                continue
            if self.mode == "digital":
                link = self.digital[h]
                ok = sends & decodable(link, user_db[:, h], eve_db[:, h])
                value = np.where(ok, self.exact[h, idx], 0.0)
            else:
                x = eve_db[:, h] + self.combining_db
                value = np.where(sends, _interp_rows(self.grid, self.curve[h, idx], x), 0.0)
            out = np.maximum(out, value)
        return out


def _interp_rows(grid: np.ndarray, rows: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Row k of ``rows`` interpolated on ``grid`` at ``x[k]`` (clamped at the ends)."""
    xc = np.clip(x, grid[0], grid[-1])
    j = np.clip(np.searchsorted(grid, xc, side="right") - 1, 0, len(grid) - 2) if len(grid) > 1 else np.zeros(
        len(x), dtype=np.int64)
    if len(grid) == 1:
        return rows[:, 0].copy()
    w = (xc - grid[j]) / (grid[j + 1] - grid[j])
    k = np.arange(len(x))
    return rows[k, j] * (1.0 - w) + rows[k, j + 1] * w


def _sends(protocol: str) -> bool:
    from meg_gym.quality.calibrate import noisy_axes

    return bool(noisy_axes(protocol))


# --------------------------------------------------------------------------------------
# Calibration (meg-gym calibrate --leakage)
# --------------------------------------------------------------------------------------
DEFAULT_LEAKAGE_GRID_DB = [-20.0, -10.0, 0.0, 10.0, 20.0, 30.0]


def calibrate_leakage(system: Any, out_path: Path, *, snr_grid_db: list[float] | None = None, requests: int = 3,
                      seed: int = 0, protocols: list[str] | None = None, progress: bool = True) -> LeakageTable:
    """Measure the table live: for each protocol and hop it sends a tensor on, ``requests`` requests
    (the same ones everywhere) served over a perfect user channel with the eavesdropper listening on
    that hop alone, at each SNR of the grid (analog copies) and with a bit-exact copy. Resumable: each
    finished (protocol, hop) is saved to ``<out>.partial.json`` and skipped when run again; a finished
    table at ``out_path`` measured the same way keeps the protocols this sweep does not name."""
    from tqdm import tqdm

    from meg_gym.quality.calibrate import _check_sweep, _es_ids, noisy_axes
    from meg_gym.workload import sample_request

    grid = [float(x) for x in (snr_grid_db or DEFAULT_LEAKAGE_GRID_DB)]
    _check_sweep(grid, [1], requests)
    sc = system.scenario
    names = list(protocols or sc.protocols)
    rng = np.random.default_rng(seed)
    size = system.comps.image_size
    reqs = [sample_request(rng, size) for _ in range(requests)]
    settings = leakage_settings(system)
    partial = Path(str(out_path) + ".partial.json")
    done: dict[str, Any] = {}
    if Path(out_path).is_file():  # a finished table of the same settings: its other protocols are kept
        try:
            old = load_leakage_table(out_path)
        except LeakageError:
            old = None
        if old is not None and old.settings == settings and old.snr_grid_db == grid and old.requests == requests:
            done = {f"{p}/{hop}": {"curve": old.curves[p][hop], "exact": old.exact[p][hop]}
                    for p in old.curves for hop in old.curves[p] if p not in names}
    if partial.is_file():
        try:
            prior = json.loads(partial.read_text())
            if prior.get("settings") == settings and prior.get("snr_grid_db") == grid and \
                    prior.get("requests") == requests and prior.get("seed") == seed:
                done = {**done, **prior.get("done", {})}
        except ValueError:
            done = {}
    jobs = [(p, hop) for p in names for hop in noisy_axes(p)]
    bar = tqdm(total=len(jobs) * (len(grid) + 1), disable=not progress, desc="leakage")
    for p, hop in jobs:
        key = f"{p}/{hop}"
        if key in done:
            bar.update(len(grid) + 1)
            continue
        means = []
        for snr in [*grid, None]:
            means.append(_leakage_point(system, reqs, p, _es_ids(p), hop, snr))
            bar.update(1)
        done[key] = {"curve": means[:-1], "exact": means[-1]}
        from meg_gym.files import atomic_write

        atomic_write(partial, json.dumps({"settings": settings, "snr_grid_db": grid, "requests": requests,
                                          "seed": seed, "done": done}))
    bar.close()
    curves: dict[str, dict[str, list[float]]] = {}
    exact: dict[str, dict[str, float]] = {}
    for key, v in done.items():
        p, hop = key.split("/")
        curves.setdefault(p, {})[hop] = v["curve"]
        exact.setdefault(p, {})[hop] = v["exact"]
    table = LeakageTable(settings["model"], settings, grid, requests, curves, exact)
    table.save(out_path)
    partial.unlink(missing_ok=True)
    return table


def _leakage_point(system: Any, reqs: list, protocol: str, es_ids: tuple[int, ...], hop: str,
                   snr: float | None) -> float:
    """Mean leakage over ``reqs`` with the eavesdropper on ``hop`` alone at ``snr`` (None: a bit-exact copy)."""
    from meg_gym.system import Decision

    n = system.scenario.num_es
    # 200 dB: noise 10^-20 of the signal's power, below float32's resolution: the user's copy, and the
    # eavesdropper's "exact" one, arrive as sent; -inf: the eavesdropper does not hear the other hop
    perfect = {(i, link): 200.0 for i in range(n) for link in HOPS}
    eve = {(i, link): (snr if snr is not None else 200.0) if link == hop else -math.inf
           for i in range(n) for link in HOPS}
    values = []
    for req in reqs:
        o = system.serve(req, Decision(protocol, es_ids), snr_db=perfect, use_queues=False, eve_snr_db=eve)
        values.append(float(o.leakage))
    return float(np.mean(values))
