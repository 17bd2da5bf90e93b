"""The world core (meg_gym.core): placements, bandwidth rule, shared queues, plans, rewards, live mode."""

import numpy as np
import pytest

from meg_gym.config import load_scenario
from meg_gym.core import REWARD_TERMS, Core
from meg_gym.timing import compile_plan

# the tiny model's own geometry (fast FLOP counting), two ESs, a fixed SNR per UE
SC = dict(backend="profiled", num_es=2, channel={"kind": "awgn", "snr_db": 10.0},
          es=[{"load": 0.3}], workload={"arrival_rate_hz": 0.5})


@pytest.fixture(scope="module")
def world():
    return Core(load_scenario("default", **SC), ues=3)


def _fresh(world, **kw):
    return Core(world.scenario, system=world.system, table=world.table, **{"ues": 3, **kw})


def _step(w, placements, shares):
    """One epoch of a one-copy core, its per-UE results as 1-D arrays."""
    res = w.step([placements], [shares])
    return res, {k: getattr(res, k)[0] for k in ("reward", "latency_s", "quality", "energy_j", "uplink_bits",
                                                   "downlink_bits", "bandwidth_hz", "deadline_missed", "es_demand",
                                                   "retransmissions", "outage")}


def test_placements_full_ue_once_and_pairs(world):
    names = [(p.protocol, p.es_ids) for p in world.placements]
    assert names.count(("full_ue", (0,))) == 1 and all(p != "full_ue" or ids == (0,) for p, ids in names)
    assert ("uidcg", (0, 1)) in names and ("ciag", (1,)) in names
    assert len(names) == len(set(names))
    assert not world.placements[world.placement_index("full_ue", (0,))].radio
    assert world.placement_index("full_ue", (1,)) == world.placement_index("full_ue", (0,))
    with pytest.raises(ValueError, match="is not offered"):
        world.placement_index("uidcg", (0,))


def test_costs_measured_once_per_es_count_equal_the_placed_ones(world):
    sys_ = world.system
    plan = world.plans[world.placement_index("uidcg", (0, 1))]
    direct = compile_plan(sys_.plan("uidcg", (0, 1)), sys_.costs("uidcg", (0, 1)))
    assert direct.flops == plan.flops and direct.bits == plan.bits and direct.deps == plan.deps


def test_bandwidth_rule_normalises_only_above_the_cell(world):
    w = _fresh(world)
    w.reset(0)
    ciag0 = w.placement_index("ciag", (0,))
    full_ue = w.placement_index("full_ue", (0,))
    _, res = _step(w, [ciag0, ciag0, full_ue], [1.0, 0.5, 1.0])  # demand 1.5 on ES 0: scaled by 1/1.5
    B = w.bandwidth_hz
    assert res["es_demand"].tolist() == [1.5, 0.0]
    assert res["bandwidth_hz"][0] == pytest.approx(B / 1.5)
    assert res["bandwidth_hz"][1] == pytest.approx(0.5 * B / 1.5)
    _, res = _step(w, [ciag0, ciag0, full_ue], [0.25, 0.5, 1.0])  # demand 0.75: each gets what it asked
    assert res["bandwidth_hz"][:2].tolist() == pytest.approx([0.25 * B, 0.5 * B])
    coop = w.placement_index("uidcg", (0, 1))
    ciag1 = w.placement_index("ciag", (1,))
    _, res = _step(w, [coop, ciag0, ciag1], [0.5, 0.5, 1.0])  # ES 0: 1.0, ES 1: 1.5 -> coop runs at 0.5/1.5
    assert res["bandwidth_hz"][0] == pytest.approx(0.5 * B / 1.5)


def test_one_agent_choice_changes_anothers_latency(world):
    """UE 0 moving onto UE 1's ES (shared cell and queue) slows UE 1 down; same seed, same draws."""
    lat = []
    for other in ("full_ue", "ciag"):
        w = _fresh(world, ues=2)
        w.reset(5)
        ciag0 = w.placement_index("ciag", (0,))
        _, res = _step(w, [w.placement_index(other, (0,)), ciag0], [1.0, 1.0])
        lat.append(res["latency_s"][1])
    assert lat[1] > lat[0]


