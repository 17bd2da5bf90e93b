"""The batched channel (meg_gym.channel.batched) against the scalar channel models.

Deterministic parts (the laws on arrays, path loss and SNR at given positions, walks of known
heading, fixed SNR tables) equal the scalar model to 1e-12; a batch of one UE draws the same
numbers as a scalar model from the same generator, so it follows it step for step; random parts
of large batches match the model's statistics; a seed fixes the trajectory.
"""

import math

import numpy as np
import pytest

from meg_gym.channel import links, make_channel
from meg_gym.channel.batched import FixedSnrBatch, Tr38901Batch, make_channel_batch
from meg_gym.channel.mobility import MobilityBatch

ES = [(0.0, 0.0), (120.0, 0.0), (0.0, 120.0), (300.0, 250.0)]
FC = 3.5e9


@pytest.mark.parametrize("law", ["pathloss_umi_los_db", "pathloss_umi_nlos_db", "pathloss_uma_los_db",
                                 "pathloss_uma_nlos_db"])
@pytest.mark.parametrize("fc, h_ut", [(3.5e9, 1.5), (28e9, 5.0), (0.7e9, 20.0)])
def test_pathloss_on_arrays_equals_floats(law, fc, h_ut):
    fn = getattr(links, law)
    h_bs = 10.0 if "umi" in law else 25.0
    d = np.concatenate([np.random.default_rng(0).uniform(0.0, 3000.0, 2000), [0.0, 10.0, 18.0, 210.0, 5000.0]])
    want = np.array([fn(x, fc, h_bs, h_ut) for x in d.tolist()])
    np.testing.assert_array_equal(fn(d, fc, h_bs, h_ut), want)  # one function, compiled for arrays


@pytest.mark.parametrize("kind", ["umi", "uma"])
def test_pathloss_per_los_state_is_the_los_or_the_nlos_law(kind):
    sc = links.SCENARIOS_38901[kind]
    rng = np.random.default_rng(2)
    d = np.concatenate([rng.uniform(0.0, 3000.0, 2000), [0.0, 10.0, 18.0, 210.0, 5000.0]])
    los = rng.random(len(d)) < 0.5
    want = [(sc.pathloss_los_db if lo else sc.pathloss_nlos_db)(x, FC, sc.es_height_m, 1.5)
            for x, lo in zip(d.tolist(), los.tolist())]
    assert [sc.pathloss_db(x, lo, FC, sc.es_height_m, 1.5) for x, lo in zip(d.tolist(), los.tolist())] == want
    np.testing.assert_array_equal(sc.pathloss_db(d, los, FC, sc.es_height_m, 1.5), want)


@pytest.mark.parametrize("h_ut", [1.5, 14.0, 22.5])
def test_los_probability_and_fading_on_arrays_equal_floats(h_ut):
    rng = np.random.default_rng(1)
    d = np.concatenate([rng.uniform(0.0, 800.0, 2000), [0.0, 18.0, 18.5]])
    for fn in (links.los_probability_umi, links.los_probability_uma):
        np.testing.assert_array_equal(fn(d, h_ut), [fn(x, h_ut) for x in d.tolist()])
    re, im = rng.standard_normal((2, 500))
    los = rng.random(500) < 0.5
    for fading in links.FADINGS:
        want = [links.fading_gain(fading, lo, 7.94, r, i) for lo, r, i in zip(los.tolist(), re.tolist(), im.tolist())]
        got = np.broadcast_to(links.fading_gain(fading, los, 7.94, re, im), (500,))
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kind", ["umi", "uma"])
@pytest.mark.parametrize("los", ["los", "nlos"])
def test_deterministic_snr_equals_scalar_model(kind, los):
    """No fading, no shadowing, a forced LOS state, a known walk: the batch is the scalar models."""
    params = dict(fading="none", shadowing=False, los=los, es_positions_m=ES, mobility="constant_velocity",
                  ue_heading_deg=30.0, ue_speed_mps=7.0, es_tx_power_dbm=[30.0, 33.0, 27.0, 30.0])
    pos = [(10.0, 20.0), (200.0, -50.0), (-90.0, 300.0)]
    area = (-100.0, -100.0, 400.0, 350.0)
    batch = make_channel_batch(kind, 3, **params)
    batch.reset(np.random.default_rng(0), 4, ue_positions_m=pos, area_m=area)
    scalars = [make_channel(kind, **params, ue_position_m=p, area_m=area) for p in pos]
    for ch in scalars:
        ch.reset(np.random.default_rng(0), 4)
    for step in range(40):  # long enough to reflect off the borders
        for bw in (20e6, 3.3e6):
            want = np.stack([ch.snr_table_db(bw) for ch in scalars])
            np.testing.assert_allclose(batch.snr_table_db(bw), want, rtol=0, atol=1e-9 if step else 1e-12)
        np.testing.assert_allclose(batch.ue_positions_m, [ch.ue_position_now_m for ch in scalars], atol=1e-9)
        batch.advance(3.0, np.random.default_rng(step))
        for ch in scalars:
            ch.advance(3.0, np.random.default_rng(step))


