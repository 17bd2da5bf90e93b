"""The compiled timing walk equals the walk, request by request; the batched quality draw equals the table's."""

import numpy as np
import pytest

from meg_gym.core import Core
from meg_gym.quality.calibration import CalibrationError
from meg_gym.timing import PlanTable


@pytest.mark.parametrize("mode", ["analog", "digital"])
def test_plan_table_walk_equals_the_walk_for_every_placement(mode):
    """The compiled walk over many requests, each against its own backlogs (the batched
    world's use), gives every placement's walk (timing with trace=True) bit for bit, and
    the ES occupation the walk gives the queues."""
    world = Core(_scenario())
    sys_ = world.system
    table = PlanTable(world.plan_table.plans, [[sys_.es_flops_per_s[i] for i in d.es_ids] for d in world.placements],
                      sys_.ue_flops_per_s, mode, 0.75, sys_.ue_power_w, sys_.ue_tx_power_w)
    rng = np.random.default_rng(0)
    k = 7 * len(world.placements)
    plan = np.repeat(np.arange(len(world.placements)), 7)
    width = table.es_ids.shape[1]
    snr_ul, snr_dl = rng.uniform(-5, 30, (k, width)), rng.uniform(-5, 30, (k, width))
    bw = rng.choice([5e6, 10e6, 20e6], k)
    start = rng.uniform(0, 10, k)
    backlog = rng.exponential(0.5, (k, table.num_es)) * rng.integers(0, 2, (k, table.num_es))
    out = table.walk(rng.permutation(k), plan, start, backlog.copy(), snr_ul, snr_dl, bw)
    for r in range(k):
        d = world.placements[plan[r]]
        n = len(d.es_ids)
        es = [sys_.es_flops_per_s[i] for i in d.es_ids]
        queues = [_FixedBacklog(backlog[r, i], f) for i, f in zip(d.es_ids, es)]
        one, _ = world.plans[d.index].timing(
            snr_ul_db=list(snr_ul[r, :n]), snr_dl_db=list(snr_dl[r, :n]), bandwidth_hz=float(bw[r]), queues=queues,
            start_s=float(start[r]), trace=True, ue_flops_per_s=sys_.ue_flops_per_s, es_flops_per_s=es, mode=mode,
            efficiency=0.75, ue_power_w=sys_.ue_power_w, ue_tx_power_w=sys_.ue_tx_power_w)
        keys = ("latency_s", "energy_j", "ue_compute_s", "es_compute_s", "queue_s", "uplink_s", "downlink_s")
        assert out[r, :7].tolist() == [one[key] for key in keys], d
        for j, i in enumerate(d.es_ids):
            occupied = out[r, 7 + j] - (start[r] + backlog[r, i])
            assert queues[j].added == (None if np.isnan(out[r, 7 + j]) else pytest.approx(occupied, rel=1e-12)), d


def test_plan_table_rejects_bad_bandwidth_and_hopeless_snr():
    world = Core(_scenario())
    t = world.plan_table
    k = next(k for k, d in enumerate(world.placements) if d.protocol == "full_es")
    one = dict(order=np.zeros(1, dtype=np.int64), plan=np.array([k]), start_s=np.zeros(1),
               backlog=np.zeros((1, t.num_es)), snr_ul_db=np.full((1, t.es_ids.shape[1]), 5.0),
               snr_dl_db=np.full((1, t.es_ids.shape[1]), 5.0))
    for bw in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="'bandwidth_hz' must be a finite number > 0"):
            t.walk(**one, bandwidth_hz=np.array([bw]))
    digital = PlanTable(world.plan_table.plans, [[1e12] * len(d.es_ids) for d in world.placements], 1e10, "digital",
                        0.75, 1.0, 0.2)
    with pytest.raises(ValueError, match="'snr_db' is too low for any rate"):
        digital.walk(**{**one, "snr_ul_db": np.full((1, t.es_ids.shape[1]), -np.inf)}, bandwidth_hz=np.array([1e6]))


