"""The MEG world core: ``copies x ues`` requests stepped as arrays; every env is a view of it.

One :class:`Core` holds the parts once: the placements (one list; Full UE once), their compiled
plans in one :class:`~meg_gym.timing.PlanTable`, the ES queues (:class:`~meg_gym.compute.EsQueueBatch`,
a row per copy, shared by the copy's UEs), the channel (:class:`~meg_gym.channel.batched.ChannelBatch`,
one link set per UE of every copy), the request stream, the quality draw
(:class:`~meg_gym.quality.calibration.GridDraw`) and the reward terms. An epoch serves every
UE's request of every copy: the bandwidth rule, the queue walk (each copy's requests in a random
service order against its own queues), the quality draw, the rewards; then each copy's clock moves
on by its own exponential gap, its queues' background runs, every UE's channel moves and every UE
draws its next request. Live mode serves each request through :meth:`MegSystem.serve` (the real
stages) on the same channel, queues and clock: live and profiled differ only in where quality
comes from. Views: ``core(1, 1)`` the Gymnasium envs, ``core(N, 1)`` the native vector env,
``core(1, M)`` the PettingZoo envs, ``core(N, M)`` the vectorised multi-agent env.
"""

from __future__ import annotations

import copy as _copy
import math
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from meg_gym.caching import ModelCache
from meg_gym.channel.batched import make_channel_batch
from meg_gym.protocols import PROTOCOLS, UE, Run, generation_split, place
from meg_gym.quality.calibration import _grid_draw
from meg_gym.system import Decision, MegSystem, channel_params
from meg_gym.timing import OUT_COLS, PlanTable, _walk_requests, compile_plan

__all__ = ["FEATURE_TERMS", "OBS_FEATURES_PER_ES", "REWARD_TERMS", "Core", "CoreStep", "Placement", "obs_size",
           "placements", "reward_scales", "reward_terms", "term_names", "term_weights", "terms_per_request"]

REWARD_TERMS = ("quality", "latency", "overhead", "energy", "deadline")
# the optional features' terms, after REWARD_TERMS where the scenario sets the feature (term_names)
FEATURE_TERMS = {"eavesdropper": "leakage", "digital_twin": "aoi"}
OBS_FEATURES_PER_ES = 4  # uplink SNR, downlink SNR, backlog, last bandwidth demand
_OBS_REQUEST = 4  # deadline, quality weight, UE energy so far, episode progress
MAX_PLACEMENTS = 10_000  # beyond this the ES sets are a combinatorial blow-up, not a choice an agent learns
MAX_UES = 4096  # UEs per copy: each has its links to every ES and its request rows
MAX_REQUESTS = 2**20  # copies x UEs: the rows an epoch serves (each a few KB of arrays)
# background jobs the queue walk simulates per request gap (load / (service time x arrival rate)):
# beyond this a step spends seconds in the queues' background (a fast ES with rare requests)
MAX_BACKGROUND_JOBS = 1e5


def obs_size(num_es: int) -> int:
    """Length of one UE's observation row (:meth:`Core.observe`)."""
    return OBS_FEATURES_PER_ES * num_es + _OBS_REQUEST


@dataclass(frozen=True)
class Placement:
    """One (protocol, ES set) a request can be served with; ``radio`` False: it sends nothing (Full UE)."""

    index: int
    protocol: str
    es_ids: tuple[int, ...]
    radio: bool


@dataclass(slots=True)
class CoreStep:
    """What one epoch gave: arrays (copies, ues) unless said otherwise."""

    placement: np.ndarray
    reward: np.ndarray
    terms: dict[str, np.ndarray]  # REWARD_TERMS -> (copies, ues)
    latency_s: np.ndarray
    quality: np.ndarray
    ssim: np.ndarray
    uplink_bits: np.ndarray
    downlink_bits: np.ndarray
    energy_j: np.ndarray
    deadline_missed: np.ndarray
    bandwidth_hz: np.ndarray
    es_demand: np.ndarray  # (copies, num_es): requested share of each ES's cell, before normalisation
    retransmissions: np.ndarray  # digital code blocks sent again (HARQ)
    outage: np.ndarray  # a digital send failed, and the request with it (quality 0, deadline missed)
    outcomes: list[Any] | None = None  # live: the Outcome of each request, row-major; None in profiled mode
    attempts: np.ndarray | None = None  # how often each request was served (the user model's retries; else 1)
    cache_hit: np.ndarray | None = None  # model caching: its model was loaded at every ES it used; else None
    model: np.ndarray | None = None  # model caching: the catalogue index of the model it asked for; else None
    leakage: np.ndarray | None = None  # eavesdropper: what it could make of the request's sends, [0, 1]; else None
    aoi_s: np.ndarray | None = None  # digital twins: each twin's mean age of information over the period; else None


def term_names(scenario: Any) -> tuple[str, ...]:
    """The reward terms of a scenario's requests: :data:`REWARD_TERMS`, then ``leakage`` with an
    eavesdropper and ``aoi`` with digital twins (:data:`FEATURE_TERMS`, in that order)."""
    return REWARD_TERMS + tuple(t for f, t in FEATURE_TERMS.items() if getattr(scenario, f) is not None)


def term_weights(scenario: Any) -> np.ndarray:
    """The weights of :func:`term_names`' terms (``reward.weights``): the scalar reward is their dot product."""
    w = scenario.reward.weights
    return np.array([getattr(w, k) for k in term_names(scenario)], dtype=np.float64)


def placements(scenario: Any, max_es_per_request: int | None = None) -> list[Placement]:
    """Every (protocol, ES set) a scenario offers, in action-index order: single-ES protocols on
    each ES, multi-ES protocols on every set of 2 to ``max_es_per_request`` ESs (None: all), and
    a protocol that runs on the UE alone once."""
    n = scenario.num_es
    top = n if max_es_per_request is None else min(int(max_es_per_request), n)
    # every subset of 2 or more (closed form: a sum of binomials would itself take long for many ESs)
    count = 2**n - 1 - n if top == n else sum(math.comb(n, k) for k in range(2, top + 1))
    if count * sum(PROTOCOLS[p].multi_es for p in scenario.protocols) > MAX_PLACEMENTS:
        raise ValueError(f"'max_es_per_request' must keep the placements below {MAX_PLACEMENTS} (got "
                         f"{max_es_per_request!r} with 'num_es' = {n}: {count:.3g} ES sets per multi-ES protocol); "
                         f"limit the ES set size or use fewer ESs")
    out: list[Placement] = []
    for name in scenario.protocols:
        proto = PROTOCOLS[name]
        sets = [c for k in range(2, top + 1) for c in combinations(range(n), k)] if proto.multi_es \
            else [(i,) for i in range(n)]
        ue_only = bool(sets) and all(isinstance(s, Run) and s.on == UE for s in place(name, sets[0]).steps)
        for ids in sets[:1] if ue_only else sets:
            out.append(Placement(len(out), name, ids, not ue_only))
    return out


