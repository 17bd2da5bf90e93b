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

The walk (:meth:`CompiledPlan._walk`) is the definition and records traces; the hot paths
run it as code generated once per plan and device set (:meth:`CompiledPlan.kernel`), over
floats for the single-UE and multi-UE worlds and over numpy arrays for the batched one,
with the same operations in the same order (tested equal bit for bit).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from meg_gym.channel import airtime_s
from meg_gym.protocols import UE, PlacedProtocol, Run, Send, _stage_names

__all__ = ["CompiledPlan", "KernelHolder", "StepCost", "StepTiming", "compile_plan", "join_queues", "run_kernel"]


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
    # the walk generated as straight-line code, per (device rates, mode, powers): see kernel()
    _kernels: dict = field(default_factory=dict, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_kernels"] = {}  # generated functions do not pickle: made again on first use
        return state

    def kernel(self, ue_flops_per_s: float, es_flops_per_s: Sequence[float], mode: str, efficiency: float,
               ue_power_w: float, ue_tx_power_w: float, *, array: bool = False) -> Any:
        """The timing walk as one generated Python function for these device rates and powers:
        ``kernel(start_s, backlog, snr_ul_db, snr_dl_db, bandwidth_hz)`` -> ``(latency_s, energy_j,
        ue_compute_s, es_compute_s, queue_s, uplink_s, downlink_s)``. ``backlog`` (None: idle ESs)
        maps an ES id (the scenario's index, as in ``es_ids``) to the work in seconds the ES holds
        at ``start_s``: ES ``i`` takes the request after ``backlog[i]``, and the kernel sets
        ``backlog[i]`` to what the ES then holds, our job included (from its turn to our last
        stage there), so that requests served one after another at ``start_s`` each see the ones
        before; :func:`join_queues` then gives the queues that work. The same operations in the
        same order as :meth:`_walk`, so the same floats (``tests/test_timing_batch.py``), without
        the walk's loops, lookups and calls: the profiled envs' hot path.

        ``array=True``: the same walk over numpy arrays (one entry per request, batched envs):
        ``kernel(start_s, turn_s, snr_ul_db, snr_dl_db, bandwidth_hz)`` with ``turn_s[j]`` when ES
        ``es_ids[j]`` can take each request, -> ``(latency_s, energy_j, ue_compute_s, es_compute_s,
        queue_s, uplink_s, downlink_s, busy)``, ``busy[j]`` when our job leaves ES j (None if the
        plan runs nothing there); see :meth:`timing_batch`."""
        key = (ue_flops_per_s, tuple(es_flops_per_s), mode, efficiency, ue_power_w, ue_tx_power_w, array)
        k = self._kernels.get(key)
        if k is None:
            k = self._kernels[key] = _generate_kernel(self, *key)
        return k

    def timing(
        self,
        *,
        ue_flops_per_s: float,
        es_flops_per_s: Sequence[float],
        snr_ul_db: Sequence[float],
        snr_dl_db: Sequence[float],
        bandwidth_hz: float,
        mode: str,
        efficiency: float,
        ue_power_w: float,
        ue_tx_power_w: float,
        queues: Sequence[Any] | None = None,
        start_s: float = 0.0,
        airtimes: Sequence[float | None] | None = None,
        trace: bool = False,
    ) -> tuple[dict[str, float], list[StepTiming]]:
        """Latency breakdown, bits and UE energy; ``es_*`` and ``snr_*`` are indexed like ``es_ids``.

        ``queues`` (:class:`~meg_gym.compute.EsQueue` per ES, or None for idle ESs) are read
        at ``start_s`` and given the request's job. ``airtimes`` overrides the computed
        airtime of sends (live mode passes what the transmission really took,
        retransmissions included).
        """
        if not trace and airtimes is None:
            kernel = self.kernel(ue_flops_per_s, es_flops_per_s, mode, efficiency, ue_power_w, ue_tx_power_w)
            lat, energy, ue_c, es_c, queue, up, down = run_kernel(kernel, self.es_ids, queues, start_s, snr_ul_db,
                                                                  snr_dl_db, bandwidth_hz)
            return {"latency_s": lat, "ue_compute_s": ue_c, "es_compute_s": es_c, "queue_s": queue,
                    "uplink_s": up, "downlink_s": down, "uplink_bits": self.uplink_bits,
                    "downlink_bits": self.downlink_bits, "energy_j": energy}, []
        before = None if queues is None else [q.backlog_s(start_s) for q in queues]
        turn = [start_s] + ([start_s] * len(self.es_ids) if before is None else [start_s + b for b in before])

        def airtime(i: int, snr: float) -> float:
            at = airtimes[i] if airtimes is not None else None
            if at is None:
                at = airtime_s(values=self.values[i], payload_bits=self.bits[i], snr_db=snr, bandwidth_hz=bandwidth_hz,
                               mode="digital" if self.lossless[i] else mode, efficiency=efficiency)
            return at

        records: list[StepTiming] | None = [] if trace else None
        summary, busy = self._walk(turn, start_s, ue_flops_per_s, es_flops_per_s, snr_ul_db, snr_dl_db, airtime,
                                   ue_power_w, ue_tx_power_w, records)
        if queues is not None:  # the ES was ours from its turn to our last stage on it
            join_queues(queues, range(len(queues)), start_s, before,
                        [b if c is None else c - start_s for b, c in zip(before, busy[1:])])
        return summary, records if records is not None else []

    def timing_batch(
        self,
        *,
        ue_flops_per_s: float,
        es_flops_per_s: Sequence[Any],
        snr_ul_db: Sequence[np.ndarray],
        snr_dl_db: Sequence[np.ndarray],
        bandwidth_hz: np.ndarray,
        mode: str,
        efficiency: float,
        ue_power_w: float,
        ue_tx_power_w: float,
        turn_s: Sequence[np.ndarray],
        start_s: np.ndarray,
    ) -> tuple[dict[str, np.ndarray], list[np.ndarray | None]]:
        """:meth:`timing` for a batch of requests (numpy arrays, one entry per request), the
        same walk: ``turn_s[j]`` is when ES ``es_ids[j]`` can take the request (its arrival
        plus the backlog there). Returns the summary arrays and, per ES, when our job left it
        (None if the plan runs nothing there): its occupation is that minus its turn."""
        kernel = self.kernel(ue_flops_per_s, es_flops_per_s, mode, efficiency, ue_power_w, ue_tx_power_w, array=True)
        lat, energy, ue_c, es_c, queue, up, down, busy = kernel(start_s, turn_s, snr_ul_db, snr_dl_db, bandwidth_hz)
        return {"latency_s": lat, "ue_compute_s": ue_c, "es_compute_s": es_c, "queue_s": queue, "uplink_s": up,
                "downlink_s": down, "uplink_bits": self.uplink_bits, "downlink_bits": self.downlink_bits,
                "energy_j": energy}, list(busy)

    def _walk(self, turn: list, start_s: Any, ue_flops_per_s: float, es_flops_per_s: Sequence[Any],
              snr_ul_db: Sequence[Any], snr_dl_db: Sequence[Any], airtime: Any, ue_power_w: float,
              ue_tx_power_w: float, records: list | None) -> tuple[dict[str, Any], list]:
        """The timing walk, step by step: the definition the generated kernels write out
        (:func:`_generate_kernel`), and the path that records a trace."""
        mx, mn = _max, _min
        n = len(self.costs)
        end: list[Any] = [start_s] * n
        clock = list(turn)
        first = [True] * len(clock)
        tx_free = rx_free = start_s
        ue_compute = es_compute = queue = up = down = 0.0
        for i in range(n):
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
                if node == 0:  # uplink; a broadcast runs at the weakest receiver's SNR
                    dst = self.dst[i]
                    snr = snr_ul_db[dst[0] - 1]
                    for d in dst[1:]:
                        snr = mn(snr, snr_ul_db[d - 1])
                    start = mx(tx_free, ready)
                else:
                    snr = snr_dl_db[node - 1]
                    start = mx(rx_free, ready)
                at = airtime(i, snr)
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
        last = start_s
        for e in end:
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
            "energy_j": ue_compute * ue_power_w + up * ue_tx_power_w,
        }
        return summary, [None if f else c for f, c in zip(first, clock)]


