"""Latency and UE energy of a placed protocol from its step costs: the one timing model.

A :class:`CompiledPlan` is a placed protocol reduced to numbers: per step, the node that
runs it, the steps it waits for, its FLOPs or payload. :meth:`CompiledPlan.timing` walks the
steps once with node clocks: a stage starts when its node is free and its inputs are there,
waits in the ES's queue (simulated, :class:`meg_gym.compute.EsQueue`), and runs for
FLOPs / effective FLOP/s; a send starts when its tensor is ready and the UE's radio is free
(the UE transmits one thing at a time and receives one thing at a time: downlinks from
several ESs are coordinated, not simultaneous) and lasts its airtime. Live mode feeds it
the costs it measured; profiled mode the same costs from a run on the meta model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from meg_gym.channel import airtime_s
from meg_gym.protocols import UE, PlacedProtocol, Run, Send, _stage_names

__all__ = ["CompiledPlan", "StepCost", "StepTiming", "compile_plan"]


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

    @property
    def uplink_bits(self) -> int:
        return sum(b for b, s, n in zip(self.bits, self.is_send, self.node) if s and n == 0)

    @property
    def downlink_bits(self) -> int:
        return sum(b for b, s, n in zip(self.bits, self.is_send, self.node) if s and n != 0)

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

        ``airtimes`` overrides the computed airtime of sends (live mode passes what the
        transmission really took, retransmissions included).
        """
        n = len(self.costs)
        end = [0.0] * n
        clock = [start_s] * (len(self.es_ids) + 1)
        tx_free = rx_free = start_s
        ue_compute = es_compute = queue = up = down = 0.0
        records: list[StepTiming] = []
        for i in range(n):
            ready = start_s
            for d in self.deps[i]:
                if end[d] > ready:
                    ready = end[d]
            node = self.node[i]
            if not self.is_send[i]:
                start = clock[node] if clock[node] > ready else ready
                if node == 0:
                    service, wait = self.flops[i] / ue_flops_per_s, 0.0
                    ue_compute += service
                else:
                    j = node - 1
                    if queues is not None:
                        res = queues[j].submit(start, self.flops[i])
                        wait, service = res.wait_s, res.service_s
                    else:
                        wait, service = 0.0, self.flops[i] / es_flops_per_s[j]
                    es_compute += service
                    queue += wait
                end[i] = clock[node] = start + wait + service
                if trace:
                    c = self.costs[i]
                    records.append(StepTiming("run", c.name, c.node, "", start, end[i], c.flops, wait))
            else:
                if node == 0:  # uplink; a broadcast runs at the weakest receiver's SNR
                    snr = min(snr_ul_db[d - 1] for d in self.dst[i])
                    start = tx_free if tx_free > ready else ready
                else:
                    snr = snr_dl_db[node - 1]
                    start = rx_free if rx_free > ready else ready
                at = airtimes[i] if airtimes is not None and airtimes[i] is not None else None
                if at is None:
                    at = airtime_s(values=self.values[i], payload_bits=self.bits[i], snr_db=snr,
                                   bandwidth_hz=bandwidth_hz, mode="digital" if self.lossless[i] else mode,
                                   efficiency=efficiency)
                end[i] = start + at
                if node == 0:
                    tx_free = end[i]
                    up += at
                else:
                    rx_free = end[i]
                    down += at
                if trace:
                    c = self.costs[i]
                    records.append(StepTiming("send", c.name, c.node, c.dst, start, end[i], 0, 0.0, c.payload_bits,
                                              at, snr, "ul" if node == 0 else "dl"))
        latency = max(end) - start_s if n else 0.0
        summary = {
            "latency_s": latency,
            "ue_compute_s": ue_compute,
            "es_compute_s": es_compute,
            "queue_s": queue,
            "uplink_s": up,
            "downlink_s": down,
            "uplink_bits": float(self.uplink_bits),
            "downlink_bits": float(self.downlink_bits),
            "energy_j": ue_compute * ue_power_w + up * ue_tx_power_w,
        }
        return summary, records


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
    return CompiledPlan(
        protocol=plan.protocol, es_ids=plan.es_ids, costs=tuple(costs),
        is_send=tuple(c.kind == "send" for c in costs), node=tuple(nodes), dst=tuple(dsts), deps=tuple(deps),
        flops=tuple(float(c.flops) for c in costs), values=tuple(c.values for c in costs),
        bits=tuple(c.payload_bits for c in costs), lossless=tuple(c.lossless for c in costs),
    )
