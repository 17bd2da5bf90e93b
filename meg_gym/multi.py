"""Many UEs sharing the edge servers: the multi-agent MEG world.

:class:`MultiWorld` is the single-UE :class:`~meg_gym.world.World` widened to ``M`` UEs. It
composes the same pieces rather than copying them:

* one :class:`~meg_gym.system.MegSystem` (model, FLOP counts, device rates) and the ES
  queues, **shared by all UEs**: exact FIFO queues with the other users' Poisson background
  (the model of :class:`~meg_gym.compute.EsQueue`); the UEs' requests join them in arrival
  order (the timing model reserves an ES per request), so one UE's job delays the others'.
  In profiled mode they are one :class:`~meg_gym.compute.EsQueueBatch` row (all ESs'
  backgrounds advanced in one compiled pass, started in the stationary workload, as the
  vector env's worlds); live mode serves each request through :meth:`MegSystem.serve` on
  the system's :class:`~meg_gym.compute.EsQueue` s;
* **the scenario's channel model for every UE**, as one
  :class:`~meg_gym.channel.batched.ChannelBatch` (``make_channel_batch(kind, num_ues,
  **channel_params(...))``, built once): each UE has its own position, mobility and fading,
  and all UEs' links advance in one compiled pass;
* the compiled plans (:func:`~meg_gym.timing.compile_plan`) and their one timing model, as
  one :class:`~meg_gym.timing.PlanTable` of every placement (as :class:`~meg_gym.world.World`
  keeps one of its decisions), fed with each UE's SNRs at its allocated bandwidth and the
  shared queues;
* the calibration table in profiled mode (:class:`~meg_gym.quality.calibration.GridDraw`:
  :meth:`QualityTable.draw` for all UEs at once), or :meth:`MegSystem.serve` per request in
  live mode (over a scalar snapshot of the UE's channel, :meth:`ChannelBatch.ue_channel`);
* the reward terms of :func:`meg_gym.world.reward_terms` with the scales of
  :func:`meg_gym.world.reward_scales`.

Time runs in decision epochs. At each epoch every UE holds one request of its own stream
(deadline and quality weight drawn per request, a seed for live mode), all arriving at the
epoch's time ``now_s``. :meth:`MultiWorld.step` serves them in a random order drawn from the
seed (the order in which simultaneous jobs join a FIFO queue), then the clock moves on by an
exponential gap of mean ``1 / workload.arrival_rate_hz`` (so each UE's requests form a
Poisson stream of that rate), every UE's channel moves (mobility, a new fading block) and
every UE draws its next request. Everything that does not depend on the service order (the
bandwidth rule, SNRs, quality, rewards) is computed for all UEs at once; only the queue
walk runs per request, in order (one compiled loop, :meth:`PlanTable.walk`): each request
reads and raises the ES backlogs the requests before it left, and the queues then hold the
backlogs the walk leaves.

Bandwidth rule
--------------
Each UE asks for a share ``s_k`` in (0, 1] of the cell (``bandwidth_hz``) of every ES its
placement uses; a placement that sends nothing (Full UE) asks for none. On ES ``i`` the
demand is ``D_i = sum of s_k`` over the requests using it. If ``D_i <= 1`` every request
gets what it asked for; otherwise all of them are scaled down in proportion,
``a_ki = s_k / D_i`` (the requested shares normalised to the cell). A request that uses
several ESs runs all its links at its smallest allocation, ``min_i a_ki * bandwidth_hz``
(the timing model takes one bandwidth per plan).

Placements
----------
:attr:`MultiWorld.placements` lists every (protocol, ES set) offered: single-ES protocols on
each ES, multi-ES protocols on every set of 2 to ``max_es_per_request`` ESs, and a placement
that uses no ES (Full UE) once. Step costs are measured once per protocol and ES count on the
meta model (they do not depend on which ESs run it) and compiled for every ES set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np
from numba import njit

from meg_gym.channel.batched import make_channel_batch
from meg_gym.protocols import PROTOCOLS
from meg_gym.quality.calibration import GridDraw
from meg_gym.system import Decision, MegSystem, channel_params
from meg_gym.timing import CompiledPlan, PlanTable, compile_plan
from meg_gym.world import reward_scales, reward_terms

__all__ = ["MultiStepResult", "MultiWorld", "Placement"]

_BLOCK = 64  # epochs whose random numbers are drawn at once
_COMPONENTS: dict[str, Any] = {}  # model name -> loaded components, shared by the worlds of a process


@dataclass(frozen=True)
class Placement:
    """One (protocol, ES set) a UE can choose; ``radio`` False: it sends nothing (Full UE)."""

    index: int
    protocol: str
    es_ids: tuple[int, ...]
    radio: bool


class _Prepared:
    """What serving a placement needs, computed once."""

    __slots__ = ("plan", "protocol", "es_ids", "es_flops", "radio")

    def __init__(self, plan: CompiledPlan, es_flops: list[float], radio: bool) -> None:
        self.plan = plan
        self.protocol = plan.protocol
        self.es_ids = plan.es_ids
        self.es_flops = es_flops
        self.radio = radio


@dataclass(frozen=True)
class MultiStepResult:
    """What one epoch gave, one entry per UE (index k is UE k)."""

    reward: np.ndarray
    terms: dict[str, np.ndarray]  # meg_gym.world.REWARD_TERMS -> per UE (reward_terms on arrays)
    latency_s: np.ndarray
    quality: np.ndarray
    uplink_bits: np.ndarray
    downlink_bits: np.ndarray
    energy_j: np.ndarray
    deadline_missed: np.ndarray
    bandwidth_hz: np.ndarray
    es_demand: np.ndarray  # requested share of each ES's cell (before normalisation)
    outcomes: list[Any] | None = None  # live Outcomes (images, traces); None in profiled mode


def _components(model: str) -> Any:
    from meg_gym.ldm.components import load_model

    if model not in _COMPONENTS:
        _COMPONENTS[model] = load_model(model)
    return _COMPONENTS[model]


class MultiWorld:
    """``num_ues`` UEs, each with its own channel and request stream, sharing the scenario's ESs.

    Args:
        scenario: a :class:`~meg_gym.config.Scenario`, a YAML path, a shipped name or a mapping.
        num_ues: how many UEs (>= 1).
        max_es_per_request: the largest ES set a multi-ES protocol may use (>= 2; default 2).
        ue_positions_m: umi/uma channels: each UE's start ``[x, y]`` (``num_ues`` of them);
            ``None``: drawn uniformly per episode over the ESs' bounding box padded by half
            the inter-site distance, where the UEs then walk.
        ue_snr_db: awgn/perfect channels: ``(low, high)``, each UE's SNR drawn uniformly per
            episode; ``None``: the scenario's ``channel.snr_db`` for every UE.
        system, table: an existing MegSystem / quality table to use (tests, copies).
    """

    def __init__(self, scenario: Any = None, *, num_ues: int = 4, max_es_per_request: int = 2,
                 ue_positions_m: Any = None, ue_snr_db: tuple[float, float] | None = None,
                 system: MegSystem | None = None, table: Any = None) -> None:
        from meg_gym.config import load_scenario

        sc = scenario if hasattr(scenario, "model_dump") else load_scenario(scenario)
        self.scenario = sc
        self.num_ues = _check_int("num_ues", num_ues, 1)
        self.num_es = sc.num_es
        self.max_es_per_request = _check_int("max_es_per_request", max_es_per_request, 2)
        self.kind = sc.channel.kind
        self.ue_positions_m = self._check_positions(ue_positions_m)
        self.ue_snr_db = self._check_snr_range(ue_snr_db)
        self.live = sc.backend == "live"
        if system is None:
            system = MegSystem(sc, components=_components(sc.model), judge="auto" if self.live else None)
        self.system = system
        if table is None and not self.live:
            from meg_gym.world import _load_table

            table = _load_table(sc)
        self.table = table
        self.workload = sc.workload
        self.bandwidth_hz = float(sc.bandwidth_hz)
        self.placements, self._prepared = self._prepare()
        self._index = {(p.protocol, p.es_ids): p.index for p in self.placements}
        self.scales = reward_scales(system)
        self._weights = sc.reward.weights
        self._steps = system.settings.steps
        t = sc.transmission
        self._mode, self._efficiency = t.mode, t.efficiency
        self._table = self._make_table()
        self._arrays()
        # profiled mode: the ES queues as one row of arrays (live mode: the system's EsQueues)
        self._bank = None if self.live else system.queue_batch(1)
        self._batch = make_channel_batch(self.kind, self.num_ues, **channel_params(sc))  # built once
        self._rows = np.arange(self.num_ues)[:, None]
        self._area = self._walk_area()
        self.now_s = 0.0
        self.epoch = 0
        self.deadline_s: np.ndarray | None = None
        self.quality_weight: np.ndarray | None = None
        self.seeds: np.ndarray | None = None
        self.requests: list[Any] | None = None
        self.last_demand = np.zeros(self.num_es)
        self._snr_cache: np.ndarray | None = None
        # the SNR table changes only with a new block of a fading or SNR-range channel
        self._fixed_snr = self.kind in ("awgn", "perfect") and self._batch.template._range is None

    # -- set-up ---------------------------------------------------------------------------
    def _check_positions(self, value: Any) -> list[tuple[float, float]] | None:
        if value is None:
            return None
        if self.kind not in ("umi", "uma"):
            raise ValueError(f"'ue_positions_m' applies to the umi/uma channels only (channel.kind is {self.kind!r})")
        try:
            pos = [(float(x), float(y)) for x, y in value]
        except (TypeError, ValueError):
            raise ValueError(f"'ue_positions_m' must be a list of num_ues={self.num_ues} [x, y] positions in metres "
                             f"(got {value!r})") from None
        if len(pos) != self.num_ues or not all(math.isfinite(v) for p in pos for v in p):
            raise ValueError(f"'ue_positions_m' must hold num_ues={self.num_ues} finite [x, y] positions "
                             f"(got {len(pos)})")
        return pos

    def _check_snr_range(self, value: Any) -> tuple[float, float] | None:
        if value is None:
            return None
        if self.kind not in ("awgn", "perfect"):
            raise ValueError(f"'ue_snr_db' applies to the awgn/perfect channels only (channel.kind is {self.kind!r})")
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"'ue_snr_db' must be [low, high] in dB (got {value!r})") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"'ue_snr_db' must be finite [low, high] with low <= high (got {[lo, hi]})")
        return lo, hi

    def _prepare(self) -> tuple[list[Placement], list[_Prepared]]:
        sys_ = self.system
        n = self.num_es
        out: list[Placement] = []
        prep: list[_Prepared] = []
        self._aliases: dict[tuple[str, tuple[int, ...]], tuple[str, tuple[int, ...]]] = {}
        for name in self.scenario.protocols:
            if PROTOCOLS[name].multi_es:
                sets = [c for k in range(2, min(self.max_es_per_request, n) + 1) for c in combinations(range(n), k)]
            else:
                sets = [(i,) for i in range(n)]
            for ids in sets:
                # the same FLOPs and payloads whichever ESs run it: measured once per ES count
                costs = sys_.costs(name, tuple(range(len(ids))))
                plan = compile_plan(sys_.plan(name, ids), costs)
                radio = any(plan.is_send)
                if not radio and not any(plan.node):  # runs on the UE alone: one placement is enough
                    if ids != (0,):
                        self._aliases[(name, ids)] = (name, (0,))
                        continue
                out.append(Placement(len(out), name, ids, radio))
                prep.append(_Prepared(plan, [sys_.es_flops_per_s[i] for i in ids], radio))
        return out, prep

    def _make_table(self) -> PlanTable:
        """Every placement's plan for these devices, walked as one compiled loop per epoch."""
        sys_ = self.system
        return PlanTable([p.plan for p in self._prepared], [p.es_flops for p in self._prepared], sys_.ue_flops_per_s,
                         self._mode, self._efficiency, sys_.ue_power_w, sys_.ue_tx_power_w)

    def _arrays(self) -> None:
        """Per placement, as arrays indexed by placement: what the all-UE passes of :meth:`step` gather."""
        prep, n = self._prepared, self.num_es
        width = max(len(p.es_ids) for p in prep)
        self._radio = np.array([p.radio for p in prep])
        # ES ids padded by repeating the first, so that a max or min over a row sees each ES once
        self._ids = np.array([list(p.es_ids) + [p.es_ids[0]] * (width - len(p.es_ids)) for p in prep],
                             dtype=np.int64)
        # the cells each placement asks bandwidth of: its ESs', none for a placement that sends nothing
        self._uses = np.array([[float(p.radio and i in p.es_ids) for i in range(n)] for p in prep])
        self._ul_bits = np.array([p.plan.uplink_bits for p in prep], dtype=np.int64)
        self._dl_bits = np.array([p.plan.downlink_bits for p in prep], dtype=np.int64)
        self._draw = None if self.live else GridDraw(self.table, [p.protocol for p in prep], self._steps)

    def _walk_area(self) -> list[float] | None:
        """umi/uma: the area the UEs start in and walk (the ESs' bounding box padded by ISD/2)."""
        if self.kind not in ("umi", "uma"):
            return None
        t = self._batch.template
        xy = t._layout(self.num_es)  # the ES layout the kind uses (given, or its default row)
        pad = 0.5 * t.scenario.isd_m
        area = [min(x for x, _ in xy) - pad, min(y for _, y in xy) - pad,
                max(x for x, _ in xy) + pad, max(y for _, y in xy) + pad]
        if self.ue_positions_m is not None:
            pos = self.ue_positions_m
            area = [min(area[0], *(x for x, _ in pos)), min(area[1], *(y for _, y in pos)),
                    max(area[2], *(x for x, _ in pos)), max(area[3], *(y for _, y in pos))]
        return area

    @property
    def channels(self) -> list[Any]:
        """Every UE's channel now, as scalar snapshots (:meth:`ChannelBatch.ue_channel`)."""
        return [self._batch.ue_channel(k) for k in range(self.num_ues)]

    # -- episode --------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """New episode: ES queues, every UE's channel and request stream, all from ``seed``."""
        sys_ss, q_ss, ch_ss, pos_ss, req_ss = np.random.SeedSequence(seed).spawn(5)
        sys_ = self.system
        if self.live:  # the ES queues every UE shares: the system's
            sys_.reset(int(sys_ss.generate_state(1)[0]))
            self._queues = [sys_.queues[i] for i in range(self.num_es)]
            self._system_channel = sys_.channel
        else:  # or a row of arrays, in the stationary workload at time 0
            self._q_rng = np.random.default_rng(q_ss)
            self._bank.reset(slice(None), self._q_rng, 0.0)
        self._ch_rng = np.random.default_rng(ch_ss)
        pos_rng = np.random.default_rng(pos_ss)
        m = self.num_ues
        if self._area is None:  # awgn/perfect: each UE's SNR, drawn per episode or the scenario's
            snrs = None if self.ue_snr_db is None else pos_rng.uniform(self.ue_snr_db[0], self.ue_snr_db[1], m)
            self._batch.reset(self._ch_rng, self.num_es, snr_db=snrs)
        else:  # umi/uma: each UE's start, given or drawn uniformly per episode over the area
            area = self._area
            if self.ue_positions_m is not None:
                pos = np.array(self.ue_positions_m, dtype=np.float64)
            else:
                u = pos_rng.random((m, 2))
                pos = np.stack([area[0] + u[:, 0] * (area[2] - area[0]), area[1] + u[:, 1] * (area[3] - area[1])],
                               axis=1)
            self._batch.reset(self._ch_rng, self.num_es, ue_positions_m=pos, area_m=area)
        self.rng = np.random.default_rng(req_ss)
        self._blk_i = _BLOCK
        self.now_s = 0.0
        sys_.now_s = 0.0
        self.epoch = 0
        self.last_demand = np.zeros(self.num_es)
        self._snr_cache = None
        self._draw_requests()

    def _refill(self) -> None:
        """Draw the next ``_BLOCK`` epochs' random numbers at once (requests, service order, quality
        noise, gaps): a few numpy calls per block instead of several per epoch."""
        w, rng, m, b = self.workload, self.rng, self.num_ues, _BLOCK
        self._blk = {
            "deadline": rng.uniform(w.deadline_s[0], w.deadline_s[1], (b, m)),
            "weight": rng.uniform(w.quality_weight[0], w.quality_weight[1], (b, m)),
            "seed": rng.integers(2**31 - 1, size=(b, m)),
            "order": rng.random((b, m)).argsort(axis=1),
            "z": rng.standard_normal((b, m)),
            "gap": rng.exponential(1.0 / w.arrival_rate_hz, b).tolist(),
        }
        self._blk_i = 0

    def _draw_requests(self) -> None:
        if self._blk_i >= _BLOCK:
            self._refill()
        i, blk = self._blk_i, self._blk
        self.deadline_s = blk["deadline"][i]
        self.quality_weight = blk["weight"][i]
        self.seeds = blk["seed"][i]
        self._order, self._z, self._gap = blk["order"][i], blk["z"][i], blk["gap"][i]
        self._blk_i = i + 1
        self.requests = None
        if self.live:
            from meg_gym.workload import sample_request

            size = self.system.comps.image_size
            self.requests = [sample_request(np.random.default_rng(int(s)), size, deadline_s=float(d))
                             for s, d in zip(self.seeds.tolist(), self.deadline_s.tolist())]

    # -- read-outs --------------------------------------------------------------------------
    def snr_table_db(self) -> np.ndarray:
        """Every UE's SNR to every ES over the whole cell, shape (num_ues, num_es, 2): [..., 0] up, [..., 1] down."""
        if self._snr_cache is None:
            self._snr_cache = self._batch.snr_table_db(self.bandwidth_hz)
        return self._snr_cache

    def backlog_s(self) -> np.ndarray:
        """Unfinished work in seconds at every ES now (what a job arriving now would wait for)."""
        if not self.live:
            return self._bank.backlog_s()[0].copy()
        now = self.now_s
        return np.array([q.backlog_s(now) for q in self._queues])

    def placement_index(self, protocol: str, es_ids: tuple[int, ...]) -> int:
        """The index of a (protocol, ES set) in :attr:`placements` (a UE-only protocol: whatever the ES ids)."""
        key = (protocol, tuple(sorted(es_ids)))
        key = self._aliases.get(key, key)
        if key not in self._index:
            raise ValueError(f"placement ({protocol!r}, {list(es_ids)}) is not offered; the scenario offers "
                             f"{sorted({p.protocol for p in self.placements})} on ES sets of up to "
                             f"{self.max_es_per_request} of {self.num_es} ESs")
        return self._index[key]

    # -- one epoch ----------------------------------------------------------------------------
    def step(self, placements: Any, shares: Any) -> MultiStepResult:
        """Serve every UE's request: UE k with placement ``placements[k]`` asking ``shares[k]`` of the cell."""
        if self.deadline_s is None:
            raise RuntimeError("MultiWorld.step() called before reset()")
        return self._step(*self._check_step(placements, shares))

    def _step(self, idx: np.ndarray, share: np.ndarray) -> MultiStepResult:
        """:meth:`step` on checked placements (int64) and shares (float64), one per UE."""
        m = self.num_ues
        # the bandwidth rule: demand on each ES, then each request's smallest allocation over its
        # ESs; and each UE's SNRs to its placement's ESs at its bandwidth, (UEs, widest ES set,
        # [ul, dl]), and its worst link's: one compiled pass over the UEs
        demand = share @ self._uses[idx]
        bw, snr, worst = np.empty(m), np.empty((m, self._ids.shape[1], 2)), np.empty((m, 2))
        batch = self._batch
        _allocate(idx, share, demand, self._ids, self._radio, self.bandwidth_hz, batch.base_db,
                  batch.scales_with_bandwidth, bw, snr, worst)
        if self.live:
            lat, en = [0.0] * m, [0.0] * m
            outcomes, qual = self._serve_live(idx.tolist(), bw.tolist(), lat, en)
            return self._finish(idx, bw, demand, np.array(lat), np.array(en), qual, outcomes)
        # the queue walk: requests join the shared queues in the service order, each seeing the
        # backlog the ones before left (the walk raises it); then the queues hold what it left
        backlog = self._bank.backlog_s().copy()  # the walk may raise: the queues change after it
        out = self._table.walk(self._order, idx, np.full(m, self.now_s), backlog, snr[:, :, 0], snr[:, :, 1], bw)
        self._bank.v[...] = backlog
        qual = self._draw(idx, worst, self._z)[0]  # at each UE's worst links
        return self._finish(idx, bw, demand, out[:, 0], out[:, 1], qual, None)

    def _serve_live(self, idx: list[int], bw: list[float], lat: list[float],
                    en: list[float]) -> tuple[list[Any], np.ndarray]:
        """Live mode: every request through :meth:`MegSystem.serve` in the service order, on its UE's channel."""
        sys_ = self.system
        outcomes: list[Any] = [None] * self.num_ues
        qual = np.zeros(self.num_ues)
        for k in self._order.tolist():
            p = self._prepared[idx[k]]
            sys_.channel, sys_.now_s = self._batch.ue_channel(k), self.now_s
            try:
                out = sys_.serve(self.requests[k], Decision(p.protocol, p.es_ids, bw[k]))
            finally:
                sys_.channel = self._system_channel
            outcomes[k] = out
            lat[k], en[k], qual[k] = out.latency_s, out.energy_j, out.quality
        return outcomes, qual

    def _finish(self, idx: np.ndarray, bw: np.ndarray, demand: np.ndarray, lat: np.ndarray,
                en: np.ndarray, qual: np.ndarray, outcomes: list[Any] | None) -> MultiStepResult:
        """Rewards of every UE at once (:func:`reward_terms` on arrays), the result, then the next epoch."""
        if outcomes is not None:
            ulb = np.array([o.uplink_bits for o in outcomes])
            dlb = np.array([o.downlink_bits for o in outcomes])
        else:
            ulb, dlb = self._ul_bits[idx], self._dl_bits[idx]
        missed = lat > self.deadline_s
        terms, reward = reward_terms(qual, self.quality_weight, lat, ulb + dlb, en, missed, self.scales,
                                     self._weights)
        res = MultiStepResult(reward, terms, lat, qual, ulb, dlb, en, missed, bw, demand, outcomes)
        self.last_demand = res.es_demand
        self._advance()
        return res

    def _check_step(self, placements: Any, shares: Any) -> tuple[np.ndarray, np.ndarray]:
        m, n_pl = self.num_ues, len(self._prepared)
        idx = np.asarray(placements)
        sh = np.asarray(shares, dtype=np.float64)
        if idx.shape != (m,) or sh.shape != (m,):
            raise ValueError(f"'placements' and 'shares' must each hold num_ues={m} entries "
                             f"(got shapes {idx.shape} and {sh.shape})")
        if idx.dtype.kind not in "iu":
            if idx.dtype.kind != "f" or not np.all(np.isfinite(idx)) or np.any(idx % 1 != 0):
                raise ValueError(f"'placements' must be integers in [0, {n_pl - 1}] (got {placements!r})")
            idx = idx.astype(np.int64)
        bad = (idx < 0) | (idx >= n_pl)
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"'placements[{k}]' (UE {k}) must be in [0, {n_pl - 1}] (got {idx[k]})")
        bad = ~((sh > 0.0) & (sh <= 1.0))  # NaN fails too
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(f"'shares[{k}]' (UE {k}) must be a share of the cell in (0, 1] (got {sh[k]})")
        return idx.astype(np.int64, copy=False), sh

    def _advance(self) -> None:
        gap = self._gap
        self.now_s += gap
        self.system.now_s = self.now_s
        if not self.live:
            self._bank.advance(self.now_s, self._q_rng)
        self._batch.advance(gap, self._ch_rng)
        if not self._fixed_snr:
            self._snr_cache = None
        self.epoch += 1
        self._draw_requests()