def test_reward_is_the_shared_reward_terms(world):
    w = _fresh(world)
    w.reset(2)
    wts = w.scenario.reward.weights
    rng = np.random.default_rng(0)
    for _ in range(5):
        full, res = _step(w, rng.integers(len(w.placements), size=3), rng.choice([0.25, 1.0], size=3))
        for k in range(3):
            assert set(full.terms) == set(REWARD_TERMS)
            t = {n: full.terms[n][0, k] for n in REWARD_TERMS}
            assert res["reward"][k] == pytest.approx(sum(getattr(wts, n) * t[n] for n in REWARD_TERMS))
            assert t["deadline"] == (-1.0 if res["deadline_missed"][k] else 0.0)
            assert t["latency"] == pytest.approx(-res["latency_s"][k] / w.scales["latency_s"])


def test_step_validates_before_changing_anything(world):
    w = _fresh(world)
    w.reset(0)
    now = w.now_s.copy()
    with pytest.raises(ValueError, match=r"'placements\[0, 1\]' must be in \[0, "):
        w.step([[0, 999, 0]], [[1.0, 1.0, 1.0]])
    with pytest.raises(ValueError, match=r"'shares\[0, 2\]' must be a share of the cell in \(0, 1\]"):
        w.step([[0, 0, 0]], [[1.0, 1.0, 0.0]])
    with pytest.raises(ValueError, match=r"shape \(copies, ues\) = \(1, 3\)"):
        w.step([[0, 0]], [[1.0, 1.0]])
    assert w.now_s.tolist() == now.tolist() and w.served[0] == 0


def test_per_ue_snr_range_and_positions(world):
    w = _fresh(world, ue_snr_db=(0.0, 20.0))
    w.reset(1)
    snr = w.snr_table_db()
    assert snr.shape == (1, 3, 2, 2) and len(set(np.round(snr[0, :, 0, 0], 6))) == 3
    umi = load_scenario("multi_ue", cost_model=None)
    with pytest.raises(ValueError, match="'ue_positions_m' must hold num_ues=3"):
        Core(umi, ues=3, ue_positions_m=[[0, 0]], system=world.system, table=world.table)


def test_live_mode_two_ues_two_steps():
    sc = load_scenario("default", backend="live", num_es=2, channel={"kind": "awgn", "snr_db": 10.0},
                       generation={"steps": 4, "ue_steps": 2, "complete_steps": 4})
    w = Core(sc, ues=2)
    w.reset(0)
    ciag = w.placement_index("ciag", (0,))
    full_ue = w.placement_index("full_ue", (0,))
    for _ in range(2):
        before = w.backlog_s()[0, 0]
        res = w.step([[ciag, full_ue]], [[1.0, 1.0]])
        assert res.outcomes[0].output.shape == (3, 64, 64) and res.outcomes[0].uplink_bits > 0
        assert res.outcomes[1].uplink_bits == 0 and np.isfinite(res.reward).all()
        assert res.outcomes[0].latency_s == res.latency_s[0, 0]
    assert before >= 0.0 and w.served[0] == 2


def test_digital_live_and_profiled_see_the_same_link():
    """Digital transmission over fast-fading links: the live core (the model runs) and the profiled core
    (the digital table) give every request the same latency, energy, retransmissions and outage (one link
    model, the same HARQ draws); a failed request is worth quality 0 and a missed deadline in both."""
    # cost_model: both backends time the plan's counted costs (live would otherwise count the real prompt's bytes)
    over = dict(num_es=1, protocols=["full_es", "ciag", "eiug"], es=[{"load": 0.0}], cost_model="tiny",
                channel={"kind": "umi", "fading": "rayleigh", "shadowing": False},
                ue={"position_m": [400.0, 0.0], "speed_mps": 30.0},  # far and fast: long transfers, short blocks
                transmission={"mode": "digital", "fading_margin_db": 1.0, "max_retransmissions": 1})
    cores = {b: Core(load_scenario("default", backend=b, **over)) for b in ("live", "profiled")}
    for c in cores.values():
        c.reset(5)
    n = len(cores["live"].placements)
    seen = []
    for t in range(6):
        res = {b: c.step([[t % n]], [[0.25]]) for b, c in cores.items()}
        live, prof = res["live"], res["profiled"]
        for key in ("latency_s", "energy_j", "retransmissions", "outage", "deadline_missed", "uplink_bits"):
            assert getattr(live, key)[0, 0] == getattr(prof, key)[0, 0], key
        if live.outage[0, 0]:
            assert live.quality[0, 0] == prof.quality[0, 0] == 0.0 and live.deadline_missed[0, 0]
        seen.append((int(live.retransmissions[0, 0]), bool(live.outage[0, 0])))
    assert any(r > 0 for r, _ in seen)  # the fading did retransmit


