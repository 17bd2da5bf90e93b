"""The MEG world as a stream of requests: what the environments step through.

A :class:`World` wraps a :class:`~meg_gym.system.MegSystem` (model, channel, ES queues) and
adds the request stream (Poisson arrivals; prompt and input from the scene grammar; a
deadline and a quality weight per request) and the reward terms. Between requests the
world moves: the UE walks, fading changes, other users load the ESs (their queues are
simulated up to each arrival).

``step(decision)`` serves the current request and moves on to the next:

* live mode runs the real split pipeline (:meth:`MegSystem.serve`);
* profiled mode draws quality from the calibration table at the links' SNRs and takes
  latency, bits and energy from the same compiled plan and FLOP counts as live mode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from meg_gym.protocols import PROTOCOLS, place
from meg_gym.system import Decision, MegSystem, Request
from meg_gym.timing import CompiledPlan, PlanTable, compile_plan

__all__ = ["REWARD_TERMS", "RequestInfo", "StepResult", "World", "reward_scales", "reward_terms",
           "terms_per_request"]

REWARD_TERMS = ("quality", "latency", "overhead", "energy", "deadline")


@dataclass(slots=True)
class RequestInfo:
    """One request of the stream (the image and prompt are drawn only in live mode)."""

    index: int
    arrival_s: float
    deadline_s: float
    quality_weight: float
    seed: int
    request: Request | None = None


@dataclass(slots=True)
class StepResult:
    """What serving one request gave: reward terms and the measured numbers behind them."""

    terms: dict[str, float]
    reward: float
    latency_s: float
    quality: float
    ssim: float
    uplink_bits: int
    downlink_bits: int
    energy_j: float
    deadline_missed: bool
    decision: Decision
    outcome: Any = None  # the live Outcome (images, trace), None in profiled mode


class World:
    """Requests arriving at one UE served by the scenario's ESs, in live or profiled mode."""

    def __init__(self, scenario: Any = None, *, system: MegSystem | None = None, table: Any = None) -> None:
        from meg_gym.config import load_scenario

        sc = scenario if hasattr(scenario, "model_dump") else load_scenario(scenario)
        self.scenario = sc
        self.live = sc.backend == "live"
        self.system = system if system is not None else MegSystem(sc, judge="auto" if self.live else None)
        self.table = table if table is not None or self.live else _load_table(sc)
        self.workload = sc.workload
        self.decisions = self._decisions()
        self.compiled: dict[tuple[str, tuple[int, ...]], CompiledPlan] = {
            (d.protocol, d.es_ids): compile_plan(self.system.plan(d.protocol, d.es_ids),
                                                 self.system.costs(d.protocol, d.es_ids))
            for d in self.decisions
        }
        self._table = self._make_table()
        self._refs = reward_scales(self.system)
        self._draws = _Draws(np.random.default_rng(0))  # the request stream's randomness
        self.request: RequestInfo | None = None
        self.served = 0

    def __deepcopy__(self, memo: dict) -> World:
        """A copy with its own world state and request stream; tables and plans are shared."""
        import copy

        new = copy.copy(self)
        memo[id(self)] = new
        new.system = copy.deepcopy(self.system, memo)
        new._draws = self._draws.copy(copy.deepcopy(self._draws.rng, memo))
        return new

    # -- set-up ---------------------------------------------------------------------------
    def _make_table(self) -> PlanTable:
        """Every decision's compiled plan for these devices, for the compiled timing walk."""
        sys_, t = self.system, self.scenario.transmission
        self._plan_index = {key: k for k, key in enumerate(self.compiled)}
        rates = [[sys_.es_flops_per_s[i] for i in key[1]] for key in self.compiled]
        return PlanTable(list(self.compiled.values()), rates, sys_.ue_flops_per_s, t.mode, t.efficiency,
                         sys_.ue_power_w, sys_.ue_tx_power_w)

    def _decisions(self) -> list[Decision]:
        """Every (protocol, ES set) the scenario offers, in a fixed order."""
        sc = self.scenario
        out = []
        for name in sc.protocols:
            for es_ids in es_sets(name, sc.num_es):
                out.append(Decision(name, es_ids))
        return out

    # -- episode ----------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> None:
        """New episode: world state and request stream from ``seed``."""
        ss = np.random.SeedSequence(seed)
        sys_ss, req_ss = ss.spawn(2)
        self.system.reset(int(sys_ss.generate_state(1)[0]))
        self._draws = _Draws(np.random.default_rng(req_ss))
        self.served = 0
        self.request = self._next_request(0.0)

    def _next_request(self, arrival_s: float) -> RequestInfo:
        w = self.workload
        u_deadline, u_weight, seed, self._gap, self._z = self._draws.next()
        lo, hi = w.deadline_s
        deadline = lo + (hi - lo) * u_deadline
        lo, hi = w.quality_weight
        weight = lo + (hi - lo) * u_weight
        req = None
        if self.live:
            from meg_gym.workload import sample_request

            req = sample_request(np.random.default_rng(seed), self.system.comps.image_size, deadline_s=deadline)
        return RequestInfo(self.served, arrival_s, deadline, weight, seed, req)

    @property
    def done(self) -> bool:
        return self.served >= self.workload.requests_per_episode

    def link_snrs(self, bandwidth_hz: float) -> tuple[list[float], list[float]]:
        """Uplink and downlink SNR (dB) of every ES at this bandwidth, now."""
        return self.system.channel.snr_lists_db(bandwidth_hz)

    def feasible(self, bandwidth_share: float) -> np.ndarray:
        """For each decision: can it meet the current deadline (ignoring ES queues)?"""
        bw = bandwidth_share * self.scenario.bandwidth_hz
        snr_ul, snr_dl = self.link_snrs(bw)
        t = self._table  # every decision at once, on idle ESs
        n = len(self.decisions)
        every = np.arange(n)
        lat = t.walk(every, every, np.full(n, self.system.now_s), np.zeros((n, t.num_es)),
                     np.asarray(snr_ul)[t.es_ids], np.asarray(snr_dl)[t.es_ids], np.full(n, bw), shared=False)[:, 0]
        return lat <= self.request.deadline_s

    def _timing(self, decision: Decision, bandwidth_hz: float, snr_ul_db: list[float], snr_dl_db: list[float],
                queues: bool) -> tuple:
        """The compiled plan's timing (latency, energy, ...; see :meth:`PlanTable.serve`) for a
        decision, SNRs indexed like its ES ids; with ``queues`` the request waits in and joins
        the ES queues."""
        sys_ = self.system
        ids = decision.es_ids
        return self._table.serve(self._plan_index[(decision.protocol, ids)], [sys_.queues[i] for i in ids]
                                 if queues else None, sys_.now_s, snr_ul_db, snr_dl_db, bandwidth_hz)

    def step(self, decision: Decision, bandwidth_share: float) -> StepResult:
        """Serve the current request with ``decision`` on ``bandwidth_share`` of the cell, then move on."""
        if self.request is None:
            raise RuntimeError("World.step() called before reset()")
        sys_ = self.system
        sc = self.scenario
        bw = bandwidth_share * sc.bandwidth_hz
        req = self.request
        if self.live:
            out = sys_.serve(req.request, Decision(decision.protocol, decision.es_ids, bw))
            latency, quality, ssim = out.latency_s, out.quality, out.ssim
            ul_bits, dl_bits, energy = out.uplink_bits, out.downlink_bits, out.energy_j
        else:
            out = None
            ids = decision.es_ids
            all_ul, all_dl = sys_.channel.snr_lists_db(bw)
            snr_ul = [all_ul[i] for i in ids]
            snr_dl = [all_dl[i] for i in ids]
            latency, energy = self._timing(decision, bw, snr_ul, snr_dl, queues=True)[:2]
            plan = self.compiled[(decision.protocol, ids)]
            ul_bits, dl_bits = plan.uplink_bits, plan.downlink_bits
            quality, ssim = self.table.draw(decision.protocol, min(snr_ul), min(snr_dl), self._z,
                                            sys_.settings.steps)
        missed = latency > req.deadline_s
        terms, reward = reward_terms(quality, req.quality_weight, latency, ul_bits + dl_bits, energy, missed,
                                     self._refs, sc.reward.weights)
        # move on: the next request arrives after an exponential gap; the world moves with it
        self.served += 1
        sys_.advance(self._gap / self.workload.arrival_rate_hz)
        self.request = self._next_request(sys_.now_s)
        return StepResult(terms, reward, latency, quality, ssim, ul_bits, dl_bits, energy, missed, decision, out)