class KernelHolder:
    """A world that keeps generated timing kernels (:meth:`CompiledPlan.kernel`) in
    ``self._kernels``: generated code does not pickle, so pickling drops them and loading
    makes them again with the world's ``_make_kernels()``."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_kernels"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._kernels = self._make_kernels()


def _generate_kernel(plan: CompiledPlan, ue_flops_per_s: float, es_flops_per_s: tuple[float, ...], mode: str,
                     efficiency: float, ue_power_w: float, ue_tx_power_w: float, array: bool) -> Any:
    """Write :meth:`CompiledPlan._walk` out for one plan and these constants (see :meth:`CompiledPlan.kernel`):
    over floats with ES backlogs, or over numpy arrays of requests with their ES turns given."""
    from meg_gym.channel.transmission import MODES

    if mode not in MODES:
        raise ValueError(f"'mode' must be one of {list(MODES)} (got {mode!r})")
    m = len(plan.es_ids)
    if array:  # max/min of two as numpy calls; the batch's bandwidths come from validated scenarios
        lines = ["def kernel(start, turn, snr_ul, snr_dl, bw):",
                 "    c0 = tx = rx = start",
                 *(f"    t{j} = c{j} = turn[{j - 1}]" for j in range(1, m + 1)),
                 "    up = down = queue = 0.0"]
    else:
        lines = ["def kernel(start, backlog, snr_ul, snr_dl, bw):",
                 "    if not 0.0 < bw < _inf:",
                 "        raise ValueError(f\"'bandwidth_hz' must be a finite number > 0 (got {bw!r})\")",
                 "    c0 = tx = rx = start",
                 "    if backlog is None:",
                 *(f"        t{j} = c{j} = start" for j in range(1, m + 1)),
                 "    else:",
                 *(f"        t{j} = c{j} = start + backlog[{plan.es_ids[j - 1]}]" for j in range(1, m + 1)),
                 "    up = down = queue = 0.0"]

    def mx(a: str, b: str) -> str:  # _max(a, b): a if a > b else b
        return f"_mx({a}, {b})" if array else f"({a} if {a} > {b} else {b})"

    emit = lines.append
    ue_compute = es_compute = 0.0
    first = [True] * (m + 1)
    for i in range(len(plan.costs)):
        emit("    r = start")
        for d in plan.deps[i]:
            emit(f"    r = _mx(r, e{d})" if array else f"    if not r > e{d}: r = e{d}")
        node = plan.node[i]
        if not plan.is_send[i]:
            if node == 0:
                service = plan.flops[i] / ue_flops_per_s
                ue_compute = ue_compute + service
            else:
                service = plan.flops[i] / es_flops_per_s[node - 1]
                es_compute = es_compute + service
                if first[node]:
                    first[node] = False
                    emit(f"    w = t{node} - r")
                    emit(f"    queue = queue + {mx('w', '0.0')}")
            emit(f"    e{i} = c{node} = {mx(f'c{node}', 'r')} + {service!r}")
            continue
        if node == 0:
            dst = plan.dst[i]
            emit(f"    s = snr_ul[{dst[0] - 1}]")
            for d in dst[1:]:
                emit(f"    x = snr_ul[{d - 1}]")
                emit("    s = _mn(s, x)" if array else "    s = s if s < x else x")
            free = "tx"
        else:
            emit(f"    s = snr_dl[{node - 1}]")
            free = "rx"
        if array and mode == "analog" and not plan.lossless[i] and plan.values[i] > 0:  # airtime_array's formula
            emit(f"    a = {plan.values[i]} / (2.0 * bw)")
        elif array:  # airtime_array
            emit(f"    a = _air(values={plan.values[i]}, payload_bits={plan.bits[i]}, snr_db=s, bandwidth_hz=bw, "
                 f"mode={'digital' if plan.lossless[i] else mode!r}, efficiency={efficiency!r})")
        elif mode == "analog" and not plan.lossless[i]:  # airtime_s: r numel / (2B), r = 1
            emit(f"    a = {plan.values[i]} / (2.0 * bw)" if plan.values[i] > 0 else "    a = 0.0")
        elif plan.bits[i] > 0:  # airtime_s, digital: 1 attempt of bits / (B se(SNR))
            emit(f"    se = _se(s, {efficiency!r})")
            emit("    if not se > 0.0:")
            emit("        raise ValueError(f\"'snr_db' is too low for any rate (got {s!r} dB)\")")
            emit(f"    a = 1 * {plan.bits[i]} / (bw * se)")
        else:
            emit("    a = 0.0")
        emit(f"    e{i} = {free} = {mx(free, 'r')} + a")
        emit(f"    {'up = up' if node == 0 else 'down = down'} + a")
    emit("    last = start")
    for i in range(len(plan.costs)):
        emit(f"    last = _mx(last, e{i})" if array else f"    if not last > e{i}: last = e{i}")
    used = [j for j in range(1, m + 1) if not first[j]]
    if array:
        busy = "".join(f"c{j}, " if j in used else "None, " for j in range(1, m + 1))
        emit(f"    return (last - start, {ue_compute!r} * {ue_power_w!r} + up * {ue_tx_power_w!r}, {ue_compute!r}, "
             f"{es_compute!r}, queue, up, down, ({busy}))")
    elif used:  # the ES was ours from its turn to our last stage on it: its backlog now ends there
        emit("    if backlog is not None:")
        for j in used:
            emit(f"        backlog[{plan.es_ids[j - 1]}] = c{j} - start")
    if not array:
        emit(f"    return (last - start, {ue_compute!r} * {ue_power_w!r} + up * {ue_tx_power_w!r}, {ue_compute!r}, "
             f"{es_compute!r}, queue, up, down)")
    from meg_gym.channel.transmission import airtime_array, spectral_efficiency

    scope = {"_se": spectral_efficiency, "_inf": float("inf"), "_mx": np.maximum, "_mn": np.minimum,
             "_air": airtime_array}
    exec(compile("\n".join(lines), f"<timing kernel {plan.protocol} {plan.es_ids}>", "exec"), scope)  # noqa: S102
    return scope["kernel"]


def run_kernel(kernel: Any, es_ids: Sequence[int], queues: Sequence[Any] | None, start_s: float,
               snr_ul_db: Sequence[float], snr_dl_db: Sequence[float], bandwidth_hz: float) -> tuple:
    """One request through a scalar kernel (:meth:`CompiledPlan.kernel`) of the plan on ``es_ids``:
    against ``queues`` (one :class:`~meg_gym.compute.EsQueue` per ES of ``es_ids``; None: idle
    ESs), read at ``start_s`` and given the request's job (:func:`join_queues`)."""
    if queues is None:
        return kernel(start_s, None, snr_ul_db, snr_dl_db, bandwidth_hz)
    before = [q.backlog_s(start_s) for q in queues]
    backlog = dict(zip(es_ids, before))
    out = kernel(start_s, backlog, snr_ul_db, snr_dl_db, bandwidth_hz)
    join_queues(queues, es_ids, start_s, before, backlog)
    return out