@pytest.mark.parametrize("kind", ["umi", "uma"])
@pytest.mark.parametrize("mobility", ["random_waypoint", "constant_velocity", "static"])
@pytest.mark.parametrize("fading", ["rayleigh", "rician"])
def test_batch_of_one_follows_the_scalar_model_draw_for_draw(kind, mobility, fading):
    """One UE: the batch draws the same numbers in the same order as the scalar model, so the whole
    random model (LOS redraws, shadowing, fading, waypoints) follows it step for step."""
    params = dict(es_positions_m=ES, mobility=mobility, fading=fading, ue_speed_mps=20.0, ue_position_m=(50.0, 60.0))
    batch = make_channel_batch(kind, 1, **params)
    scalar = make_channel(kind, **params)
    rb, rs = np.random.default_rng(7), np.random.default_rng(7)
    batch.reset(rb, 4)
    scalar.reset(rs, 4)
    for _ in range(200):
        np.testing.assert_allclose(batch.snr_table_db(1e6)[0], scalar.snr_table_db(1e6), rtol=0, atol=1e-9)
        assert batch.los[0].tolist() == [scalar.is_los(i) for i in range(4)]
        batch.advance(2.5, rb)
        scalar.advance(2.5, rs)
    assert rb.random() == rs.random()  # the same amount drawn


def test_fixed_snr_batch_equals_scalar_per_ue():
    params = dict(snr_db=5.0, link_snr_db={"es1.ul": -3.0, "dl": 12.0}, reference_bandwidth_hz=20e6)
    batch = make_channel_batch("awgn", 3, **params)
    assert isinstance(batch, FixedSnrBatch) and batch.scales_with_bandwidth
    snrs = [0.0, 7.5, 19.0]
    batch.reset(np.random.default_rng(0), 3, snr_db=snrs)
    for k, s in enumerate(snrs):
        ch = make_channel("awgn", **{**params, "snr_db": s})
        ch.reset(np.random.default_rng(0), 3)
        np.testing.assert_allclose(batch.snr_table_db(5e6)[k], ch.snr_table_db(5e6), rtol=0, atol=1e-12)
        snap = batch.ue_channel(k)
        assert [snap.snr_db(i, "ul", 5e6) for i in range(3)] == [ch.snr_db(i, "ul", 5e6) for i in range(3)]
    with pytest.raises(ValueError, match="num_ues=3 SNRs"):
        batch.reset(np.random.default_rng(0), 3, snr_db=[1.0, 2.0])


def test_snr_range_draws_every_block_and_ue_uniformly():
    batch = make_channel_batch("awgn", 4000, snr_range_db=[-5.0, 15.0])
    rng = np.random.default_rng(3)
    batch.reset(rng, 2)
    first = batch.snr_table_db(1e6).copy()
    batch.advance(1.0, rng)
    second = batch.snr_table_db(1e6)
    assert not np.array_equal(first, second)
    assert np.array_equal(second[..., 0], second[..., 1])  # both links of an ES: the block's SNR
    for x in (first, second):
        assert x.min() >= -5.0 and x.max() <= 15.0
        assert abs(x.mean() - 5.0) < 4 * 20 / math.sqrt(12 * 8000)


def test_ue_channel_is_a_scalar_snapshot():
    batch = make_channel_batch("umi", 3, es_positions_m=ES)
    batch.reset(np.random.default_rng(0), 4, ue_positions_m=[(0, 0), (50, 50), (100, 10)],
                area_m=(-100, -100, 400, 400))
    for k in range(3):
        ch = batch.ue_channel(k)
        assert [ch.snr_db(i, "dl", 2e6) for i in range(4)] == pytest.approx(batch.snr_table_db(2e6)[k, :, 1].tolist(),
                                                                            abs=1e-12)
        assert [ch.is_los(i) for i in range(4)] == batch.los[k].tolist()
        assert ch.ue_position_now_m == tuple(batch.ue_positions_m[k])
        assert ch.fading_db(2, "ul") == batch.fade_db[k, 2, 0]
        sampler = ch.block_sampler(1, "ul", 2e6, np.random.default_rng(1))
        assert math.isfinite(sampler())
    with pytest.raises(ValueError, match="'k' must be in"):
        batch.ue_channel(3)
    with pytest.raises(RuntimeError, match="reset"):
        make_channel_batch("umi", 2).snr_table_db(1e6)


