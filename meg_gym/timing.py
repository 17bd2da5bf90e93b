"""Latency and UE energy of a placed protocol from its step costs: the one timing model.

A :class:`CompiledPlan` is a placed protocol reduced to numbers: per step, the node that
runs it, the steps it waits for, its FLOPs or payload. :meth:`CompiledPlan.timing` walks the
steps once with node clocks: a stage starts when its node is free and its inputs are there,
and runs for FLOPs / effective FLOP/s. An ES serves requests in the order they reach it
(FIFO per request, like the other users' jobs, which are whole generations): a request's
work on an ES waits for the work the ES holds when the request arrives (its simulated
queue, :class:`meg_gym.compute.EsQueue`, read at ``start_s``), then its stages run as one
job, which occupies the ES from its turn to its last stage and is added to the queue. So
the backlog an agent observes is the wait its request will meet. A send starts when its
tensor is ready and the UE's radio is free (the UE transmits one thing at a time and
receives one thing at a time: downlinks from several ESs are coordinated, not
simultaneous) and lasts its airtime. Live mode feeds it
the costs it measured; profiled mode the same costs from a run on the meta model.

The walk (:meth:`CompiledPlan._walk`) is the definition, records traces and takes measured
airtimes; the profiled hot paths run it compiled to machine code (:class:`PlanTable`, numba:
the plans as padded arrays and one loop over many requests, each with its own plan), with
the same operations in the same order (tested equal bit for bit): the world core
(:mod:`meg_gym.core`) walks an epoch's requests of every copy in their service order, each
against its copy's ES backlogs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit

from meg_gym.channel.digital import DigitalLink, _transfer
from meg_gym.protocols import UE, PlacedProtocol, Run, Send, _stage_names, joint_groups

__all__ = ["CompiledPlan", "PlanTable", "StepCost", "StepTiming", "compile_plan", "exchange_s", "join_queues"]


@dataclass(frozen=True)
class StepCost:
    """What one step costs, independent of when it runs."""

    kind: str  # 'run' | 'send'
    name: str  # stage name or tensor name
    node: str  # node that runs it, or the sender
    dst: str = ""  # receivers of a send ("es1,es2" for a broadcast)
    flops: int = 0
    payload_bits: int = 0
    values: int = 0  # tensor elements sent (0 for text)
    lossless: bool = False  # text: sent digitally, error-free
    backhaul_bits: int = 0  # a joint stage's run: the bits this ES sent to the others over the backhaul
    exchanges: int = 0  # ... in this many exchanges, each a synchronisation of the group


@dataclass(frozen=True)
class StepTiming:
    """When one step ran."""

    kind: str
    name: str
    node: str
    dst: str
    start_s: float
    end_s: float
    flops: int = 0
    wait_s: float = 0.0
    payload_bits: int = 0
    airtime_s: float = 0.0
    snr_db: float = float("nan")
    link: str = ""


@dataclass(frozen=True)
class CompiledPlan:
    """A placed protocol with its costs, as flat tuples for a fast timing pass."""

    protocol: str
    es_ids: tuple[int, ...]
    costs: tuple[StepCost, ...]
    is_send: tuple[bool, ...]
    node: tuple[int, ...]  # 0 = UE, 1 + j = es_ids[j]; the sender for a send
    dst: tuple[tuple[int, ...], ...]  # receivers of a send
    deps: tuple[tuple[int, ...], ...]  # steps whose results this step needs
    flops: tuple[float, ...]
    values: tuple[int, ...]
    bits: tuple[int, ...]
    lossless: tuple[bool, ...]
    uplink_bits: int
    downlink_bits: int
    # per step: the members of the synchronised joint group it starts (tiles that exchange borders),
    # -1 for a later member (walked with the group), 0 otherwise
    joint: tuple[int, ...] = ()
    backhaul_bits: int = 0  # over the ES-to-ES backhaul, every ES's exchanges together
    # the plan compiled for the timing fast path, per (device rates, mode, powers): see table()
    _tables: dict = field(default_factory=dict, compare=False, repr=False)

    def table(self, ue_flops_per_s: float, es_flops_per_s: Sequence[float], mode: str, digital: Any,
              ue_power_w: float, ue_tx_power_w: float, ue_rx_power_w: float = 0.0,
              analog_repetitions: int = 1, backhaul: tuple[float, float] | None = None) -> PlanTable:
        """This plan alone as a :class:`PlanTable` for these device rates, link and powers (made once)."""
        key = (ue_flops_per_s, tuple(es_flops_per_s), mode, _link_pair(digital), ue_power_w, ue_tx_power_w,
               ue_rx_power_w, analog_repetitions, _backhaul(backhaul))
        t = self._tables.get(key)
        if t is None:
            t = self._tables[key] = PlanTable([self], [key[1]], *key[:1], *key[2:])
        return t

    def timing(
        self,
        *,
        ue_flops_per_s: float,
        es_flops_per_s: Sequence[float],
        snr_ul_db: Sequence[float],
        snr_dl_db: Sequence[float],
        bandwidth_hz: float,
        mode: str,
        digital: Any = None,
        ue_power_w: float,
        ue_tx_power_w: float,
        ue_rx_power_w: float = 0.0,
        analog_repetitions: int = 1,
        backhaul: tuple[float, float] | None = None,
        queues: Sequence[Any] | None = None,
        start_s: float = 0.0,
        link_state: Any = None,
        uniforms: Any = None,
        trace: bool = False,
    ) -> tuple[dict[str, float], list[StepTiming]]:
        """Latency breakdown, bits, UE energy and the digital link's outcome (``retransmissions``,
        ``outage``); ``es_*`` and ``snr_*`` are indexed like ``es_ids``.

        ``analog_repetitions``: copies of each analog tensor (combined at the receiver: r times
        the airtime, SNR + 10 log10 r). ``backhaul``: the ES-to-ES link's (rate bit/s, latency s)
        that tiles exchanging borders wait for (None: ``meg_gym.config.BackhaulConfig``'s). ``digital``: the
        :class:`~meg_gym.channel.digital.DigitalLink` (one for both directions, or an
        (uplink, downlink) pair; None: its defaults) that digital sends (every send in
        digital mode, text in both) run on. ``link_state``: per ES of the plan [uplink fading
        dB, downlink fading dB, LOS 0/1] (None: no fading known); ``uniforms``: (sends, HARQ
        levels) uniforms (None: the median outcome). ``queues``
        (:class:`~meg_gym.compute.EsQueue` per ES, or None for idle ESs) are read at
        ``start_s`` and given the request's job.
        """
        backhaul = _backhaul(backhaul)
        table = self.table(ue_flops_per_s, es_flops_per_s, mode, digital, ue_power_w, ue_tx_power_w, ue_rx_power_w,
                           analog_repetitions, backhaul)
        n_es = len(self.es_ids)
        state = np.zeros((n_es, 3)) if link_state is None else np.asarray(link_state, dtype=np.float64)
        uni = table.median_uniforms(1)[0] if uniforms is None else np.asarray(uniforms, dtype=np.float64)
        if not trace:
            lat, energy, ue_c, es_c, queue, up, down, retx, failed, bh = table.serve(
                0, queues, start_s, snr_ul_db, snr_dl_db, bandwidth_hz, state, uni)
            return {"latency_s": lat, "ue_compute_s": ue_c, "es_compute_s": es_c, "queue_s": queue,
                    "uplink_s": up, "downlink_s": down, "uplink_bits": self.uplink_bits,
                    "downlink_bits": self.downlink_bits, "energy_j": energy, "retransmissions": retx,
                    "outage": failed, "backhaul_s": bh, "backhaul_bits": self.backhaul_bits}, []
        before = None if queues is None else [q.backlog_s(start_s) for q in queues]
        turn = [start_s] + ([start_s] * n_es if before is None else [start_s + b for b in before])
        consts = table._link
        sends = iter(range(uni.shape[0]))

        def airtime(i: int, j: int, snr: float, link: int) -> tuple[float, float, float]:
            if mode == "analog" and not self.lossless[i]:  # r numel / (2B)
                return ((self.values[i] * analog_repetitions) / (2.0 * bandwidth_hz) if self.values[i] > 0
                        else 0.0), 0.0, 0.0
            if self.bits[i] <= 0:
                return 0.0, 0.0, 0.0
            return _transfer(float(self.bits[i]), bandwidth_hz, snr, state[j, link], state[j, 2] > 0.5,
                             consts[link], uni[next(sends)])

        records: list[StepTiming] | None = [] if trace else None
        summary, busy = self._walk(turn, start_s, ue_flops_per_s, es_flops_per_s, snr_ul_db, snr_dl_db, airtime,
                                   ue_power_w, ue_tx_power_w, ue_rx_power_w, records, backhaul)
        if queues is not None:  # the ES was ours from its turn to our last stage on it
            join_queues(queues, range(len(queues)), start_s, before,
                        [b if c is None else c - start_s for b, c in zip(before, busy[1:])])
        return summary, records if records is not None else []

    def _walk(self, turn: list, start_s: Any, ue_flops_per_s: float, es_flops_per_s: Sequence[Any],
              snr_ul_db: Sequence[Any], snr_dl_db: Sequence[Any], airtime: Any, ue_power_w: float,
              ue_tx_power_w: float, ue_rx_power_w: float, records: list | None,
              backhaul: tuple[float, float] = (math.inf, 0.0)) -> tuple[dict[str, Any], list]:
        """The timing walk, step by step: the definition :class:`PlanTable` compiles, and the
        path that records a trace. A digital send that fails ends the request there: the UE
        gives up, nothing after it runs (the ESs keep the work they already did).

        A joint group (tiles that exchange borders, :func:`meg_gym.ldm.stages._denoise_tiles`) runs
        synchronised: it starts when its last ES is free and has its inputs, and holds every ES of
        the group for the slowest ES's compute plus the exchanges' backhaul time (:func:`exchange_s`),
        since each exchange waits for every tile (synchronous patch parallelism)."""
        mx = _max
        n = len(self.costs)
        end: list[Any] = [start_s] * n
        clock = list(turn)
        first = [True] * len(clock)
        tx_free = rx_free = start_s
        ue_compute = es_compute = queue = up = down = retx = failed = backhaul_s = 0.0
        joint = self.joint or (0,) * n
        for i in range(n):
            if joint[i] < 0:
                continue  # a later member of a joint group: walked with the group's first step
            if joint[i] > 0:
                members = range(i, i + joint[i])
                g = longest = None
                waits = []
                for q in members:
                    ready = start_s
                    for d in self.deps[q]:
                        ready = mx(ready, end[d])
                    node = self.node[q]
                    service = self.flops[q] / es_flops_per_s[node - 1]
                    es_compute = es_compute + service
                    wait = 0.0
                    if first[node]:
                        first[node] = False
                        wait = mx(turn[node] - ready, 0.0)
                        queue = queue + wait
                    waits.append(wait)
                    st = mx(clock[node], ready)
                    g = st if g is None else mx(g, st)
                    longest = service if longest is None else mx(longest, service)
                ex = exchange_s([self.costs[q] for q in members], backhaul)
                backhaul_s = backhaul_s + ex
                stop = g + (longest + ex)
                for q, wait in zip(members, waits):
                    end[q] = clock[self.node[q]] = stop
                    if records is not None:
                        c = self.costs[q]
                        records.append(StepTiming("run", c.name, c.node, "", g - wait, stop, c.flops, wait,
                                                  c.backhaul_bits, ex, float("nan"), "backhaul"))
                continue
            ready = start_s
            for d in self.deps[i]:
                ready = mx(ready, end[d])
            node = self.node[i]
            if not self.is_send[i]:
                start = mx(clock[node], ready)
                wait = 0.0
                if node == 0:
                    service = self.flops[i] / ue_flops_per_s
                    ue_compute = ue_compute + service
                else:
                    service = self.flops[i] / es_flops_per_s[node - 1]
                    es_compute = es_compute + service
                    if first[node]:  # the wait for the work ahead, beyond the stage's own readiness
                        first[node] = False
                        wait = mx(turn[node] - ready, 0.0)
                        queue = queue + wait
                end[i] = clock[node] = start + service
                if records is not None:
                    c = self.costs[i]
                    records.append(StepTiming("run", c.name, c.node, "", start - wait, end[i], c.flops, wait))
            else:
                if node == 0:  # uplink; a broadcast runs at the weakest receiver's SNR (and its fading)
                    dst = self.dst[i]
                    j = dst[0] - 1
                    snr = snr_ul_db[j]
                    for d in dst[1:]:
                        if snr_ul_db[d - 1] < snr:
                            j, snr = d - 1, snr_ul_db[d - 1]
                    start = mx(tx_free, ready)
                else:
                    j = node - 1
                    snr = snr_dl_db[j]
                    start = mx(rx_free, ready)
                at, again, lost = airtime(i, j, snr, 0 if node == 0 else 1)
                retx = retx + again
                end[i] = start + at
                if node == 0:
                    tx_free = end[i]
                    up = up + at
                else:
                    rx_free = end[i]
                    down = down + at
                if records is not None:
                    c = self.costs[i]
                    records.append(StepTiming("send", c.name, c.node, c.dst, start, end[i], 0, 0.0, c.payload_bits,
                                              at, snr, "ul" if node == 0 else "dl"))
                if lost > 0.0:
                    failed = 1.0
                    n = i + 1
                    break
        last = start_s
        for e in end[:n]:
            last = mx(last, e)
        summary = {
            "latency_s": last - start_s,
            "ue_compute_s": ue_compute,
            "es_compute_s": es_compute,
            "queue_s": queue,
            "uplink_s": up,
            "downlink_s": down,
            "uplink_bits": self.uplink_bits,
            "downlink_bits": self.downlink_bits,
            "energy_j": ue_compute * ue_power_w + up * ue_tx_power_w + down * ue_rx_power_w,
            "retransmissions": retx,
            "outage": failed,
            "backhaul_s": backhaul_s,
            "backhaul_bits": self.backhaul_bits,
        }
        return summary, [None if f else c for f, c in zip(first, clock)]


class PlanTable:
    """Plans with their device rates and powers, for the timing walk compiled to machine code
    (numba): :meth:`CompiledPlan._walk` for many requests in one call, each with its own plan.

    The plans (with their ESs' rates, given per plan like ``es_ids``) become padded arrays
    that one compiled loop (``_walk_requests``) walks request by request, with the same
    operations in the same order as the walk, so the same floats (``tests/test_timing_batch.py``).
    The world core runs its timing here (:meth:`walk`: an epoch's requests of every copy in
    their service order, each against its copy's backlogs); :meth:`serve` walks one request
    against :class:`~meg_gym.compute.EsQueue` s."""

    def __init__(self, plans: Sequence[CompiledPlan], es_flops_per_s: Sequence[Sequence[float]],
                 ue_flops_per_s: float, mode: str, digital: Any, ue_power_w: float,
                 ue_tx_power_w: float, ue_rx_power_w: float = 0.0, analog_repetitions: int = 1,
                 backhaul: tuple[float, float] | None = None) -> None:
        from meg_gym.channel.transmission import MODES

        if mode not in MODES:
            raise ValueError(f"'mode' must be one of {list(MODES)} (got {mode!r})")
        p, s = len(plans), max(len(pl.costs) for pl in plans)
        w = max(len(pl.es_ids) for pl in plans)
        dw = max([len(d) for pl in plans for d in pl.deps] + [len(d) for pl in plans for d in pl.dst] + [1])
        self.plans = list(plans)
        self.width = w
        self.digital = _link_pair(digital)
        self.analog_repetitions = int(analog_repetitions)  # copies of every analog tensor sent and combined
        self.backhaul = _backhaul(backhaul)  # the ES-to-ES link (rate bit/s, latency s) joint groups wait for
        self._link = np.stack([d.consts for d in self.digital])  # (uplink, downlink) x DigitalLink.consts
        self.levels = max(d.levels for d in self.digital)
        self.max_sends = max(1, max(sum(pl.is_send) for pl in plans))
        n_steps = np.zeros(p, dtype=np.int64)
        kind = np.zeros((p, s), dtype=np.int64)  # 0 run, 1 send, 2 a joint group's first run, 3 its later runs
        node = np.zeros((p, s), dtype=np.int64)
        service = np.zeros((p, s))
        air = np.zeros((p, s), dtype=np.int64)  # 0 no airtime, 1 analog numel / (2B), 2 digital bits / (B se)
        amount = np.zeros((p, s))  # values (analog) or bits (digital)
        links = np.zeros((p, s, dw + 1), dtype=np.int64)  # [count, receivers...] of a send
        deps = np.zeros((p, s, dw + 1), dtype=np.int64)  # [count, steps...]
        es_id = np.zeros((p, w), dtype=np.int64)
        first_run = np.full((p, w + 1), -1, dtype=np.int64)  # the step where each ES's queue wait is counted
        for k, (pl, rates) in enumerate(zip(plans, es_flops_per_s)):
            n_steps[k] = len(pl.costs)
            es_id[k, :len(pl.es_ids)] = pl.es_ids
            joint = pl.joint or (0,) * len(pl.costs)
            for i in range(len(pl.costs)):
                nd = pl.node[i]
                node[k, i] = nd
                deps[k, i, 0] = len(pl.deps[i])
                deps[k, i, 1:1 + len(pl.deps[i])] = pl.deps[i]
                if joint[i] > 0:  # the group's members and its exchanges' backhaul time
                    kind[k, i], links[k, i, 0] = 2, joint[i]
                    amount[k, i] = exchange_s(pl.costs[i:i + joint[i]], self.backhaul)
                elif joint[i] < 0:
                    kind[k, i] = 3
                if not pl.is_send[i]:
                    if nd == 0:
                        service[k, i] = pl.flops[i] / ue_flops_per_s
                    else:
                        service[k, i] = pl.flops[i] / rates[nd - 1]
                        if first_run[k, nd] < 0:
                            first_run[k, nd] = i
                    continue
                kind[k, i] = 1
                links[k, i, 0] = len(pl.dst[i])
                links[k, i, 1:1 + len(pl.dst[i])] = pl.dst[i]
                if mode == "analog" and not pl.lossless[i]:  # r numel / (2B): r copies of numel values
                    air[k, i], amount[k, i] = (1, pl.values[i] * self.analog_repetitions) if pl.values[i] > 0 \
                        else (0, 0.0)
                elif pl.bits[i] > 0:  # digital: the link model's transfer of bits
                    air[k, i], amount[k, i] = 2, pl.bits[i]
                    if amount[k, i] != pl.bits[i]:
                        raise ValueError(f"payload of {pl.bits[i]} bits is beyond float precision")
        self.es_ids = es_id  # per plan its ES ids, padded with 0 to the widest set (the walk ignores the padding)
        # packed into few arrays (each argument costs the compiled call's dispatch time):
        # per step [kind, node, air, links..., deps...] and [service, amount]; per plan
        # [steps, ES ids..., first runs...] and [powers: compute, transmit, receive]; the link
        self._tables = (np.concatenate([kind[..., None], node[..., None], air[..., None], links, deps], axis=2),
                        np.concatenate([n_steps[:, None], es_id, first_run], axis=1),
                        np.stack([service, amount], axis=2),
                        np.tile([ue_power_w, ue_tx_power_w, ue_rx_power_w], (p, 1)), self._link)
        self._scratch = np.zeros(w + 1 + s + 1)  # the walk's node clocks, step ends, and an error's SNR
        # one request's arrays (serve): order, plan, start, bandwidth, SNRs up and down, backlog, link state,
        # uniforms, out
        self._one = (np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), np.zeros(1), np.zeros(1),
                     np.zeros((1, w)), np.zeros((1, w)), np.zeros((1, self.num_es)), np.zeros((1, w, 3)),
                     np.zeros((1, self.max_sends, self.levels)), np.zeros((1, OUT_COLS + w)))

    @property
    def num_es(self) -> int:
        """How many ES ids the backlogs passed to :meth:`walk` must cover (the largest plus 1)."""
        return int(self.es_ids.max()) + 1

    def median_uniforms(self, requests: int) -> np.ndarray:
        """HARQ uniforms of the median link outcome, (requests, sends, levels) of 0.5."""
        return np.full((requests, self.max_sends, self.levels), 0.5)

    def walk(self, order: Any, plan: np.ndarray, start_s: np.ndarray, backlog: np.ndarray, snr_ul_db: np.ndarray,
             snr_dl_db: np.ndarray, bandwidth_hz: np.ndarray, rows: np.ndarray | None = None,
             link_state: np.ndarray | None = None, uniforms: np.ndarray | None = None) -> np.ndarray:
        """Serve requests ``order[0], order[1], ...`` (indices into the per-request arrays):
        request ``r`` arrives at ``start_s[r]`` and runs plan ``plan[r]`` with its SNRs
        ``snr_*_db[r, j]`` to the plan's ``j``-th ES and bandwidth ``bandwidth_hz[r]``.

        ``backlog`` (float64, a column per ES id) holds the work in seconds each ES has when
        a request arrives: ES ``i`` takes request ``r`` after ``backlog[rows[r], i]`` (requests
        served one after another on the same row share it; ``rows`` None: each request its own
        row, ``backlog[r, i]``). Like the walk, the request's job then holds the ES from its turn to its
        last stage there, and that, from its arrival, is written back to the backlog, so that
        the next request on a shared row waits for it; :func:`join_queues` gives it to the queues.
        ``link_state`` (requests, widest ES set, 3): per ES [uplink fading dB, downlink fading
        dB, LOS] (None: no fading known); ``uniforms`` (requests, :attr:`max_sends`,
        :attr:`levels`): the digital sends' HARQ draws (None: the median outcome).

        Returns (requests, :data:`OUT_COLS` + widest ES set): latency, energy, UE compute, ES
        compute, queue, uplink, downlink seconds, retransmitted blocks, outage (1: a digital
        send failed and the request with it), the backhaul's seconds (tiles exchanging borders),
        then per ES of the plan when our job leaves it (NaN if the request ran nothing there).
        Raises ``ValueError`` for a bandwidth that is not a finite number > 0, as the walk does."""
        m = len(plan)
        out = np.empty((m, OUT_COLS + self.width))
        if rows is None:
            rows = np.arange(m)
        if link_state is None:
            link_state = np.zeros((m, self.width, 3))
        if uniforms is None:
            uniforms = self.median_uniforms(m)
        bad = _walk_requests(order, plan, start_s, backlog, rows, snr_ul_db, snr_dl_db, bandwidth_hz, link_state,
                             uniforms, *self._tables, self._scratch, out)
        if bad >= 0:
            self._raise(bad, bandwidth_hz)
        return out

    @staticmethod
    def _raise(bad: int, bandwidth_hz: np.ndarray) -> None:
        """The walk's error for the compiled walk's bad request (see ``_walk_requests``)."""
        raise ValueError(f"'bandwidth_hz' must be a finite number > 0 (got {float(bandwidth_hz[bad])!r})")

    def serve(self, k: int, queues: Sequence[Any] | None, start_s: float, snr_ul_db: Sequence[float],
              snr_dl_db: Sequence[float], bandwidth_hz: float, link_state: Any = None, uniforms: Any = None) -> tuple:
        """One request on plan ``k`` (SNRs, ``link_state`` rows indexed like its ES ids) against
        ``queues`` (one :class:`~meg_gym.compute.EsQueue` per ES of the plan; None: idle ESs),
        read at ``start_s`` and given the request's job (:func:`join_queues`): (latency, energy,
        UE compute, ES compute, queue, uplink, downlink seconds, retransmissions, outage, backhaul seconds)."""
        order, plan, start, bw, ul, dl, backlog, state, uni, out = self._one  # filled in place
        plan[0], start[0], bw[0] = k, start_s, bandwidth_hz
        ids = self.plans[k].es_ids
        before = None if queues is None else [q.backlog_s(start_s) for q in queues]
        state[:] = 0.0
        if link_state is not None:
            state[0, :len(ids)] = link_state
        uni[:] = 0.5
        if uniforms is not None:
            u = np.asarray(uniforms)[:self.max_sends, :self.levels]
            uni[0, :u.shape[0], :u.shape[1]] = u
        for j, i in enumerate(ids):
            ul[0, j], dl[0, j] = snr_ul_db[j], snr_dl_db[j]
            backlog[0, i] = 0.0 if before is None else before[j]
        bad = _walk_requests(order, plan, start, backlog, order, ul, dl, bw, state, uni, *self._tables,
                             self._scratch, out)
        if bad >= 0:
            self._raise(bad, bw)
        if before is not None:
            join_queues(queues, ids, start_s, before, backlog[0].tolist())
        return tuple(out[0, :OUT_COLS].tolist())


OUT_COLS = 10  # PlanTable.walk's columns before the per-ES ones


def _backhaul(backhaul: tuple[float, float] | None) -> tuple[float, float]:
    """(rate bit/s, latency s) of the ES-to-ES backhaul; None: the scenario default's
    (:class:`meg_gym.config.BackhaulConfig`, which cites its figures)."""
    if backhaul is None:
        from meg_gym.config import BackhaulConfig

        b = BackhaulConfig()
        return (float(b.rate_bps), float(b.latency_s))
    rate, latency = (float(v) for v in backhaul)
    if not (0.0 < rate < math.inf and 0.0 <= latency < math.inf):
        raise ValueError(f"'backhaul' must be (rate_bps > 0, latency_s >= 0), both finite (got {backhaul!r})")
    return (rate, latency)


def exchange_s(members: Sequence[StepCost], backhaul: tuple[float, float]) -> float:
    """Seconds a joint group's border exchanges take: each exchange waits for the backhaul's latency
    and for the ES with the most to send, which sends its messages one after another at the rate
    (one backhaul port per ES); every exchange moves the same columns, so all of them together take
    ``exchanges x latency + max bits / rate``."""
    rate, latency = backhaul
    exchanges = max(c.exchanges for c in members)
    if exchanges == 0:
        return 0.0
    return exchanges * latency + max(c.backhaul_bits for c in members) / rate


def _link_pair(digital: Any) -> tuple[DigitalLink, DigitalLink]:
    """(uplink, downlink) DigitalLinks from one (both directions), a pair, or None (the defaults)."""
    if digital is None:
        digital = DigitalLink()
    if isinstance(digital, DigitalLink):
        return (digital, digital)
    up, down = digital
    if not (isinstance(up, DigitalLink) and isinstance(down, DigitalLink)):
        raise ValueError(f"'digital' must be a DigitalLink or an (uplink, downlink) pair of them (got {digital!r})")
    return (up, down)


@njit(cache=True)
def _walk_requests(order, plan, start_all, backlog, rows, snr_ul, snr_dl, bw_all, state, uni, step_ints, plan_ints,
                   step_floats, plan_floats, link, scratch, out):
    """:meth:`PlanTable.walk` (the same operations in the same order as ``CompiledPlan._walk``):
    -1, or the first request with a bad bandwidth."""
    width = (plan_ints.shape[1] - 2) // 2
    dw1 = (step_ints.shape[2] - 3) // 2
    kind, node, air = step_ints[:, :, 0], step_ints[:, :, 1], step_ints[:, :, 2]
    links, deps = step_ints[:, :, 3:3 + dw1], step_ints[:, :, 3 + dw1:]
    n_steps, es_id, first_run = plan_ints[:, 0], plan_ints[:, 1:1 + width], plan_ints[:, 1 + width:]
    service, amount = step_floats[:, :, 0], step_floats[:, :, 1]
    clock, end = scratch[:width + 1], scratch[width + 1:-1]
    for r in order:
        p = plan[r]
        bw = bw_all[r]
        if not 0.0 < bw < math.inf:
            return r
        start = start_all[r]
        row = rows[r]
        clock[0] = start
        for j in range(width):
            clock[j + 1] = start + backlog[row, es_id[p, j]]
        tx = rx = start
        ue_c = es_c = up = down = queue = retx = failed = bh = 0.0
        done = n_steps[p]
        sent = 0
        for i in range(n_steps[p]):
            ready = _ready(start, deps, end, p, i)
            nd = node[p, i]
            if kind[p, i] == 3:
                continue  # a later member of a joint group: walked with the group's first step
            if kind[p, i] == 2:  # a joint group, synchronised (CompiledPlan._walk)
                g = longest = 0.0
                for q in range(i, i + links[p, i, 0]):
                    ready = _ready(start, deps, end, p, q)
                    nq = node[p, q]
                    es_c = es_c + service[p, q]
                    if first_run[p, nq] == q:
                        wait = clock[nq] - ready
                        queue = queue + (wait if wait > 0.0 else 0.0)
                    c = clock[nq]
                    st = c if c > ready else ready
                    if q == i:
                        g, longest = st, service[p, q]
                    else:
                        g = g if g > st else st
                        longest = longest if longest > service[p, q] else service[p, q]
                bh = bh + amount[p, i]
                stop = g + (longest + amount[p, i])
                for q in range(i, i + links[p, i, 0]):
                    end[q] = clock[node[p, q]] = stop
                continue
            if kind[p, i] == 0:
                if nd == 0:
                    ue_c = ue_c + service[p, i]
                else:
                    es_c = es_c + service[p, i]
                if first_run[p, nd] == i:  # the wait for the work ahead, beyond the stage's own readiness
                    wait = clock[nd] - ready
                    queue = queue + (wait if wait > 0.0 else 0.0)
                c = clock[nd]
                end[i] = clock[nd] = (c if c > ready else ready) + service[p, i]
                continue
            if nd == 0:  # uplink; a broadcast runs at the weakest receiver's SNR (and its fading)
                jj = links[p, i, 1] - 1
                s = snr_ul[r, jj]
                for d in range(1, links[p, i, 0]):
                    x = snr_ul[r, links[p, i, 1 + d] - 1]
                    if x < s:
                        jj, s = links[p, i, 1 + d] - 1, x
                li = 0
            else:
                jj = nd - 1
                s = snr_dl[r, jj]
                li = 1
            a = 0.0
            lost = 0.0
            if air[p, i] == 1:  # analog: r numel / (2B) (amount: r numel)
                a = amount[p, i] / (2.0 * bw)
            elif air[p, i] == 2:  # digital: the link model's transfer (meg_gym.channel.digital)
                a, again, lost = _transfer(amount[p, i], bw, s, state[r, jj, li], state[r, jj, 2] > 0.5, link[li],
                                           uni[r, sent])
                sent += 1
                retx = retx + again
            if nd == 0:
                end[i] = tx = (tx if tx > ready else ready) + a
                up = up + a
            else:
                end[i] = rx = (rx if rx > ready else ready) + a
                down = down + a
            if lost > 0.0:  # the request fails here: nothing after this send runs
                failed = 1.0
                done = i + 1
                break
        last = start
        for i in range(done):
            if not last > end[i]:
                last = end[i]
        for j in range(width):  # the ES was ours from its turn to our last stage on it
            f = first_run[p, j + 1]
            if f >= 0 and f < done:
                out[r, OUT_COLS_JIT + j] = clock[j + 1]
                backlog[row, es_id[p, j]] = clock[j + 1] - start
            else:
                out[r, OUT_COLS_JIT + j] = math.nan
        out[r, 0] = last - start
        out[r, 1] = ue_c * plan_floats[p, 0] + up * plan_floats[p, 1] + down * plan_floats[p, 2]
        out[r, 2] = ue_c
        out[r, 3] = es_c
        out[r, 4] = queue
        out[r, 5] = up
        out[r, 6] = down
        out[r, 7] = retx
        out[r, 8] = failed
        out[r, 9] = bh
    return -1


OUT_COLS_JIT = OUT_COLS  # a global the compiled walk freezes at compile time


@njit(cache=True)
def _ready(start, deps, end, p, i):
    """When step ``i`` of plan ``p`` has its inputs: the latest end of the steps it needs (from ``start``)."""
    ready = start
    for d in range(deps[p, i, 0]):
        e = end[deps[p, i, 1 + d]]
        if not ready > e:
            ready = e
    return ready


def join_queues(queues: Sequence[Any], es_ids: Sequence[int], start_s: float, before: Sequence[float],
                backlog: Any) -> None:
    """Give each ES queue (:class:`~meg_gym.compute.EsQueue`, the one of ES ``es_ids[j]`` is
    ``queues[j]``) the work our requests took on it at ``start_s``: its backlog after them
    (``backlog[es_ids[j]]``, as :meth:`PlanTable.walk` leaves it) beyond its backlog before (``before[j]``),
    as one job. Jobs arriving together at a FIFO queue delay everyone behind them as one job
    of their total work, and their own waits came from the backlogs."""
    for q, i, b0 in zip(queues, es_ids, before):
        b1 = backlog[i]
        if b1 != b0:
            q.submit(start_s, (b1 - b0) * q.flops_per_s)


def _max(a: float, b: float) -> float:
    return a if a > b else b


def _index(node: str, es_ids: tuple[int, ...]) -> int:
    return 0 if node == UE else 1 + es_ids.index(int(node[2:]))


def compile_plan(plan: PlacedProtocol, costs: Sequence[StepCost]) -> CompiledPlan:
    """Reduce a placed protocol and its step costs to a :class:`CompiledPlan`."""
    if len(costs) != len(plan.steps):
        raise ValueError(f"'costs' must have one entry per step ({len(plan.steps)}; got {len(costs)})")
    producer: dict[tuple[str, str], int] = {}
    nodes, dsts, deps = [], [], []
    for i, step in enumerate(plan.steps):
        if isinstance(step, Run):
            nodes.append(_index(step.on, plan.es_ids))
            dsts.append(())
            deps.append(tuple(sorted({producer[(step.on, t)] for t in _stage_names(step, "in")
                                      if (step.on, t) in producer})))
            for t in _stage_names(step, "out"):
                producer[(step.on, t)] = i
        else:
            assert isinstance(step, Send)
            nodes.append(_index(step.src, plan.es_ids))
            receivers = step.dst.split(",")
            dsts.append(tuple(_index(d, plan.es_ids) for d in receivers))
            deps.append((producer[(step.src, step.tensor)],) if (step.src, step.tensor) in producer else ())
            for d in receivers:
                producer[(d, step.as_ or step.tensor)] = i
    is_send = tuple(c.kind == "send" for c in costs)
    bits = tuple(c.payload_bits for c in costs)
    joint = [0] * len(costs)
    for first, members in joint_groups(plan.steps).items():
        if any(costs[q].exchanges > 0 for q in members):  # synchronised only when the tiles exchange borders
            joint[first] = len(members)
            for q in members[1:]:
                joint[q] = -1
    return CompiledPlan(
        protocol=plan.protocol, es_ids=plan.es_ids, costs=tuple(costs), is_send=is_send, node=tuple(nodes),
        dst=tuple(dsts), deps=tuple(deps), flops=tuple(float(c.flops) for c in costs),
        values=tuple(c.values for c in costs), bits=bits, lossless=tuple(c.lossless for c in costs),
        uplink_bits=sum(b for b, s, n in zip(bits, is_send, nodes) if s and n == 0),
        downlink_bits=sum(b for b, s, n in zip(bits, is_send, nodes) if s and n != 0),
        joint=tuple(joint), backhaul_bits=sum(c.backhaul_bits for c in costs),
    )