def reward_scales(system: MegSystem) -> dict[str, float]:
    """Scales that make the cost terms unit-sized: Full ES's bits, Full UE's energy, the latency scale."""
    sc = system.scenario
    full_es = compile_plan(place("full_es", (0,)), system.costs("full_es", (0,)))
    full_ue = compile_plan(place("full_ue", (0,)), system.costs("full_ue", (0,)))
    summary, _ = full_ue.timing(
        ue_flops_per_s=system.ue_flops_per_s, es_flops_per_s=[1.0], snr_ul_db=[0.0], snr_dl_db=[0.0],
        bandwidth_hz=sc.bandwidth_hz, mode="analog", efficiency=1.0, ue_power_w=system.ue_power_w,
        ue_tx_power_w=system.ue_tx_power_w)
    return {"bits": float(full_es.uplink_bits + full_es.downlink_bits), "energy_j": summary["energy_j"],
            "latency_s": float(sc.workload.latency_scale_s)}


def reward_terms(quality: float, quality_weight: float, latency_s: float, bits: float, energy_j: float,
                 deadline_missed: bool, scales: dict[str, float], weights: Any) -> tuple[dict[str, float], float]:
    """The reward terms of one served request (:data:`REWARD_TERMS`) and their weighted sum.

    ``scales`` from :func:`reward_scales`; ``weights`` a scenario's ``reward.weights``. Shared by
    :class:`World` and the multi-UE world (:mod:`meg_gym.multi`).
    """
    terms = {
        "quality": quality * quality_weight,
        "latency": -latency_s / scales["latency_s"],
        "overhead": -bits / scales["bits"],
        "energy": -energy_j / scales["energy_j"],
        "deadline": 0.0 - deadline_missed,  # -1.0 or 0.0 (works on numpy arrays too: batched worlds)
    }
    w = weights
    reward = (w.quality * terms["quality"] + w.latency * terms["latency"] + w.overhead * terms["overhead"]
              + w.energy * terms["energy"] + w.deadline * terms["deadline"])
    return terms, reward