@njit(cache=True)
def _allocate(idx, share, demand, ids, radio, bw_cell, base_db, per_hz, bw_out, snr_out, worst_out):
    """:meth:`MultiWorld._step`'s bandwidth rule and SNR gather, UE by UE: request ``k`` on
    placement ``idx[k]`` gets ``share[k] / max(1, largest demand on its ESs) * bw_cell`` (the
    whole cell if it sends nothing); its SNRs to its placement's ESs (``ids``, padded by
    repeating the first) at that bandwidth, and the worst of them per link."""
    for k in range(idx.shape[0]):
        p = idx[k]
        bw = bw_cell
        if radio[p]:
            most = 1.0
            for j in range(ids.shape[1]):
                d = demand[ids[p, j]]
                most = d if d > most else most
            bw = share[k] / most * bw_cell
        bw_out[k] = bw
        off = 10.0 * math.log10(bw) if per_hz else 0.0
        for link in range(2):
            low = math.inf
            for j in range(ids.shape[1]):
                x = base_db[k, ids[p, j], link]
                if per_hz:
                    x -= off
                snr_out[k, j, link] = x
                low = x if x < low else low
            worst_out[k, link] = low


def _check_int(name: str, value: Any, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"'{name}' must be an integer >= {lo} (got {value!r})")
    return int(value)