def join_queues(queues: Sequence[Any], es_ids: Sequence[int], start_s: float, before: Sequence[float],
                backlog: Any) -> None:
    """Give each ES queue (:class:`~meg_gym.compute.EsQueue`, the one of ES ``es_ids[j]`` is
    ``queues[j]``) the work our requests took on it at ``start_s``: its backlog after them
    (``backlog[es_ids[j]]``, as the kernels leave it) beyond its backlog before (``before[j]``),
    as one job. Jobs arriving together at a FIFO queue delay everyone behind them as one job
    of their total work, and their own waits came from the backlogs."""
    for q, i, b0 in zip(queues, es_ids, before):
        b1 = backlog[i]
        if b1 != b0:
            q.submit(start_s, (b1 - b0) * q.flops_per_s)


def _max(a: float, b: float) -> float:
    return a if a > b else b


def _min(a: float, b: float) -> float:
    return a if a < b else b


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
    return CompiledPlan(
        protocol=plan.protocol, es_ids=plan.es_ids, costs=tuple(costs), is_send=is_send, node=tuple(nodes),
        dst=tuple(dsts), deps=tuple(deps), flops=tuple(float(c.flops) for c in costs),
        values=tuple(c.values for c in costs), bits=bits, lossless=tuple(c.lossless for c in costs),
        uplink_bits=sum(b for b, s, n in zip(bits, is_send, nodes) if s and n == 0),
        downlink_bits=sum(b for b, s, n in zip(bits, is_send, nodes) if s and n != 0),
    )
