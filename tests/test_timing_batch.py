"""The batched timing walk and airtimes equal the scalar ones, request by request."""

import numpy as np
import pytest

from meg_gym.channel.transmission import airtime_array, airtime_s
from meg_gym.quality.calibration import CalibrationError
from meg_gym.world import World


@pytest.mark.parametrize("mode", ["analog", "digital"])
def test_airtime_array_equals_airtime_s(mode):
    snr = np.array([-5.0, 0.0, 12.5, 30.0, 400.0])
    bw = np.array([1e6, 5e6, 20e6, 3e6, 1e5])
    got = airtime_array(values=4096, payload_bits=65536, snr_db=snr, bandwidth_hz=bw, mode=mode, efficiency=0.75)
    want = [airtime_s(values=4096, payload_bits=65536, snr_db=s, bandwidth_hz=b, mode=mode, efficiency=0.75)
            for s, b in zip(snr, bw)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize("mode", ["analog", "digital"])
def test_timing_batch_equals_timing_for_every_placement(mode):
    world = World(_scenario())
    sys_ = world.system
    rng = np.random.default_rng(0)
    k = 7
    for d in world.decisions:
        plan = world.compiled[(d.protocol, d.es_ids)]
        n = len(d.es_ids)
        snr_ul = [rng.uniform(-5, 30, k) for _ in range(n)]
        snr_dl = [rng.uniform(-5, 30, k) for _ in range(n)]
        bw = rng.choice([5e6, 10e6, 20e6], k)
        start = rng.uniform(0, 10, k)
        turn = [start + rng.exponential(0.5, k) for _ in range(n)]
        es = [sys_.es_flops_per_s[i] for i in d.es_ids]
        common = dict(ue_flops_per_s=sys_.ue_flops_per_s, es_flops_per_s=es, mode=mode, efficiency=0.75,
                      ue_power_w=sys_.ue_power_w, ue_tx_power_w=sys_.ue_tx_power_w)
        batch, busy = plan.timing_batch(snr_ul_db=snr_ul, snr_dl_db=snr_dl, bandwidth_hz=bw, turn_s=turn,
                                        start_s=start, **common)
        for r in range(k):
            queues = [_FixedBacklog(turn[j][r] - start[r], es[j]) for j in range(n)]
            one, _ = plan.timing(snr_ul_db=[s[r] for s in snr_ul], snr_dl_db=[s[r] for s in snr_dl],
                                 bandwidth_hz=float(bw[r]), queues=queues, start_s=float(start[r]), **common)
            for key in ("latency_s", "energy_j", "queue_s", "uplink_s", "downlink_s"):
                assert np.asarray(batch[key] if np.ndim(batch[key]) else np.full(k, batch[key]))[r] == \
                    pytest.approx(one[key], rel=1e-12, abs=1e-12), (d, key)
            for j in range(n):
                occupied = None if busy[j] is None else busy[j][r] - turn[j][r]
                assert queues[j].added == (pytest.approx(occupied, rel=1e-12) if occupied is not None else None)


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

    world = World(_scenario())
    table, steps = world.table, world.system.settings.steps
    protocols = list(dict.fromkeys(d.protocol for d in world.decisions))
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
def test_generated_kernel_equals_the_walk_bit_for_bit(mode):
    """timing() runs a generated straight-line kernel; with trace=True it walks the plan: same floats."""
    world = World(_scenario())
    sys_ = world.system
    rng = np.random.default_rng(2)
    for d in world.decisions:
        plan = world.compiled[(d.protocol, d.es_ids)]
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


def test_kernel_rejects_bad_bandwidth_like_the_walk():
    world = World(_scenario())
    d = next(d for d in world.decisions if d.protocol == "full_es")
    plan, sys_ = world.compiled[(d.protocol, d.es_ids)], world.system
    for bw in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="bandwidth_hz"):
            plan.timing(ue_flops_per_s=sys_.ue_flops_per_s, es_flops_per_s=[sys_.es_flops_per_s[0]], snr_ul_db=[5.0],
                        snr_dl_db=[5.0], bandwidth_hz=bw, mode="analog", efficiency=0.75, ue_power_w=1.0,
                        ue_tx_power_w=0.2)
