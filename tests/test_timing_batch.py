"""The compiled timing walk equals the walk, request by request; the batched quality draw equals the table's."""

import numpy as np
import pytest

from meg_gym.channel import DigitalLink
from meg_gym.core import Core
from meg_gym.quality.calibration import CalibrationError
from meg_gym.timing import OUT_COLS, PlanTable

# a digital link that fades fast and backs off little: retransmissions and failed requests happen
FADING = (DigitalLink(efficiency=0.4, max_spectral_efficiency=2.0, fading="rayleigh", margin_db=2.0,
                      coherence_s=1e-3, max_retransmissions=2),
          DigitalLink(fading="rician", rician_k_linear=5.0, margin_db=2.0, coherence_s=1e-3, max_retransmissions=2))


@pytest.mark.parametrize("mode", ["analog", "digital"])
def test_plan_table_walk_equals_the_walk_for_every_placement(mode):
    """The compiled walk over many requests, each against its own backlogs (the batched
    world's use), gives every placement's walk (timing with trace=True) bit for bit, and
    the ES occupation the walk gives the queues."""
    world = Core(_scenario())
    sys_ = world.system
    table = PlanTable(world.plan_table.plans, [[sys_.es_flops_per_s[i] for i in d.es_ids] for d in world.placements],
                      sys_.ue_flops_per_s, mode, FADING, sys_.ue_power_w, sys_.ue_tx_power_w, 0.9)
    rng = np.random.default_rng(0)
    k = 7 * len(world.placements)
    plan = np.repeat(np.arange(len(world.placements)), 7)
    width = table.es_ids.shape[1]
    snr_ul, snr_dl = rng.uniform(-25, 30, (k, width)), rng.uniform(-25, 30, (k, width))
    bw = rng.choice([5e6, 10e6, 20e6], k)
    start = rng.uniform(0, 10, k)
    backlog = rng.exponential(0.5, (k, table.num_es)) * rng.integers(0, 2, (k, table.num_es))
    state = np.concatenate([rng.normal(0, 4, (k, width, 2)), rng.integers(0, 2, (k, width, 1))], axis=2)
    uni = rng.random((k, table.max_sends, table.levels))
    out = table.walk(rng.permutation(k), plan, start, backlog.copy(), snr_ul, snr_dl, bw, link_state=state,
                     uniforms=uni)
    for r in range(k):
        d = world.placements[plan[r]]
        n = len(d.es_ids)
        es = [sys_.es_flops_per_s[i] for i in d.es_ids]
        queues = [_FixedBacklog(backlog[r, i], f) for i, f in zip(d.es_ids, es)]
        one, _ = world.plans[d.index].timing(
            snr_ul_db=list(snr_ul[r, :n]), snr_dl_db=list(snr_dl[r, :n]), bandwidth_hz=float(bw[r]), queues=queues,
            start_s=float(start[r]), trace=True, ue_flops_per_s=sys_.ue_flops_per_s, es_flops_per_s=es, mode=mode,
            digital=FADING, ue_power_w=sys_.ue_power_w, ue_tx_power_w=sys_.ue_tx_power_w, ue_rx_power_w=0.9,
            link_state=state[r, :n], uniforms=uni[r])
        keys = ("latency_s", "energy_j", "ue_compute_s", "es_compute_s", "queue_s", "uplink_s", "downlink_s",
                "retransmissions", "outage", "backhaul_s")
        assert out[r, :OUT_COLS].tolist() == [one[key] for key in keys], d
        for j, i in enumerate(d.es_ids):
            occupied = out[r, OUT_COLS + j] - (start[r] + backlog[r, i])
            assert queues[j].added == (None if np.isnan(out[r, OUT_COLS + j])
                                       else pytest.approx(occupied, rel=1e-12)), d
    # the fading link did its work: some requests needed retransmissions, some failed, some did not
    assert out[:, 7].max() > 0 and 0 < out[:, 8].sum() < k


def test_plan_table_rejects_bad_bandwidth_and_fails_a_hopeless_link():
    world = Core(_scenario())
    t = world.plan_table
    k = next(k for k, d in enumerate(world.placements) if d.protocol == "full_es")
    one = dict(order=np.zeros(1, dtype=np.int64), plan=np.array([k]), start_s=np.zeros(1),
               backlog=np.zeros((1, t.num_es)), snr_ul_db=np.full((1, t.es_ids.shape[1]), 5.0),
               snr_dl_db=np.full((1, t.es_ids.shape[1]), 5.0))
    for bw in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="'bandwidth_hz' must be a finite number > 0"):
            t.walk(**one, bandwidth_hz=np.array([bw]))
    # a link no rate reaches is an outage, not an error: the request fails at its first send
    digital = PlanTable(world.plan_table.plans, [[1e12] * len(d.es_ids) for d in world.placements], 1e10, "digital",
                        DigitalLink(), 1.0, 0.2)
    out = digital.walk(**{**one, "snr_ul_db": np.full((1, t.es_ids.shape[1]), -np.inf)}, bandwidth_hz=np.array([1e6]))
    assert out[0, 8] == 1.0 and out[0, 0] == 0.0


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
        # ESs of unequal speed and a slow backhaul: a joint group waits for its slowest ES and its exchanges
        es = [sys_.es_flops_per_s[i] * float(rng.uniform(0.3, 3.0)) for i in d.es_ids]
        common = dict(ue_flops_per_s=sys_.ue_flops_per_s, es_flops_per_s=es, mode=mode, digital=FADING,
                      ue_power_w=sys_.ue_power_w, ue_tx_power_w=sys_.ue_tx_power_w, ue_rx_power_w=0.9,
                      backhaul=(float(rng.uniform(1e6, 1e9)), float(rng.uniform(0.0, 0.01))))
        for _ in range(5):
            kw = dict(snr_ul_db=list(rng.uniform(-20, 30, n)), snr_dl_db=list(rng.uniform(-20, 30, n)),
                      bandwidth_hz=float(rng.choice([5e6, 10e6, 20e6])), start_s=float(rng.uniform(0, 10)),
                      link_state=np.concatenate([rng.normal(0, 4, (n, 2)), rng.integers(0, 2, (n, 1))], axis=1),
                      uniforms=rng.random((8, 3)))
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
                        snr_dl_db=[5.0], bandwidth_hz=bw, mode="analog", ue_power_w=1.0, ue_tx_power_w=0.2)