class Core:
    """``copies`` independent worlds of one scenario, each with ``ues`` UEs sharing its ESs.

    Args:
        scenario: a :class:`~meg_gym.config.Scenario`, a YAML path, a shipped name or a mapping.
        copies, ues: the batch shape (each >= 1).
        max_es_per_request: the largest ES set a multi-ES protocol may use (None: all ESs).
        ue_positions_m: umi/uma: each UE's start ``[x, y]`` (``ues`` of them, the same in every
            copy); ``None``: one UE starts at the scenario's ``ue.position_m``, several are drawn
            uniformly per episode over the ESs' bounding box padded by half the inter-site distance.
        ue_snr_db: awgn/perfect: ``(low, high)``, each UE's SNR drawn uniformly per episode;
            ``None``: the scenario's ``channel.snr_db`` for every UE.
        system, table: an existing MegSystem / quality table to use.
    """

    def __init__(self, scenario: Any = None, *, copies: int = 1, ues: int = 1, max_es_per_request: int | None = None,
                 ue_positions_m: Any = None, ue_snr_db: Any = None, system: MegSystem | None = None,
                 table: Any = None) -> None:
        from meg_gym.config import load_scenario

        sc = scenario if hasattr(scenario, "model_dump") else load_scenario(scenario)
        self.scenario = sc
        self.copies = _check_int("copies", copies, 1, MAX_REQUESTS)
        self.ues = _check_int("num_ues", ues, 1, MAX_UES)
        if self.copies * self.ues > MAX_REQUESTS:  # before anything is allocated
            raise ValueError(f"'copies' x 'num_ues' must be <= {MAX_REQUESTS} requests per epoch "
                             f"(got {self.copies} x {self.ues})")
        if max_es_per_request is not None:
            _check_int("max_es_per_request", max_es_per_request, 2)
        self.max_es_per_request = max_es_per_request
        self.num_es = sc.num_es
        self.kind = sc.channel.kind
        self.live = sc.backend == "live"
        self.ue_positions_m = self._check_positions(ue_positions_m)
        self.ue_snr_db = self._check_snr_range(ue_snr_db)
        if system is None:  # the model loads (torch, diffusers) only when something runs it: live mode, cost counts
            system = MegSystem(sc, judge="auto" if self.live else None)
        self.system = system
        self.table = table if table is not None or self.live else load_table_for(sc)
        if not self.live:
            check_table_matches(sc, self.table)
        self.workload = sc.workload
        self.bandwidth_hz = float(sc.bandwidth_hz)
        self.placements = placements(sc, max_es_per_request)
        self._index = {(p.protocol, p.es_ids): p.index for p in self.placements}
        self._ue_only = {p.protocol: p.index for p in self.placements if not p.radio}
        self.plans = [compile_plan(system.plan(p.protocol, p.es_ids), system.costs(p.protocol, p.es_ids))
                      for p in self.placements]
        t = sc.transmission
        self.plan_table = PlanTable(self.plans, [[system.es_flops_per_s[i] for i in p.es_ids] for p in self.plans],
                                    system.ue_flops_per_s, t.mode, system.digital, system.ue_power_w,
                                    system.ue_tx_power_w, system.ue_rx_power_w, t.analog_repetitions, system.backhaul)
        # the quality table is indexed by the SNR a tensor meets: r analog copies combined add 10 log10 r
        self._combining_db = 10.0 * math.log10(t.analog_repetitions) if t.mode == "analog" else 0.0
        # the walk's tables, its scratch and its output rows, as the compiled epoch takes them
        self._walk_tables = (*self.plan_table._tables, self.plan_table._scratch,
                             np.empty((self.copies * self.ues, OUT_COLS + self.plan_table.width)))
        self.scales = reward_scales(system)
        self._consts = reward_consts(self.scales, sc.reward.weights)
        self._arrays()
        check_scales(self)
        self.queues = system.queue_batch(self.copies)
        self.channel = make_channel_batch(self.kind, self.copies * self.ues, **channel_params(sc))
        self._area = self._walk_area()
        c, m = self.copies, self.ues
        self.now_s = np.zeros(c)
        self.served = np.zeros(c, dtype=np.int64)
        self.deadline_s = np.zeros((c, m))
        self.quality_weight = np.zeros((c, m))
        self.seeds = np.zeros((c, m), dtype=np.int64)
        self.energy_j = np.zeros((c, m))  # each UE's energy this episode
        self.last_demand = np.zeros((c, self.num_es))
        self.requests: list[Any] | None = None
        # model caching (meg_gym.caching) and the user model's retries: None / off unless the scenario sets them
        self.cache = None if sc.caching is None else ModelCache(sc.caching, c, self.num_es)
        self.models: np.ndarray | None = None  # each request's catalogue model (caching)
        self.terms = term_names(sc)
        self._features_init(sc)
        self._ones = np.ones((c, m), dtype=np.int64)
        self._ones.flags.writeable = False
        self._block = max(1, min(64, 4096 // (c * m)))  # epochs whose random numbers are drawn at once
        self._started = False

    def __deepcopy__(self, memo: dict) -> Core:
        """A copy with its own state (clock, queues, channel, streams); plans, tables and the model shared."""
        for shared in (self.scenario, self.system, self.table, self.placements, self.plans, self.plan_table,
                       self._draw, self._walk_tables, self._leak):  # never mutated by a step (bar the walk scratch)
            memo[id(shared)] = shared
        new = _copy.copy(self)
        memo[id(self)] = new
        new.__dict__.update(_copy.deepcopy(self.__dict__, memo))
        return new

    # -- set-up ---------------------------------------------------------------------------
    def _features_init(self, sc: Any) -> None:
        """The eavesdropper (``meg_gym.eavesdropper``) and the digital twins, where the scenario sets them:
        their state, the extra observation columns (:attr:`obs_extra`: bounds of each) and the
        encryption's per-placement costs."""
        c, m, n = self.copies, self.ues, self.num_es
        self.eve = self._leak = None
        self.obs_extra: list[tuple[float, float]] = []
        eve = sc.eavesdropper
        if eve is not None:
            from meg_gym.eavesdropper import (
                EveChannel,
                LeakageModel,
                encryption_costs,
                leakage_table_path,
                load_leakage_table,
            )

            self.eve = EveChannel(sc, c * m)
            if not self.live:
                table = load_leakage_table(leakage_table_path(sc))
                _check_leakage_table(sc, self.system, table)
                self._leak = LeakageModel(table, [p.protocol for p in self.placements], sc.transmission.mode,
                                          self.system.digital, eve.encryption, self._combining_db)
            # encryption: AES-GCM's IV and tag on every tensor send, and the time to encrypt and decrypt it
            # (added to the latency after the walk; the 224 bits' airtime is below 0.1% of the smallest
            # payload's, a seed's, and is not walked)
            self._enc_ul = np.zeros(len(self.placements), dtype=np.int64)
            self._enc_dl = np.zeros(len(self.placements), dtype=np.int64)
            self._enc_s = np.zeros(len(self.placements))
            if eve.encryption:
                for j, p in enumerate(self.placements):
                    for cost in self.system.costs(p.protocol, p.es_ids):
                        if cost.kind == "send" and not cost.lossless:
                            bits, secs = encryption_costs(eve, cost.payload_bits)
                            if cost.node == UE:
                                self._enc_ul[j] += bits
                            else:
                                self._enc_dl[j] += bits
                            self._enc_s[j] += secs
            self.obs_extra += [(-10.0, 10.0)] * (n + 1)  # its SNR to the UE's send, then to each ES's (dB / 30)
        self.twin = sc.digital_twin
        self.age_s = np.zeros((c, m))  # each twin's age of information at its current request
        if self.twin is not None:
            from meg_gym.config import OBS_LIMIT

            self.obs_extra.append((0.0, OBS_LIMIT))  # the twin's age / period_s
        self.obs_width = obs_size(n) + len(self.obs_extra)

    def _check_positions(self, value: Any) -> np.ndarray | None:
        if value is None:
            return None
        if self.kind not in ("umi", "uma"):
            raise ValueError(f"'ue_positions_m' applies to the umi/uma channels only (channel.kind is {self.kind!r})")
        try:
            pos = np.array([(float(x), float(y)) for x, y in value], dtype=np.float64).reshape(-1, 2)
        except (TypeError, ValueError):
            raise ValueError(f"'ue_positions_m' must be a list of num_ues={self.ues} [x, y] positions in metres "
                             f"(got {value!r})") from None
        if len(pos) != self.ues or not np.all(np.isfinite(pos)):
            raise ValueError(f"'ue_positions_m' must hold num_ues={self.ues} finite [x, y] positions (got {len(pos)})")
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

    def _arrays(self) -> None:
        """Per placement, as arrays indexed by placement: what the all-request passes gather."""
        pls, plans, n = self.placements, self.plans, self.num_es
        width = max(len(p.es_ids) for p in pls)
        self._radio = np.array([p.radio for p in pls])
        # ES ids padded by repeating the first, so that a max or min over a row sees each ES once
        self._ids = np.array([list(p.es_ids) + [p.es_ids[0]] * (width - len(p.es_ids)) for p in pls], dtype=np.int64)
        # the cells each placement asks bandwidth of: its ESs', none for a placement that sends nothing
        self._uses = np.array([[float(p.radio and i in p.es_ids) for i in range(n)] for p in pls])
        # per placement the ESs its request uses (the views' info["es_mask"]; read-only: rows are handed out)
        self.es_mask = self._uses > 0.0
        self.es_mask.flags.writeable = False
        # per placement how it divides the generation (the views' info es_steps, ue_steps, es_area)
        split = [generation_split(p.protocol, self.system.settings) for p in pls]
        self.es_steps = np.array([s[0] for s in split], dtype=np.int64)
        self.ue_steps = np.array([s[1] for s in split], dtype=np.int64)
        self.es_area = np.array([s[2] for s in split], dtype=np.float64)
        for a in (self.es_steps, self.ue_steps, self.es_area):
            a.flags.writeable = False
        self.uplink_bits = np.array([p.uplink_bits for p in plans], dtype=np.int64)
        self.downlink_bits = np.array([p.downlink_bits for p in plans], dtype=np.int64)
        if self.live:
            self._draw = None
        else:
            from meg_gym.quality.calibration import GridDraw

            self._draw = GridDraw(self.table, [p.protocol for p in pls], self.system.settings.steps)

    def _walk_area(self) -> list[float] | None:
        """umi/uma with several UEs: the area they start in and walk (the ESs' bounding box padded by ISD/2)."""
        if self.kind not in ("umi", "uma") or (self.ues == 1 and self.ue_positions_m is None):
            return None
        return list(self.channel.walk_area(self.num_es, self.ue_positions_m))

    # -- episode --------------------------------------------------------------------------
    def reset(self, seed: int | list[int] | None = None) -> None:
        """New episodes of every copy: queues, channels, request streams, all from ``seed`` (an int or a
        list of ints: ``numpy.random.SeedSequence`` entropy; None: the next state of the streams already
        seeded, or fresh entropy before the first)."""
        if seed is not None or not self._started:
            # seven streams: the first four as before the caching, retry and eavesdropper features (their own
            # streams, so a scenario without them draws what it drew)
            # spawn(7)'s first six children are spawn(6)'s: the eavesdropper's stream leaves the others as they were
            q_ss, ch_ss, pos_ss, req_ss, model_ss, retry_ss, eve_ss = np.random.SeedSequence(seed).spawn(7)
            self._q_rng, self._ch_rng = np.random.default_rng(q_ss), np.random.default_rng(ch_ss)
            self._pos_rng, self.rng = np.random.default_rng(pos_ss), np.random.default_rng(req_ss)
            self._model_rng, self._retry_rng = np.random.default_rng(model_ss), np.random.default_rng(retry_ss)
            self._eve_rng = np.random.default_rng(eve_ss)
        c, m = self.copies, self.ues
        self.queues.reset(slice(None), self._q_rng, 0.0)
        if self.kind in ("umi", "uma"):
            pos = None
            if self.ue_positions_m is not None:
                pos = np.tile(self.ue_positions_m, (c, 1))
            elif self._area is not None:  # several UEs: drawn uniformly over the area each episode
                a = self._area
                u = self._pos_rng.random((c * m, 2))
                pos = np.stack([a[0] + u[:, 0] * (a[2] - a[0]), a[1] + u[:, 1] * (a[3] - a[1])], axis=1)
            self.channel.reset(self._ch_rng, self.num_es, ue_positions_m=pos, area_m=self._area)
        else:
            lo_hi = self.ue_snr_db
            snrs = None if lo_hi is None else self._pos_rng.uniform(lo_hi[0], lo_hi[1], c * m)
            self.channel.reset(self._ch_rng, self.num_es, snr_db=snrs)
        if self.eve is not None:
            self.eve.reset(self._eve_rng, self.num_es, self._ue_positions())
        if self.twin is not None:  # a twin starts one period after its last update was requested
            self.age_s[:] = self.twin.period_s
        self.now_s[:] = 0.0
        self.served[:] = 0
        self.energy_j[:] = 0.0
        self.last_demand[:] = 0.0
        if self.cache is not None:
            self.cache.reset()
        self._blk_i = self._block
        self._started = True
        self._next_requests()

    def _refill(self) -> None:
        """The next block of epochs' random numbers at once (requests, service order, quality noise, gaps)."""
        w, rng, b, c, m = self.workload, self.rng, self._block, self.copies, self.ues
        u = rng.random((2, b, c, m))
        deadline = w.deadline_s[0] + (w.deadline_s[1] - w.deadline_s[0]) * u[0]
        weight = w.quality_weight[0] + (w.quality_weight[1] - w.quality_weight[0]) * u[1]
        # per copy its UEs in a random order (the order simultaneous jobs join a FIFO queue), as request rows
        order = (rng.random((b, c, m)).argsort(axis=2) + np.arange(c)[:, None] * m).reshape(b, -1)
        # (epoch, copies, UEs) and the same memory as (epoch, requests): per step only views are taken
        pt = self.plan_table
        self._blk = (deadline, weight, rng.integers(2**31 - 1, size=(b, c, m)), order,
                     rng.standard_normal((b, c * m)), rng.standard_exponential((b, c)) / w.arrival_rate_hz,
                     deadline.reshape(b, -1), weight.reshape(b, -1),
                     rng.random((b, c * m, pt.max_sends, pt.levels)))  # the digital sends' HARQ draws
        self._blk_i = 0

    def _next_requests(self) -> None:
        if self._blk_i >= self._block:
            self._refill()
        i, blk = self._blk_i, self._blk
        self.deadline_s, self.quality_weight, self.seeds = blk[0][i], blk[1][i], blk[2][i]
        self._order, self._z, self._gap, self._deadline_flat, self._weight_flat, self._uni = (
            blk[3][i], blk[4][i], blk[5][i], blk[6][i], blk[7][i], blk[8][i])
        self._blk_i = i + 1
        if self.twin is not None:  # the twins' periodic requests instead of Poisson arrivals
            self._gap = np.full(self.copies, float(self.twin.period_s))
        self.requests = None
        if self.cache is not None:
            self.models = self.cache.draw(self._model_rng, (self.copies, self.ues))
        if self.live:
            from meg_gym.workload import sample_request

            size = self.system.comps.image_size
            self.requests = [sample_request(np.random.default_rng(int(s)), size, deadline_s=float(d))
                             for s, d in zip(self.seeds.ravel().tolist(), self.deadline_s.ravel().tolist())]

    @property
    def done(self) -> np.ndarray:
        """Per copy: has its episode served ``workload.requests_per_episode`` epochs?"""
        return self.served >= self.workload.requests_per_episode

    # -- read-outs --------------------------------------------------------------------------
    def snr_table_db(self) -> np.ndarray:
        """Every UE's SNR to every ES over the whole cell, (copies, ues, num_es, 2): [..., 0] up, [..., 1] down."""
        return self.channel.snr_table_db(self.bandwidth_hz).reshape(self.copies, self.ues, self.num_es, 2)

    def eve_snr_table_db(self) -> np.ndarray:
        """The eavesdropper's SNR over the whole cell, (copies, ues, 1 + num_es): [..., 0] to each UE's send,
        [..., 1 + i] to ES i's send to that UE (what :meth:`observe`'s eavesdropper columns hold, in dB)."""
        if self.eve is None:
            raise RuntimeError("eve_snr_table_db() needs a scenario with an 'eavesdropper' (got None)")
        ul, dl = self.eve.snr_now_db(self.bandwidth_hz)
        return np.concatenate([ul[:, None], dl], axis=1).reshape(self.copies, self.ues, 1 + self.num_es)

    def backlog_s(self) -> np.ndarray:
        """Unfinished work (s) at every ES of every copy now, (copies, num_es): what a job arriving now waits for."""
        return self.queues.backlog_s()

    def placement_index(self, protocol: str, es_ids: tuple[int, ...]) -> int:
        """The index of a (protocol, ES set) in :attr:`placements` (a UE-only protocol: whatever the ES ids)."""
        if protocol in self._ue_only:
            return self._ue_only[protocol]
        key = (protocol, tuple(sorted(int(i) for i in es_ids)))
        if key not in self._index:
            raise ValueError(f"placement ({protocol!r}, {list(es_ids)}) is not offered; the scenario offers "
                             f"{sorted({p.protocol for p in self.placements})} on ES sets of up to "
                             f"{self.max_es_per_request or self.num_es} of {self.num_es} ESs")
        return self._index[key]

    def observe(self, out: np.ndarray, horizon: int | None = None) -> np.ndarray:
        """Every UE's observation row, written into ``out`` (copies, ues, :attr:`obs_width`): per ES
        its uplink and downlink SNR over the whole cell (dB / 30), its queue backlog (s / latency
        scale) and its bandwidth demand in the last epoch (sum of requested shares: above 1 means
        contention); then the request's deadline (s / latency scale) and quality weight, the UE's
        energy this episode per request served (relative to a Full-UE generation) and the
        episode's progress (epochs / ``horizon``, default ``requests_per_episode``); then the features'
        columns (:attr:`obs_extra`): with an eavesdropper its SNR to the UE's send and to each ES's
        over the whole cell (dB / 30), with digital twins the twin's age of information now / period."""
        ch = self.channel
        rows = out.reshape(-1, out.shape[-1])
        _observe(rows, ch.base_db, self.bandwidth_hz if ch.scales_with_bandwidth else 1.0,
                 self.queues.v, self.last_demand, self._deadline_flat, self._weight_flat, self.energy_j.reshape(-1),
                 self.served, self.ues, self.workload.latency_scale_s, self.scales["energy_j"],
                 float(horizon or self.workload.requests_per_episode))
        if self.obs_extra:  # the features' columns (obs_extra): the eavesdropper's SNRs, the twin's age
            col = obs_size(self.num_es)
            if self.eve is not None:
                rows[:, col:col + 1 + self.num_es] = self.eve_snr_table_db().reshape(len(rows), -1) / 30.0
                col += 1 + self.num_es
            if self.twin is not None:
                rows[:, col] = self.age_s.reshape(-1) / float(self.twin.period_s)
        return out

    def idle_timing(self, share: float) -> np.ndarray:
        """Every placement's timing for every UE's current request on idle ESs (no queueing) at
        ``share`` of the cell: (copies, ues, placements, 7 + widest ES set) as :meth:`PlanTable.walk`."""
        c, m, p = self.copies, self.ues, len(self.placements)
        bw = share * self.bandwidth_hz
        snr = self.channel.snr_table_db(bw)  # (copies * ues, num_es, 2)
        r = c * m * p
        plan = np.tile(np.arange(p), c * m)
        ue = np.repeat(np.arange(c * m), p)
        ids = self._ids[plan]
        out = self.plan_table.walk(np.arange(r), plan, np.repeat(self.now_s, m * p), np.zeros((r, self.num_es)),
                                   snr[ue[:, None], ids, 0], snr[ue[:, None], ids, 1], np.full(r, bw))
        return out.reshape(c, m, p, -1)

    def feasible(self, share: float) -> np.ndarray:
        """(copies, ues, placements): can the placement meet the request's deadline (ignoring ES queues)?"""
        return self.idle_timing(share)[..., 0] <= self.deadline_s[..., None]

    # -- one epoch ----------------------------------------------------------------------------
    def step(self, placement: Any, share: Any, cache: Any = None) -> CoreStep:
        """Serve every request: UE k of copy c with ``placement[c, k]`` asking ``share[c, k]`` of the cell;
        model caching: ``cache[c, i]`` the set ES i of copy c holds from now (an index into
        ``self.cache.sets``; None: the scenario's ``caching.rule`` picks it)."""
        if not self._started:
            raise RuntimeError("Core.step() called before reset()")
        return self.step_checked(*self.check_step(placement, share), cache=cache)

    def check_step(self, placement: Any, share: Any) -> tuple[np.ndarray, np.ndarray]:
        """Placements (int64) and shares (float64) as (copies, ues), or a one-line error naming the bad entry."""
        shape, n_pl = (self.copies, self.ues), len(self.placements)
        idx = np.asarray(placement)
        sh = np.asarray(share)
        if idx.shape != shape or sh.shape != shape:
            raise ValueError(f"'placements' and 'shares' must each have shape (copies, ues) = {shape} "
                             f"(got {idx.shape} and {sh.shape})")
        if idx.dtype.kind not in "iu":
            if idx.dtype.kind != "f" or not np.all(np.isfinite(idx)) or np.any(idx % 1 != 0):
                raise ValueError(f"'placements' must be integers in [0, {n_pl - 1}] (got {placement!r})")
        if sh.dtype.kind not in "iuf":
            raise ValueError(f"'shares' must be numbers in (0, 1] (got dtype {sh.dtype})")
        idx = idx.astype(np.int64)
        sh = sh.astype(np.float64)
        bad = (idx < 0) | (idx >= n_pl)
        if bad.any():
            c, k = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"'placements[{c}, {k}]' must be in [0, {n_pl - 1}] (got {idx[c, k]})")
        bad = ~((sh > 0.0) & (sh <= 1.0))  # NaN fails too
        if bad.any():
            c, k = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(f"'shares[{c}, {k}]' must be a share of the cell in (0, 1] (got {sh[c, k]})")
        return idx, sh

    def step_checked(self, idx: np.ndarray, share: np.ndarray, cache: Any = None) -> CoreStep:
        """:meth:`step` on checked (copies, ues) placements (int64) and shares (float64)."""
        c, m = self.copies, self.ues
        if cache is not None:
            if self.cache is None:
                raise ValueError("'cache' needs a scenario with 'caching' set (this one has none)")
            cache = self.cache.check_action(cache)  # before anything changes
        flat = idx.reshape(-1)
        r = c * m
        bw, snr, worst = np.empty(r), np.empty((r, self._ids.shape[1], 2)), np.empty((r, 2))
        demand = np.empty((c, self.num_es))
        ch = self.channel
        if self.live:
            _demand(flat, share.reshape(-1), m, self._uses, demand)
            _allocate(flat, share.reshape(-1), demand, m, self._ids, self._radio, self.bandwidth_hz, ch.base_db,
                      ch.scales_with_bandwidth, bw, snr, worst)
            cols = np.empty((_COLS, c, m))
            flat_cols = cols.reshape(_COLS, -1)
            eve_snr = None if self.eve is None else self.eve.snr_db(bw)
            lat, en, qual, ssim, ulb, dlb, retx, outage, outcomes = self._serve_live(flat, bw, eve_snr)
            missed = (lat > self._deadline_flat) | outage  # a failed request delivered nothing in time
            _rewards(qual, self._weight_flat, lat, (ulb + dlb).astype(np.float64), en, missed, self._consts,
                     flat_cols)
            flat_cols[6], flat_cols[7], flat_cols[8], flat_cols[9] = lat, en, qual, ssim
            flat_cols[10], flat_cols[11] = retx, outage
            self.energy_j = self.energy_j + cols[7]
            res = self._result(idx, cols, missed.reshape(c, m), ulb.reshape(c, m), dlb.reshape(c, m), bw, demand,
                               outcomes)
        else:
            res = self._profiled(idx, flat, share.reshape(-1), demand, bw, snr, worst)
        if self.cache is not None or self.workload.satisfaction_threshold is not None:
            res = self._user_and_cache(res, idx, bw, snr, worst, cache)
        else:
            res.attempts = self._ones
        if self.eve is not None or self.twin is not None:
            res = self._features(res, flat, bw, worst)
        self.last_demand = demand
        self._advance()
        return res

    def _features(self, res: CoreStep, flat: np.ndarray, bw: np.ndarray, worst: np.ndarray) -> CoreStep:
        """The eavesdropper's and the twins' effects on the epoch's results (both views of the world get
        them here, after the user model and the cache): encryption's bits and time, then each request's
        leakage (live: measured by :meth:`MegSystem.serve`; profiled: :class:`~meg_gym.eavesdropper.LeakageModel`
        at the eavesdropper's SNR per hop and the user's worst link per hop), then each twin's age of
        information; their reward terms join the reward with ``reward.weights.leakage`` / ``.aoi``."""
        c, m = self.copies, self.ues
        w = self.scenario.reward.weights
        if self.eve is not None:
            idx = res.placement
            if self.scenario.eavesdropper.encryption:
                res.latency_s = res.latency_s + self._enc_s[idx]
                res.uplink_bits = res.uplink_bits + self._enc_ul[idx] * res.attempts
                res.downlink_bits = res.downlink_bits + self._enc_dl[idx] * res.attempts
                res.deadline_missed = res.deadline_missed | (res.latency_s > self.deadline_s)
            if self.live:
                leak = np.array([o.leakage for o in res.outcomes], dtype=np.float64).reshape(c, m)
            else:
                ul, dl = self.eve.snr_db(bw)
                eve_db = np.stack([ul, dl[np.arange(len(flat))[:, None], self._ids[flat]].max(axis=1)], axis=1)
                leak = self._leak(flat, eve_db, worst).reshape(c, m)
            res.leakage = leak
        if self.twin is not None:
            period = float(self.twin.period_s)
            a0, lat = self.age_s, res.latency_s
            delivered = ~res.outage & (lat <= period) & (res.quality >= self.twin.min_quality)
            # the age's sawtooth over [t, t + T] (Kaul, Yates, Gruteser, "Real-time status: how often should
            # one update?", INFOCOM 2012): A0 + s until the update arrives at L, then s (its own age);
            # its mean is A0 L / T + T / 2, or A0 + T / 2 when nothing arrives in the period
            res.aoi_s = np.where(delivered, a0 * lat / period + period / 2.0, a0 + period / 2.0)
            self.age_s = np.where(delivered, period, a0 + period)  # the age at the next request
        terms, reward = dict(res.terms), res.reward.copy()
        if self.eve is not None:
            if self.scenario.eavesdropper.encryption:  # the latency, overhead and deadline terms of the new costs
                bits = (res.uplink_bits + res.downlink_bits).astype(np.float64)
                base, reward = reward_terms(res.quality, self.quality_weight, res.latency_s, bits, res.energy_j,
                                            res.deadline_missed, self.scales, w)
                terms.update(base)
            terms["leakage"] = -res.leakage
            reward = reward + w.leakage * terms["leakage"]
        if self.twin is not None:
            terms["aoi"] = -res.aoi_s / float(self.twin.period_s)
            reward = reward + w.aoi * terms["aoi"]
        res.terms, res.reward = terms, reward
        return res

    def _profiled(self, idx: np.ndarray, flat: np.ndarray, share: np.ndarray, demand: np.ndarray, bw: np.ndarray,
                  snr: np.ndarray, worst: np.ndarray) -> CoreStep:
        """The profiled epoch as one compiled pass (:func:`_profiled_epoch`): the bandwidth rule, the
        queue walk (each copy's requests join its queues in the service order, each seeing the backlog
        the ones before left), the quality draw at each request's worst links, the reward terms."""
        c, m = self.copies, self.ues
        draw = self._draw
        if draw._missing is not None and draw._missing[flat].any():
            draw(flat, worst, self._z)  # raises the table's error for a protocol it lacks
        q = self.queues
        backlog = q.v.copy()  # a bad SNR raises in the walk: nothing has changed then
        cols = np.empty((_COLS, c, m))
        missed = np.empty((c, m), dtype=np.bool_)
        energy = self.energy_j.copy()
        ch = self.channel
        bad = _profiled_epoch(flat, share, demand, m, self._ids, self._radio, self._uses, self.bandwidth_hz,
                              ch.base_db, ch.link_state, ch.scales_with_bandwidth, bw, snr, worst, self._order,
                              self.now_s, backlog, self._uni, self._combining_db, *self._walk_tables, draw._flat,
                              draw._grid, draw._inner, draw._span, self._z,
                              self._deadline_flat, self._weight_flat, self.uplink_bits, self.downlink_bits,
                              self._consts, cols.reshape(_COLS, -1), missed.reshape(-1), energy.reshape(-1))
        if bad >= 0:
            self.plan_table._raise(bad, bw)
        q.v, self.energy_j = backlog, energy
        return self._result(idx, cols, missed, self.uplink_bits[idx], self.downlink_bits[idx], bw, demand, None)

    def _result(self, idx: np.ndarray, cols: np.ndarray, missed: np.ndarray, ulb: np.ndarray, dlb: np.ndarray,
                bw: np.ndarray, demand: np.ndarray, outcomes: list[Any] | None) -> CoreStep:
        """The epoch's :class:`CoreStep` from its columns (reward, the terms, latency, energy, quality, SSIM)."""
        terms = {"quality": cols[1], "latency": cols[2], "overhead": cols[3], "energy": cols[4], "deadline": cols[5]}
        return CoreStep(idx, cols[0], terms, cols[6], cols[8], cols[9], ulb, dlb, cols[7], missed,
                        bw.reshape(self.copies, self.ues), demand, cols[10].astype(np.int64), cols[11] > 0.5,
                        outcomes)

    def _serve_live(self, flat: np.ndarray, bw: np.ndarray, eve_snr: tuple | None = None) -> tuple:
        """Live mode: every request through :meth:`MegSystem.serve`, each copy's in the service order,
        at its UE's SNRs and against its copy's queues (and the eavesdropper's, ``eve_snr``: its
        :meth:`EveChannel.snr_db <meg_gym.eavesdropper.EveChannel.snr_db>`)."""
        r, m = len(flat), self.ues
        lat, en, qual, ssim = np.zeros(r), np.zeros(r), np.zeros(r), np.zeros(r)
        ulb, dlb, retx = np.zeros(r, dtype=np.int64), np.zeros(r, dtype=np.int64), np.zeros(r)
        outage = np.zeros(r, dtype=bool)
        outcomes: list[Any] = [None] * r
        ch = self.channel
        state = ch.link_state
        views = [self.queues.row_queues(cp) for cp in range(self.copies)]
        for k in self._order.tolist():
            p = self.placements[int(flat[k])]
            table = ch.base_db[k] - (10.0 * math.log10(bw[k]) if ch.scales_with_bandwidth else 0.0)
            snr = {(i, link): float(table[i, j]) for i in range(self.num_es) for j, link in enumerate(("ul", "dl"))}
            cp = k // m
            eve = None
            if eve_snr is not None:
                eve = {(i, link): float(eve_snr[0][k] if link == "ul" else eve_snr[1][k, i])
                       for i in range(self.num_es) for link in ("ul", "dl")}
            out = self.system.serve(self.requests[k], Decision(p.protocol, p.es_ids, float(bw[k])), snr_db=snr,
                                    queues=views[cp], start_s=float(self.now_s[cp]),
                                    link_state={i: tuple(state[k, i].tolist()) for i in range(self.num_es)},
                                    uniforms=self._uni[k], eve_snr_db=eve)
            outcomes[k] = out
            lat[k], en[k], qual[k], ssim[k] = out.latency_s, out.energy_j, out.quality, out.ssim
            ulb[k], dlb[k], retx[k], outage[k] = out.uplink_bits, out.downlink_bits, out.retransmissions, out.outage
        return lat, en, qual, ssim, ulb, dlb, retx, outage, outcomes

    def _user_and_cache(self, res: CoreStep, idx: np.ndarray, bw: np.ndarray, snr: np.ndarray, worst: np.ndarray,
                        cache: np.ndarray | None) -> CoreStep:
        """The epoch's results after model caching (the cache sets changed, each request's hit, wait,
        cloud or fallback: ``meg_gym.caching``) and the user model's retries (:meth:`_retry`); then
        the deadlines and the reward terms of what the requests finally met."""
        c, m = self.copies, self.ues
        lat, q, ssim, energy = res.latency_s.copy(), res.quality.copy(), res.ssim.copy(), res.energy_j.copy()
        retx, outage = res.retransmissions.copy(), res.outage.copy()
        retry_extra, factor = np.zeros((c, m)), np.ones((c, m))
        hit = None
        if self.cache is not None:
            uses = self._uses[idx] > 0.0
            if cache is None:
                cache = self.cache.rule_action(self.scenario.caching.rule, self.models, uses, self._order, self.now_s)
            self.cache.apply(cache, self.now_s, self.models, uses)
            out = self.cache.serve(self.models, uses, self._order, self.now_s)
            lat += out.extra_s
            q *= out.factor
            ssim *= out.factor
            hit, retry_extra, factor = out.hit, out.retry_extra_s, out.factor
        attempts = self._ones
        if self.workload.satisfaction_threshold is not None:
            attempts = self._retry(idx, bw, snr, worst, lat, q, ssim, energy, retx, outage, retry_extra, factor)
        missed = (lat > self.deadline_s) | outage
        ulb, dlb = res.uplink_bits * attempts, res.downlink_bits * attempts
        cols = np.empty((6, c * m))
        _rewards(q.reshape(-1), self._weight_flat, lat.reshape(-1), (ulb + dlb).reshape(-1).astype(np.float64),
                 energy.reshape(-1), missed.reshape(-1), self._consts, cols)
        cols = cols.reshape(6, c, m)
        terms = {k: cols[1 + j] for j, k in enumerate(REWARD_TERMS)}
        return CoreStep(res.placement, cols[0], terms, lat, q, ssim, ulb, dlb, energy, missed, res.bandwidth_hz,
                        res.es_demand, retx, outage, res.outcomes, attempts, hit,
                        None if self.cache is None else self.models.copy())

    def _retry(self, idx: np.ndarray, bw: np.ndarray, snr: np.ndarray, worst: np.ndarray, lat: np.ndarray,
               q: np.ndarray, ssim: np.ndarray, energy: np.ndarray, retx: np.ndarray, outage: np.ndarray,
               retry_extra: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """The user model (``workload.satisfaction_threshold``; profiled mode): a request whose result's
        quality is below the threshold is asked again when that result arrives, with the same
        placement, bandwidth and links and a new quality noise and HARQ draw, up to
        ``workload.max_attempts`` in all. Each attempt is walked against its copy's queues at its
        arrival (their backlog then: the work left from now, less the time gone by), and its hold
        on each ES joins that ES's workload (background arrivals in between are run by the next
        advance); its latency adds to the response time,
        its energy to the request's and the UE's; the last attempt's quality, SSIM and outage
        stand. The arrays (copies, ues) are updated in place; returns the attempts per request."""
        c, m = self.copies, self.ues
        thr, pt, ch = self.workload.satisfaction_threshold, self.plan_table, self.channel
        attempts = np.ones(c * m, dtype=np.int64)
        flat = idx.reshape(-1)
        lat_f, q_f, ssim_f, en_f = lat.reshape(-1), q.reshape(-1), ssim.reshape(-1), energy.reshape(-1)
        retx_f, out_f, extra_f = retx.reshape(-1), outage.reshape(-1), retry_extra.reshape(-1)
        fac_f = factor.reshape(-1)
        ue_energy = self.energy_j.reshape(-1)
        start, order = np.empty(1), np.zeros(1, dtype=np.int64)
        for _ in range(self.workload.max_attempts - 1):
            ks = np.flatnonzero(q_f < thr)
            ks = ks[attempts[ks] < self.workload.max_attempts]
            if not len(ks):
                break
            ks = ks[np.argsort(lat_f[ks], kind="stable")]  # in the order the repeats arrive
            z = self._retry_rng.standard_normal(len(ks))
            uni = self._retry_rng.random((len(ks), pt.max_sends, pt.levels))
            qa, sa = self._draw(flat[ks], np.ascontiguousarray(worst[ks]), z)
            for i, k in enumerate(ks.tolist()):
                cp, p, gone = k // m, int(flat[k]), float(lat_f[k])
                ids = self._ids[p]
                before = np.maximum(self.queues.v[cp] - gone, 0.0)  # the work left when the repeat arrives
                back = before[None].copy()
                start[0] = self.now_s[cp] + gone
                out = pt.walk(order, flat[k:k + 1], start, back, np.ascontiguousarray(snr[k:k + 1, :, 0]),
                              np.ascontiguousarray(snr[k:k + 1, :, 1]), bw[k:k + 1],
                              link_state=ch.link_state[k][ids][None], uniforms=uni[i:i + 1])
                for i_es in {int(ids[j]) for j in np.flatnonzero(~np.isnan(out[0, OUT_COLS:OUT_COLS + len(ids)]))}:
                    # the job's hold on the ES (its turn to its last stage there) joins the workload as the first
                    # attempt's does; as of now, not from the repeat's arrival, so an idle ES in between is not
                    # held for it (nor the work it did in between counted)
                    self.queues.v[cp, i_es] += back[0, i_es] - before[i_es]
                lat_f[k] = gone + out[0, 0] + extra_f[k]
                en_f[k] += out[0, 1]
                ue_energy[k] += out[0, 1]
                retx_f[k] += out[0, 7]
                out_f[k] = failed = out[0, 8] > 0.5
                q_f[k], ssim_f[k] = (0.0, 0.0) if failed else (qa[i] * fac_f[k], sa[i] * fac_f[k])
                attempts[k] += 1
        return attempts.reshape(c, m)

    def _advance(self) -> None:
        gap = self._gap
        self.served += 1
        self.now_s += gap
        self.queues.advance(self.now_s, self._q_rng)
        self.channel.advance(np.repeat(gap, self.ues) if self.copies > 1 else gap.item(), self._ch_rng)
        if self.eve is not None:
            self.eve.advance(np.repeat(gap, self.ues) if self.copies > 1 else gap.item(), self._eve_rng,
                             self._ue_positions())
        self._next_requests()

    def _ue_positions(self) -> np.ndarray | None:
        """umi/uma: every UE's position now, (copies x ues, 2); else None."""
        return self.channel.ue_positions_m if self.kind in ("umi", "uma") else None


_COLS = 12  # _profiled_epoch's columns: reward, the 5 terms, latency, energy, quality, SSIM, retransmissions, outage


@njit(cache=True)
def _observe(out, base_db, bw, backlog, demand, deadline, weight, energy, served, ues, scale, e_ref, horizon):
    """:meth:`Core.observe` compiled, one row per request (UE ``k % ues`` of copy ``k // ues``)."""
    n = base_db.shape[1]
    off = 10.0 * math.log10(bw)
    for k in range(out.shape[0]):
        c = k // ues
        for i in range(n):
            out[k, i] = (base_db[k, i, 0] - off) / 30.0
            out[k, n + i] = (base_db[k, i, 1] - off) / 30.0
            out[k, 2 * n + i] = backlog[c, i] / scale
            out[k, 3 * n + i] = demand[c, i]
        s = served[c]
        out[k, 4 * n] = deadline[k] / scale
        out[k, 4 * n + 1] = weight[k]
        out[k, 4 * n + 2] = energy[k] / (e_ref * (s if s > 1 else 1))
        out[k, 4 * n + 3] = s / horizon


@njit(cache=True)
def _demand(idx, share, ues, uses, demand):
    """Each copy's demand on each ES: the sum of the shares its requests ask of that ES's cell."""
    demand[:] = 0.0
    for k in range(idx.shape[0]):
        c = k // ues
        for i in range(uses.shape[1]):
            demand[c, i] += share[k] * uses[idx[k], i]


@njit(cache=True)
def _profiled_epoch(idx, share, demand, ues, ids, radio, uses, bw_cell, base_db, ch_state, per_hz, bw, snr, worst,
                    order, now, backlog, uni, combining_db, step_ints, plan_ints, step_floats, plan_floats, link,
                    scratch, out, flat,
                    grid, inner, span, z, deadline, weight, ul_bits, dl_bits, consts, cols, missed, energy):
    """:meth:`Core._profiled` compiled: the bandwidth rule (:func:`_demand`, :func:`_allocate`), the
    queue walk (``timing._walk_requests``, each request on its copy's backlog row), the quality draw
    (``calibration._grid_draw``) and :func:`reward_terms` (``consts``: the latency, bits and energy
    scales, then the five weights); each request's energy is added to ``energy``. A request whose
    digital send failed (the walk's outage) delivered nothing: quality and SSIM 0, deadline missed.
    Returns -1, or the walk's bad request (nothing else written then but the work arrays)."""
    m = idx.shape[0]
    _demand(idx, share, ues, uses, demand)
    _allocate(idx, share, demand, ues, ids, radio, bw_cell, base_db, per_hz, bw, snr, worst)
    start = np.empty(m)
    rows = np.empty(m, dtype=np.int64)
    state = np.empty((m, ids.shape[1], 3))  # each request's links' fading and LOS, as its SNRs
    for k in range(m):
        rows[k] = k // ues
        start[k] = now[k // ues]
        for j in range(ids.shape[1]):
            for c in range(3):
                state[k, j, c] = ch_state[k, ids[idx[k], j], c]
    bad = _walk_requests(order, idx, start, backlog, rows, snr[:, :, 0], snr[:, :, 1], bw, state, uni, step_ints,
                         plan_ints, step_floats, plan_floats, link, scratch, out)
    if bad >= 0:
        return bad
    q, ssim = cols[8], cols[9]
    if combining_db != 0.0:  # analog repetitions: the tensors met SNR + 10 log10 r
        worst += combining_db
    _grid_draw(flat, grid, inner, span, idx, worst, z, q, ssim)
    bits = np.empty(m)
    for k in range(m):
        cols[6, k], cols[7, k] = out[k, 0], out[k, 1]
        cols[10, k], cols[11, k] = out[k, 7], out[k, 8]
        missed[k] = out[k, 0] > deadline[k] or out[k, 8] > 0.5
        if out[k, 8] > 0.5:
            q[k] = 0.0
            ssim[k] = 0.0
        bits[k] = ul_bits[idx[k]] + dl_bits[idx[k]]
        energy[k] += out[k, 1]
    _rewards(q, weight, cols[6], bits, cols[7], missed, consts, cols)
    return -1


@njit(cache=True)
def _rewards(quality, weight, latency, bits, energy, missed, consts, cols):
    """:func:`reward_terms`, request by request, into ``cols`` rows 0 (the reward) and 1-5 (the terms, in
    :data:`REWARD_TERMS` order); ``consts``: the latency, bits and energy scales, then the five weights."""
    s_lat, s_bits, s_en = consts[0], consts[1], consts[2]
    w_q, w_lat, w_over, w_en, w_dl = consts[3], consts[4], consts[5], consts[6], consts[7]
    for k in range(quality.shape[0]):
        tq = quality[k] * weight[k]
        tl = -latency[k] / s_lat
        to = -bits[k] / s_bits
        te = -energy[k] / s_en
        td = -1.0 if missed[k] else 0.0
        cols[0, k] = w_q * tq + w_lat * tl + w_over * to + w_en * te + w_dl * td
        cols[1, k], cols[2, k], cols[3, k], cols[4, k], cols[5, k] = tq, tl, to, te, td


@njit(cache=True)
def _allocate(idx, share, demand, ues, ids, radio, bw_cell, base_db, per_hz, bw_out, snr_out, worst_out):
    """:meth:`Core.step_checked`'s bandwidth rule and SNR gather, request by request: request ``k``
    (UE ``k % ues`` of copy ``k // ues``) on placement ``idx[k]`` gets ``share[k] / max(1, largest
    demand on its ESs) * bw_cell`` (the whole cell if it sends nothing); its SNRs to its placement's
    ESs (``ids``, padded by repeating the first) at that bandwidth, and the worst of them per link.

    The rule: on ES ``i`` the demand is ``D_i = sum of s_k`` over the requests using it; if
    ``D_i <= 1`` every request gets what it asked for, otherwise all are scaled down in proportion,
    ``s_k / D_i``; a request on several ESs runs all its links at its smallest allocation (the timing
    model takes one bandwidth per plan)."""
    for k in range(idx.shape[0]):
        p = idx[k]
        c = k // ues
        bw = bw_cell
        if radio[p]:
            most = 1.0
            for j in range(ids.shape[1]):
                d = demand[c, ids[p, j]]
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


def reward_scales(system: MegSystem) -> dict[str, float]:
    """Scales that make the cost terms unit-sized: Full ES's bits, Full UE's energy, the latency scale."""
    sc = system.scenario
    full_es = compile_plan(place("full_es", (0,)), system.costs("full_es", (0,)))
    full_ue = compile_plan(place("full_ue", (0,)), system.costs("full_ue", (0,)))
    summary, _ = full_ue.timing(
        ue_flops_per_s=system.ue_flops_per_s, es_flops_per_s=[1.0], snr_ul_db=[0.0], snr_dl_db=[0.0],
        bandwidth_hz=sc.bandwidth_hz, mode="analog", ue_power_w=system.ue_power_w,
        ue_tx_power_w=system.ue_tx_power_w)
    return {"bits": float(full_es.uplink_bits + full_es.downlink_bits), "energy_j": summary["energy_j"],
            "latency_s": float(sc.workload.latency_scale_s)}


def reward_terms(quality: Any, quality_weight: Any, latency_s: Any, bits: Any, energy_j: Any, deadline_missed: Any,
                 scales: dict[str, float], weights: Any) -> tuple[dict[str, Any], Any]:
    """The reward terms of served requests (:data:`REWARD_TERMS`; floats or arrays) and their weighted sum.

    ``scales`` from :func:`reward_scales`; ``weights`` a scenario's ``reward.weights``. The one
    definition, compiled (:func:`_rewards`), that the world core's epochs also run."""
    *values, missed = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in (
        quality, quality_weight, latency_s, bits, energy_j)), np.asarray(deadline_missed, dtype=bool))
    shape = missed.shape
    cols = np.empty((6, missed.size))
    _rewards(*(np.ascontiguousarray(v).reshape(-1) for v in values), np.ascontiguousarray(missed).reshape(-1),
             reward_consts(scales, weights), cols)
    return {k: cols[1 + j].reshape(shape) for j, k in enumerate(REWARD_TERMS)}, cols[0].reshape(shape)


def reward_consts(scales: dict[str, float], weights: Any) -> np.ndarray:
    """What :func:`_rewards` takes: the latency, bits and energy scales, then the five weights."""
    w = weights
    return np.array([scales["latency_s"], scales["bits"], scales["energy_j"], w.quality, w.latency, w.overhead,
                     w.energy, w.deadline])


def terms_per_request(terms: dict[str, Any]) -> list[dict[str, float]]:
    """The terms :func:`reward_terms` gives on arrays (many requests), as one dict per request."""
    cols = [np.asarray(terms[t], dtype=np.float64).ravel().tolist() for t in REWARD_TERMS]
    # written out (the keys are REWARD_TERMS): a dict display builds twice as fast as dict(zip(...))
    return [{"quality": q, "latency": lat, "overhead": o, "energy": e, "deadline": d} for q, lat, o, e, d in zip(*cols)]


# what a calibration table's quality depends on besides the SNRs and the step count (its axes)
_TABLE_SETTINGS = {"model": "model", "mode": "transmission.mode", "bits_per_value": "transmission.bits_per_value",
                   **{k: f"generation.{k}" for k in ("strength", "guidance_scale", "ue_steps", "sketch_scale",
                                                     "complete_steps", "complete_strength", "tile_overlap",
                                                     "exchange_every")},
                   "selection": "workload.selection"}
# settings a table records only when not at their default, so that tables measured before the setting
# existed stay valid: key -> (scenario field, default)
TABLE_OPTIONAL_SETTINGS = {"exchange": ("generation.exchange", "latent")}


def scenario_field(scenario: Any, field: str) -> Any:
    obj = scenario
    for part in field.split("."):
        obj = getattr(obj, part)
    return obj


def check_table_matches(scenario: Any, table: Any) -> None:
    """Profiled quality comes from a table measured under some settings: a scenario that differs in
    one of them (the transmission mode, the bits per value, the model, a generation setting) would
    get another setting's quality, so it is a one-line error naming the field instead."""
    own_ue = None if scenario.ue_model in (None, scenario.model) else scenario.ue_model
    if table.settings.get("ue_model") != own_ue:
        raise ValueError(f"'ue_model' is {own_ue!r} but the calibration table of model {table.model!r} was measured "
                         f"with the UE running {table.settings.get('ue_model') or table.model!r}: calibrate this "
                         f"setting (meg-gym calibrate --config ...) and name it in 'calibration'")
    optional = {key: field for key, (field, _) in TABLE_OPTIONAL_SETTINGS.items()}
    for key, field in {**_TABLE_SETTINGS, **optional}.items():
        obj = scenario_field(scenario, field)
        if key in TABLE_OPTIONAL_SETTINGS:  # not recorded: measured at the default
            measured = table.settings.get(key, TABLE_OPTIONAL_SETTINGS[key][1])
        elif key not in table.settings:  # a table that does not say what it was measured with cannot be trusted
            raise ValueError(f"the calibration table of model {table.model!r} does not record its '{key}' setting: "
                             f"re-run meg-gym calibrate")
        else:
            measured = table.settings[key]
        if measured != obj:
            raise ValueError(f"'{field}' is {obj!r} but the calibration table of model {table.model!r} was measured "
                             f"with {measured!r}: profiled quality would be that setting's; calibrate this setting "
                             f"(meg-gym calibrate --config ...) and name it in 'calibration', or use {measured!r}")


def _check_leakage_table(scenario: Any, system: MegSystem, table: Any) -> None:
    """A leakage table measured under other settings (model, generation, steps) would give another
    setting's leakage: a one-line error naming the setting, as :func:`check_table_matches`."""
    from meg_gym.eavesdropper import LeakageError, leakage_settings

    want = leakage_settings(system)
    for key, value in want.items():
        if table.settings.get(key) != value:
            raise LeakageError(f"the leakage table of model {table.model!r} was measured with {key} = "
                               f"{table.settings.get(key)!r}, the scenario has {value!r}: run meg-gym calibrate "
                               f"--leakage --config ... and name it in 'eavesdropper.leakage_table'")


def load_table_for(scenario: Any) -> Any:
    """The scenario's calibration table (its ``calibration`` file, or the shipped one of its model)."""
    from meg_gym.quality.calibration import load_table

    return load_table(calibration_path(scenario))


def calibration_path(scenario: Any) -> Path:
    """Where a scenario's calibration table lives: its ``calibration`` file, a bare name's shipped
    ``configs/calibration/<name>.json``, or (none given) the model's shipped table for its transmission mode."""
    from meg_gym.quality.calibration import CALIBRATION_DIR, table_file_name

    name = scenario.calibration
    if not name:
        path = CALIBRATION_DIR / table_file_name(scenario.model, scenario.transmission.mode)
    elif "/" not in name and "\\" not in name and not name.endswith(".json"):
        path = CALIBRATION_DIR / f"{name}.json"  # a bare name: a shipped table (configs/calibration/<name>.json)
    else:
        path = Path(name)
    return path


def _check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi and value > hi):
        what = f"in [{lo}, {hi}]" if hi else f">= {lo}"
        raise ValueError(f"'{name}' must be an integer {what} (got {value!r})")
    return int(value)