class _Fifo:
    """A FIFO ES as the timing walk reads it (backlog now, our jobs added at now): the reference
    for the queue row the world keeps as arrays."""

    def __init__(self, backlog_s: float, flops_per_s: float) -> None:
        self.v, self.flops_per_s = backlog_s, flops_per_s

    def backlog_s(self, now_s: float) -> float:
        return self.v

    def submit(self, arrival_s: float, work_flops: float) -> None:
        self.v += work_flops / self.flops_per_s


@pytest.mark.parametrize("channel", [None, {"kind": "umi", "fading": "rician"}])
def test_step_equals_the_scalar_timing_and_table_per_request(world, channel):
    """The all-UE passes (bandwidth rule, SNRs, quality) and the compiled walk over the epoch give what
    the scalar path gives: the timing walk (CompiledPlan.timing, trace=True) on each UE's channel
    against FIFO queues holding the ESs' backlogs, in the service order, QualityTable.lookup; the
    queues then hold what the requests left, advanced to the next epoch."""
    import copy

    if channel is None:
        w = _fresh(world, ue_snr_db=(0.0, 20.0))
    else:
        w = Core(load_scenario("default", **{**SC, "channel": channel}), ues=3, table=world.table)
    w.reset(3)
    rng = np.random.default_rng(0)
    sys_ = w.system
    for _ in range(6):
        idx = rng.integers(len(w.placements), size=3)
        share = rng.choice([0.25, 0.5, 1.0], size=3)
        ref = copy.deepcopy(w)
        order, z, now = list(ref._order), ref._z.copy(), float(ref.now_s[0])
        fifo = [_Fifo(b, sys_.es_flops_per_s[i]) for i, b in enumerate(ref.backlog_s()[0].tolist())]
        _, res = _step(w, idx, share)
        t = w.scenario.transmission
        for k in order:
            p, plan = ref.placements[idx[k]], ref.plans[idx[k]]
            bw = res["bandwidth_hz"][k]
            ch = ref.channel.ue_channel(k)
            ul = [ch.snr_db(i, "ul", bw) if p.radio else 0.0 for i in p.es_ids]
            dl = [ch.snr_db(i, "dl", bw) if p.radio else 0.0 for i in p.es_ids]
            summary, _ = plan.timing(
                ue_flops_per_s=sys_.ue_flops_per_s, es_flops_per_s=[sys_.es_flops_per_s[i] for i in p.es_ids],
                snr_ul_db=ul, snr_dl_db=dl, bandwidth_hz=bw, mode=t.mode, digital=sys_.digital,
                ue_power_w=sys_.ue_power_w, ue_tx_power_w=sys_.ue_tx_power_w, ue_rx_power_w=sys_.ue_rx_power_w,
                queues=[fifo[i] for i in p.es_ids], start_s=now, trace=True,
                link_state=[(ch.fading_db(i, "ul"), ch.fading_db(i, "dl"), float(ch.is_los(i))) if hasattr(
                    ch, "fading_db") else (0.0, 0.0, 0.0) for i in p.es_ids], uniforms=ref._uni[k])
            assert res["retransmissions"][k] == summary["retransmissions"]
            assert res["outage"][k] == bool(summary["outage"])
            assert res["latency_s"][k] == pytest.approx(summary["latency_s"], rel=1e-12)
            assert res["energy_j"][k] == pytest.approx(summary["energy_j"], rel=1e-12)
            assert res["uplink_bits"][k] == summary["uplink_bits"]
            assert res["downlink_bits"][k] == summary["downlink_bits"]
            mean, std = ref.table.lookup(p.protocol, min(ul), min(dl), sys_.settings.steps, "quality")
            q = mean + std * z[k] if std > 0 else mean
            q = 0.0 if summary["outage"] else q  # a failed request delivered nothing
            assert res["quality"][k] == pytest.approx(min(max(q, 0.0), 1.0), abs=1e-12)
        ref.queues.v[0] = [f.v for f in fifo]
        ref.queues.advance(now + ref._gap, ref._q_rng)
        np.testing.assert_allclose(w.backlog_s(), ref.backlog_s(), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("override, field", [({"transmission": {"bits_per_value": 8}}, "transmission.bits_per_value"),
                                             ({"generation": {"ue_steps": 4}}, "generation.ue_steps")])
def test_profiled_core_refuses_a_table_measured_under_other_settings(override, field):
    """Profiled quality comes from the calibration table: a scenario in another setting (digital links, other
    bits, another UE step count) would get the table's setting's quality, so it is an error naming the field."""
    with pytest.raises(ValueError, match=rf"'{field}' is .* but the calibration table"):
        Core(load_scenario("case_study", backend="profiled", **override))