def terms_per_request(terms: dict[str, Any]) -> list[dict[str, float]]:
    """The terms :func:`reward_terms` gives on arrays (many requests), as one dict per request."""
    cols = [np.asarray(terms[t], dtype=np.float64).tolist() for t in REWARD_TERMS]
    # written out (the keys are REWARD_TERMS): a dict display builds twice as fast as dict(zip(...))
    return [{"quality": q, "latency": lat, "overhead": o, "energy": e, "deadline": d} for q, lat, o, e, d in zip(*cols)]


class _Draws:
    """The request stream's random numbers, drawn from its generator in blocks of rows
    (deadline and weight uniforms, the request seed, a unit-mean exponential gap to the next
    arrival, a standard normal for the quality draw): the same stream for a seed at a
    fraction of the generator calls. Blocks are never mutated, so copies share them."""

    __slots__ = ("rng", "rows", "i")
    BLOCK = 256

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.rows: list[tuple[float, float, int, float, float]] = []
        self.i = 0

    def next(self) -> tuple[float, float, int, float, float]:
        if self.i == len(self.rows):
            rng, n = self.rng, self.BLOCK
            u = rng.random((2, n)).tolist()
            self.rows = list(zip(u[0], u[1], rng.integers(2**31 - 1, size=n).tolist(),
                                 rng.standard_exponential(n).tolist(), rng.standard_normal(n).tolist()))
            self.i = 0
        row = self.rows[self.i]
        self.i += 1
        return row

    def copy(self, rng: np.random.Generator) -> _Draws:
        new = _Draws(rng)
        new.rows, new.i = self.rows, self.i
        return new


def es_sets(protocol: str, num_es: int) -> list[tuple[int, ...]]:
    """The ES sets a protocol can use among ``num_es`` ESs: single ESs, or every set of >= 2."""
    from itertools import combinations

    if not PROTOCOLS[protocol].multi_es:
        return [(i,) for i in range(num_es)]
    return [c for k in range(2, num_es + 1) for c in combinations(range(num_es), k)]


def _load_table(scenario: Any) -> Any:
    from meg_gym.quality.calibration import CALIBRATION_DIR, load_table

    path = scenario.calibration if scenario.calibration else CALIBRATION_DIR / f"{scenario.model}.json"
    return load_table(path)