def check_scales(core: Core) -> None:
    """The derived quantities the config bounds do not pin down on their own, checked once when a
    core is built: the reward scales, every placement's reward terms for a request on idle ESs at
    the smallest and the whole bandwidth share (awgn/perfect at the scenario's SNR, the lowest of
    ``snr_range_db``; umi/uma at 0 dB, a cell-edge SNR), and the ES queues' background work per
    request. A non-finite result, a term beyond ``config.OBS_LIMIT`` in size, or a step that would
    simulate more than :data:`MAX_BACKGROUND_JOBS` background jobs is a ConfigError naming the
    config fields behind it, with their values."""
    from meg_gym.config import OBS_LIMIT, ConfigError

    sc, system = core.scenario, core.system
    ue = f"'ue.flops_per_s' = {system.ue_flops_per_s:g}, 'ue.power_w' = {system.ue_power_w:g}"
    for key, value in core.scales.items():
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"the reward's {key} scale is {value!r} (must be a finite number > 0): {ue}")
    p = len(core.placements)
    hi_weight = float(sc.workload.quality_weight[1])
    for share in sorted({min(sc.bandwidth_shares), 1.0}):
        bw = share * core.bandwidth_hz
        snr, where = _reference_snr_db(sc, bw)
        ul, dl = snr[core._ids, 0], snr[core._ids, 1]
        out = core.plan_table.walk(np.arange(p), np.arange(p), np.zeros(p), np.zeros((p, core.num_es)), ul, dl,
                                   np.full(p, bw))
        terms, _ = reward_terms(1.0, hi_weight, out[:, 0], (core.uplink_bits + core.downlink_bits).astype(float),
                                out[:, 1], False, core.scales, sc.reward.weights)
        for name, fields in _TERM_FIELDS.items():
            values = terms[name]
            bad = ~(np.isfinite(values) & (np.abs(values) <= OBS_LIMIT))
            if bad.any():
                k = int(np.argmax(bad))
                pl = core.placements[k]
                es = ", ".join(f"'es[{i}].flops_per_s' = {system.es_flops_per_s[i]:g}" for i in pl.es_ids)
                given = {"latency": f"'workload.latency_scale_s' = {sc.workload.latency_scale_s:g}, {ue}, {es}, "
                                    f"'bandwidth_hz' x share = {bw:g} Hz, {where}",
                         "energy": f"{ue}, 'ue.tx_power_dbm' = {sc.ue.tx_power_dbm:g}, "
                                   f"'bandwidth_hz' x share = {bw:g} Hz, {where}",
                         "overhead": f"'transmission.bits_per_value' = {sc.transmission.bits_per_value}",
                         "quality": f"'workload.quality_weight' = {list(sc.workload.quality_weight)}"}[name]
                raise ConfigError(f"the {name} term of {pl.protocol} on ESs {list(pl.es_ids)} would be "
                                  f"{float(values[k]):.3g} (must be finite and within +-{OBS_LIMIT:g}; {fields}): "
                                  f"{given}")
    job = system.background_job_flops()
    for i, es in enumerate(sc.es):
        jobs = es.load * system.es_flops_per_s[i] / job / sc.workload.arrival_rate_hz if es.load > 0 else 0.0
        if jobs > MAX_BACKGROUND_JOBS:
            raise ConfigError(f"ES {i}'s queue would simulate {jobs:.3g} background jobs per request (at most "
                              f"{MAX_BACKGROUND_JOBS:g}): raise 'workload.arrival_rate_hz' "
                              f"({sc.workload.arrival_rate_hz:g}) or lower 'es[{i}].load' ({es.load:g}) or "
                              f"'es[{i}].flops_per_s' ({system.es_flops_per_s[i]:g})")