class _FixedBacklog:
    """A queue stand-in holding a fixed backlog: records the job the timing model adds."""

    def __init__(self, backlog_s, flops_per_s):
        self.backlog, self.flops_per_s, self.added = backlog_s, flops_per_s, None

    def backlog_s(self, now_s):
        return self.backlog

    def submit(self, arrival_s, work_flops):
        self.added = work_flops / self.flops_per_s


def _scenario():
    from meg_gym.config import load_scenario

    return load_scenario("multi_es", backend="profiled", cost_model=None)


def test_grid_draw_equals_the_table_draw():
    """GridDraw, the batched and multi-UE worlds' quality, gives QualityTable.draw's numbers, in and
    beyond the SNR grid, for protocols with and without noisy links."""
    from meg_gym.quality.calibration import GridDraw

    world = Core(_scenario())
    table, steps = world.table, world.system.settings.steps
    protocols = list(dict.fromkeys(d.protocol for d in world.placements))
    draw = GridDraw(table, protocols, steps)
    rng = np.random.default_rng(1)
    n = 200
    index = rng.integers(len(protocols), size=n)
    snr = rng.uniform(-30, 40, (n, 2))
    z = rng.standard_normal(n)
    q, s = draw(index, snr, z)
    for r in range(n):
        want = table.draw(protocols[index[r]], snr[r, 0], snr[r, 1], z[r], steps)
        assert (q[r], s[r]) == pytest.approx(want, rel=1e-12, abs=1e-12)
    with pytest.raises(CalibrationError, match="no entry for protocol 'nope'"):
        GridDraw(table, [*protocols, "nope"], steps)(np.array([0, len(protocols)]), snr[:2], z[:2])


@pytest.mark.parametrize("mode", ["analog", "digital"])
def test_compiled_timing_equals_the_walk_bit_for_bit(mode):
    """timing() runs the compiled walk (PlanTable); with trace=True it walks the plan: same floats."""
    world = Core(_scenario())
    sys_ = world.system
    rng = np.random.default_rng(2)
    for d in world.placements:
        plan = world.plans[d.index]
        n = len(d.es_ids)
        es = [sys_.es_flops_per_s[i] for i in d.es_ids]
        common = dict(ue_flops_per_s=sys_.ue_flops_per_s, es_flops_per_s=es, mode=mode, efficiency=0.75,
                      ue_power_w=sys_.ue_power_w, ue_tx_power_w=sys_.ue_tx_power_w)
        for _ in range(5):
            kw = dict(snr_ul_db=list(rng.uniform(-20, 30, n)), snr_dl_db=list(rng.uniform(-20, 30, n)),
                      bandwidth_hz=float(rng.choice([5e6, 10e6, 20e6])), start_s=float(rng.uniform(0, 10)))
            backlog = rng.exponential(0.5, n) * rng.integers(0, 2, n)  # some ESs idle, some busy
            q_fast = [_FixedBacklog(b, f) for b, f in zip(backlog, es)]
            q_walk = [_FixedBacklog(b, f) for b, f in zip(backlog, es)]
            fast, _ = plan.timing(queues=q_fast, **kw, **common)
            walk, records = plan.timing(queues=q_walk, trace=True, **kw, **common)
            assert records and fast == walk, d
            assert [q.added for q in q_fast] == [q.added for q in q_walk], d


def test_compiled_timing_rejects_bad_bandwidth_like_the_walk():
    world = Core(_scenario())
    d = next(d for d in world.placements if d.protocol == "full_es")
    plan, sys_ = world.plans[d.index], world.system
    for bw in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="bandwidth_hz"):
            plan.timing(ue_flops_per_s=sys_.ue_flops_per_s, es_flops_per_s=[sys_.es_flops_per_s[0]], snr_ul_db=[5.0],
                        snr_dl_db=[5.0], bandwidth_hz=bw, mode="analog", efficiency=0.75, ue_power_w=1.0,
                        ue_tx_power_w=0.2)