def test_seed_fixes_the_trajectory():
    def run(seed):
        batch = make_channel_batch("umi", 8, es_positions_m=ES, fading="rician")
        rng = np.random.default_rng(seed)
        batch.reset(rng, 4, ue_positions_m=np.full((8, 2), 60.0), area_m=(-100, -100, 400, 400))
        out = []
        for _ in range(20):
            batch.advance(4.0, rng)
            out.append(batch.snr_table_db(1e6))
        return np.stack(out)

    assert np.array_equal(run(1), run(1))
    assert not np.array_equal(run(1), run(2))


# ------------------------------------------------------------------------------------------
# statistics of large batches (all UEs at one place: independent draws of one link)
# ------------------------------------------------------------------------------------------
M = 20_000


def _batch_at(d_m, **params):
    batch = make_channel_batch("umi", M, es_positions_m=[(0.0, 0.0)], mobility="static", **params)
    batch.reset(np.random.default_rng(11), 1, ue_positions_m=np.tile([d_m, 0.0], (M, 1)),
                area_m=(-500, -500, 500, 500))
    return batch


@pytest.mark.parametrize("d_m", [15.0, 60.0, 150.0])
def test_los_state_frequency_is_the_los_probability(d_m):
    batch = _batch_at(d_m)
    p = links.los_probability_umi(d_m)
    assert abs(batch.los.mean() - p) <= 5 * math.sqrt(p * (1 - p) / M) + 1e-12


def test_shadowing_and_fading_statistics():
    batch = _batch_at(80.0, fading="rayleigh", los="nlos")
    z = batch.z[:, 0]
    assert abs(z.mean()) < 5 / math.sqrt(M) and abs(z.std() - 1.0) < 0.03
    sc = links.SCENARIOS_38901["umi"]
    pl = links.pathloss_umi_nlos_db(80.0, FC, 10.0, 1.5)
    np.testing.assert_allclose(batch.pl[:, 0], pl + sc.shadow_sigma_nlos_db * z, atol=1e-12)
    gain = 10.0 ** (batch.fade_db[:, 0, :] / 10.0)  # Rayleigh: |h|^2 ~ Exp(1), uplink and downlink
    assert abs(gain.mean() - 1.0) < 5 / math.sqrt(2 * M) and abs(gain.var() - 1.0) < 0.1
    k = 10 ** 0.9
    ric = _batch_at(80.0, fading="rician", los="los")
    gain = 10.0 ** (ric.fade_db[:, 0, :] / 10.0)
    var = (1 + 2 * k) / (1 + k) ** 2
    assert abs(gain.mean() - 1.0) < 5 * math.sqrt(var / (2 * M)) and abs(gain.var() - var) < 0.05 * var + 0.01


def test_shadowing_is_correlated_over_the_distance_moved():
    """Gudmundson: after moving d, corr(z, z') = exp(-d / d_corr) (LOS forced: d_corr = 10 m)."""
    batch = make_channel_batch("umi", M, es_positions_m=[(0.0, 0.0)], mobility="constant_velocity", los="los",
                               ue_heading_deg=90.0, ue_speed_mps=1.0)
    rng = np.random.default_rng(5)
    batch.reset(rng, 1, ue_positions_m=np.tile([100.0, 0.0], (M, 1)), area_m=(-500, -500, 500, 500))
    z0 = batch.z[:, 0].copy()
    batch.advance(7.0, rng)
    assert np.corrcoef(z0, batch.z[:, 0])[0, 1] == pytest.approx(math.exp(-7.0 / 10.0), abs=0.02)


def test_random_waypoint_batch_stays_in_its_area_and_walks_its_length():
    mob = MobilityBatch("random_waypoint", np.zeros((500, 2)), 3.0, (-50.0, -20.0, 50.0, 20.0))
    rng = np.random.default_rng(0)
    mob.reset(rng)
    for _ in range(100):
        moved = mob.advance(2.0, rng)
        assert np.all(moved <= 6.0 + 1e-9)
        assert np.all((mob.x >= -50) & (mob.x <= 50) & (mob.y >= -20) & (mob.y <= 20))
    assert isinstance(make_channel_batch("uma", 2), Tr38901Batch)