def _reference_snr_db(sc: Any, bandwidth_hz: float) -> tuple[np.ndarray, str]:
    """(num_es, 2) uplink and downlink SNRs check_scales serves at, and where they come from:
    awgn/perfect the scenario's SNR (the low end of ``snr_range_db``); umi/uma the link budget at the
    UE's start position in NLOS without shadowing or fading (its median cell-edge case)."""
    ch = sc.channel
    if ch.kind in ("awgn", "perfect"):
        snr = ch.snr_range_db[0] if ch.snr_range_db else ch.snr_db
        return np.full((sc.num_es, 2), float(snr)), f"'channel.snr_db' = {snr:g} dB"
    from meg_gym.channel.models import make_channel

    params = {**channel_params(sc), "fading": "none", "shadowing": False, "los": "nlos", "mobility": "static"}
    model = make_channel(ch.kind, **params)
    model.reset(np.random.default_rng(0), sc.num_es)
    snr = np.array([[model.snr_db(i, link, bandwidth_hz) for link in ("ul", "dl")] for i in range(sc.num_es)])
    return snr, (f"NLOS at 'ue.position_m' {list(sc.ue.position_m)} with 'ue.tx_power_dbm' = {sc.ue.tx_power_dbm:g} "
                 f"(uplink SNRs {np.round(snr[:, 0], 1).tolist()} dB)")


# what sets each reward term's size (check_scales' messages)
_TERM_FIELDS = {"quality": "set by the quality weights", "latency": "latency_s / latency scale",
                "energy": "energy_j / Full UE's energy", "overhead": "bits / Full ES's bits"}
