"""Link budget (TR 38.901 path loss, LOS probability, noise) and the channel models."""

import copy
import doctest
import math

import numpy as np
import pytest

from meg_gym.channel import (
    CHANNELS,
    ChannelModel,
    channel_params,
    los_probability_uma,
    los_probability_umi,
    make_channel,
    pathloss_uma_los_db,
    pathloss_uma_nlos_db,
    pathloss_umi_los_db,
    pathloss_umi_nlos_db,
    thermal_noise_dbm,
)

FC = 3.5e9
C = 299_792_458.0


def _d3d(d2d, h_bs, h_ut=1.5):
    return math.hypot(d2d, h_bs - h_ut)


# ------------------------------------------------------------------------------------------
# TR 38.901 Table 7.4.1-1 against the formulas written out by hand
# ------------------------------------------------------------------------------------------
def test_umi_los_below_and_beyond_breakpoint():
    # d'_BP = 4 (10 - 1)(1.5 - 1) 3.5e9 / c = 210.1 m
    assert pathloss_umi_los_db(50.0, FC) == pytest.approx(79.0896, abs=1e-3)
    hand = 32.4 + 21 * math.log10(_d3d(50.0, 10.0)) + 20 * math.log10(3.5)
    assert pathloss_umi_los_db(50.0, FC) == pytest.approx(hand, abs=1e-9)
    dbp = 4 * 9 * 0.5 * FC / C
    hand = 32.4 + 40 * math.log10(_d3d(400.0, 10.0)) + 20 * math.log10(3.5) - 9.5 * math.log10(dbp**2 + 8.5**2)
    assert pathloss_umi_los_db(400.0, FC) == pytest.approx(hand, abs=1e-9)
    assert pathloss_umi_los_db(400.0, FC) == pytest.approx(103.2331, abs=1e-3)


def test_umi_nlos_is_max_of_los_and_nlos_formula():
    hand = 35.3 * math.log10(_d3d(100.0, 10.0)) + 22.4 + 21.3 * math.log10(3.5)
    assert pathloss_umi_nlos_db(100.0, FC) == pytest.approx(hand, abs=1e-9)
    assert pathloss_umi_nlos_db(100.0, FC) == pytest.approx(104.6438, abs=1e-3)
    assert pathloss_umi_nlos_db(100.0, FC) >= pathloss_umi_los_db(100.0, FC)


def test_uma_los_and_nlos():
    assert pathloss_uma_los_db(100.0, FC) == pytest.approx(83.1382, abs=1e-3)
    dbp = 4 * 24 * 0.5 * FC / C  # 560.4 m
    hand = 28 + 40 * math.log10(_d3d(1000.0, 25.0)) + 20 * math.log10(3.5) - 9 * math.log10(dbp**2 + 23.5**2)
    assert pathloss_uma_los_db(1000.0, FC) == pytest.approx(hand, abs=1e-9)
    assert pathloss_uma_los_db(1000.0, FC) == pytest.approx(109.4065, abs=1e-3)
    assert pathloss_uma_nlos_db(200.0, FC) == pytest.approx(114.4620, abs=1e-3)


def test_pathloss_is_continuous_at_breakpoint_and_clamped_below_10m():
    dbp = 4 * 9 * 0.5 * FC / C
    assert pathloss_umi_los_db(dbp * (1 - 1e-9), FC) == pytest.approx(pathloss_umi_los_db(dbp * (1 + 1e-9), FC),
                                                                       abs=0.05)
    assert pathloss_umi_los_db(1.0, FC) == pathloss_umi_los_db(10.0, FC)


def test_los_probability_table_7_4_2_1():
    assert los_probability_umi(10.0) == 1.0 and los_probability_uma(18.0) == 1.0
    assert los_probability_umi(100.0) == pytest.approx(18 / 100 + math.exp(-100 / 36) * (1 - 18 / 100))
    assert los_probability_uma(100.0) == pytest.approx(18 / 100 + math.exp(-100 / 63) * (1 - 18 / 100))
    assert los_probability_umi(300.0) < los_probability_umi(100.0)


def test_thermal_noise():
    assert thermal_noise_dbm(1.0) == -174.0
    assert thermal_noise_dbm(20e6, 9.0) == pytest.approx(-174 + 73.0103 + 9.0, abs=1e-3)


# ------------------------------------------------------------------------------------------
# Channel models
# ------------------------------------------------------------------------------------------
def _det(kind, **kw):
    """A deterministic link budget: no fading, no shadowing, fixed LOS state, static UE."""
    params = dict(fading="none", shadowing=False, los="los", mobility="static")
    params.update(kw)
    ch = make_channel(kind, **params)
    ch.reset(np.random.default_rng(0), 1)
    return ch


@pytest.mark.parametrize("kind", ["umi", "uma"])
def test_snr_follows_the_link_budget(kind):
    ch = _det(kind, ue_position_m=(50.0, 0.0), es_positions_m=[(0.0, 0.0)])
    pl = (pathloss_umi_los_db if kind == "umi" else pathloss_uma_los_db)(50.0, FC)
    es_tx = 30.0 if kind == "umi" else 46.0
    # the ES receives the uplink with its own noise figure (5 dB), the UE the downlink (9 dB)
    assert ch.snr_db(0, "ul", 20e6) == pytest.approx(23.0 - pl - thermal_noise_dbm(20e6, 5.0), abs=1e-9)
    assert ch.snr_db(0, "dl", 20e6) == pytest.approx(es_tx - pl - thermal_noise_dbm(20e6, 9.0), abs=1e-9)
    # the whole power goes into the allocated band: half the bandwidth, +3 dB
    assert ch.snr_db(0, "ul", 10e6) - ch.snr_db(0, "ul", 20e6) == pytest.approx(10 * math.log10(2))


@pytest.mark.parametrize("kind", ["umi", "uma"])
@pytest.mark.parametrize("los", ["los", "nlos"])
def test_snr_falls_with_distance(kind, los):
    snrs = [_det(kind, los=los, ue_position_m=(d, 0.0)).snr_db(0, "ul", 20e6) for d in (30.0, 100.0, 300.0, 1000.0)]
    assert all(a > b for a, b in zip(snrs[:-1], snrs[1:], strict=True))


@pytest.mark.parametrize("kind", ["umi", "uma"])
def test_snr_rises_with_transmit_power(kind):
    # same seed, same draws: only the power differs, even with fading and shadowing on
    a, b = make_channel(kind, ue_tx_power_dbm=10.0), make_channel(kind, ue_tx_power_dbm=23.0, es_tx_power_dbm=50.0)
    a.reset(np.random.default_rng(4), 2)
    b.reset(np.random.default_rng(4), 2)
    for i in range(2):
        assert b.snr_db(i, "ul", 5e6) - a.snr_db(i, "ul", 5e6) == pytest.approx(13.0)
        assert b.snr_db(i, "dl", 5e6) > a.snr_db(i, "dl", 5e6)


def test_per_es_transmit_power():
    ch = make_channel("uma", es_tx_power_dbm=[40.0, 43.0], es_positions_m=[(0.0, 0.0), (100.0, 0.0)],
                      fading="none", shadowing=False, los="los", mobility="static")
    ch.reset(np.random.default_rng(0), 2)
    assert ch.snr_db(1, "dl", 1e6) - ch.snr_db(0, "dl", 1e6) == pytest.approx(3.0)  # both 50 m from the UE
    with pytest.raises(ValueError, match="'channel.es_tx_power_dbm' holds 2 powers but num_es is 3"):
        make_channel("uma", es_tx_power_dbm=[40.0, 43.0]).reset(np.random.default_rng(0), 3)
    with pytest.raises(ValueError, match="holds 2 powers but 'channel.es_positions_m' holds 1 positions"):
        make_channel("uma", es_tx_power_dbm=[40.0, 43.0], es_positions_m=[(0.0, 0.0)])


def test_noise_figure_lowers_snr():
    assert _det("umi").snr_db(0, "dl", 1e6) - _det("umi", noise_figure_db=12.0).snr_db(0, "dl", 1e6) == \
        pytest.approx(3.0)
    assert _det("umi").snr_db(0, "ul", 1e6) - _det("umi", es_noise_figure_db=9.0).snr_db(0, "ul", 1e6) == \
        pytest.approx(4.0)
    # None: the ES shares the UE's figure
    assert _det("umi", es_noise_figure_db=None, noise_figure_db=7.0).snr_db(0, "ul", 1e6) == \
        pytest.approx(_det("umi", es_noise_figure_db=7.0).snr_db(0, "ul", 1e6))


@pytest.mark.parametrize("mobility", ["random_waypoint", "constant_velocity"])
def test_mobility_moves_the_ue_at_its_speed(mobility):
    ch = make_channel("umi", mobility=mobility, ue_speed_mps=2.0, fading="none", shadowing=False, los="los")
    rng = np.random.default_rng(1)
    ch.reset(rng, 2)
    start = ch.ue_position_now_m
    d0 = ch.distance_m(0)
    snr0 = ch.snr_db(0, "ul", 1e6)
    ch.advance(1.0, rng)
    assert math.dist(start, ch.ue_position_now_m) == pytest.approx(2.0, abs=1e-9)
    for _ in range(100):
        ch.advance(1.0, rng)
    assert ch.distance_m(0) != d0 and ch.snr_db(0, "ul", 1e6) != snr0
    x0, y0, x1, y1 = ch._mob.area_m
    x, y = ch.ue_position_now_m
    assert x0 <= x <= x1 and y0 <= y <= y1


def test_static_ue_stays():
    ch = make_channel("uma", mobility="static")
    rng = np.random.default_rng(1)
    ch.reset(rng, 1)
    ch.advance(10.0, rng)
    assert ch.ue_position_now_m == (50.0, 0.0)


def test_constant_velocity_reflects_at_the_border():
    ch = make_channel("umi", mobility="constant_velocity", ue_heading_deg=0.0, ue_speed_mps=10.0,
                      ue_position_m=(0.0, 0.0), area_m=(-100.0, -100.0, 100.0, 100.0), es_positions_m=[(0.0, 0.0)])
    rng = np.random.default_rng(0)
    ch.reset(rng, 1)
    ch.advance(15.0, rng)  # 150 m east: 100 to the wall, 50 back
    assert ch.ue_position_now_m == pytest.approx((50.0, 0.0))
    ch.advance(10.0, rng)  # now heading west
    assert ch.ue_position_now_m == pytest.approx((-50.0, 0.0))


def test_rayleigh_fading_has_unit_mean_power_and_new_block_per_advance():
    ch = make_channel("umi", mobility="static", shadowing=False, los="nlos")
    rng = np.random.default_rng(2)
    ch.reset(rng, 1)
    gains = []
    for _ in range(4000):
        ch.advance(0.0, rng)
        gains.append(10 ** (ch.fading_db(0, "ul") / 10))
    assert np.mean(gains) == pytest.approx(1.0, abs=0.06)
    assert np.var(gains) == pytest.approx(1.0, abs=0.15)  # Exp(1)
    assert len(set(gains)) == len(gains)


def test_rician_fading_with_large_k_is_nearly_flat():
    ch = make_channel("umi", mobility="static", shadowing=False, los="los", fading="rician", rician_k_db=30.0)
    rng = np.random.default_rng(2)
    ch.reset(rng, 1)
    gains = []
    for _ in range(500):
        ch.advance(0.0, rng)
        gains.append(10 ** (ch.fading_db(0, "dl") / 10))
    assert np.mean(gains) == pytest.approx(1.0, abs=0.01)
    assert np.std(gains) < 0.1


def test_shadowing_spread_matches_table_sigma():
    # a fresh reset draws the shadowing afresh; UMi NLOS sigma_SF = 7.82 dB
    pl = []
    for seed in range(600):
        ch = make_channel("umi", fading="none", los="nlos", mobility="static")
        ch.reset(np.random.default_rng(seed), 1)
        pl.append(ch.pathloss_db(0))
    assert np.std(pl) == pytest.approx(7.82, rel=0.1)
    assert np.mean(pl) == pytest.approx(pathloss_umi_nlos_db(50.0, FC), abs=1.0)


def test_same_seed_same_trajectory_and_deepcopy_snapshot():
    def run(ch, rng, n=20):
        out = []
        for _ in range(n):
            ch.advance(0.5, rng)
            out.append(ch.snr_db(1, "dl", 10e6))
        return out

    a, b = make_channel("uma"), make_channel("uma")
    ra, rb = np.random.default_rng(7), np.random.default_rng(7)
    a.reset(ra, 2)
    b.reset(rb, 2)
    assert run(a, ra) == run(b, rb)
    snap, rsnap = copy.deepcopy(a), copy.deepcopy(ra)
    first = run(a, ra)
    assert run(snap, rsnap) == first
    assert a.copy().snr_db(0, "ul", 1e6) == a.snr_db(0, "ul", 1e6)


def test_block_sampler_redraws_fading_only():
    ch = make_channel("umi", mobility="static")
    rng = np.random.default_rng(3)
    ch.reset(rng, 2)
    before = ch.snr_db(1, "ul", 1e6)
    draw = ch.block_sampler(1, "ul", 1e6, np.random.default_rng(9))
    draws = [draw() for _ in range(50)]
    assert len(set(draws)) == 50
    assert ch.snr_db(1, "ul", 1e6) == before
    large = before - ch.fading_db(1, "ul")
    assert np.mean([10 ** ((d - large) / 10) for d in draws]) == pytest.approx(1.0, abs=0.5)


def test_awgn_fixed_snr_and_overrides():
    ch = make_channel("awgn", snr_db=5.0, link_snr_db={"dl": 12.0, "es1": -3.0, (1, "ul"): 0.5, "es2.dl": 7.0})
    ch.reset(np.random.default_rng(0), 3)
    assert ch.snr_db(0, "ul", 1e6) == 5.0 and ch.snr_db(0, "dl", 123.0) == 12.0
    assert ch.snr_db(1, "ul", 1e6) == 0.5 and ch.snr_db(1, "dl", 1e6) == -3.0
    assert ch.snr_db(2, "dl", 1e6) == 7.0 and ch.snr_db(2, "ul", 1e6) == 5.0
    assert not ch.noiseless
    ch.advance(1.0, np.random.default_rng(0))
    assert ch.snr_table_db(1e6).tolist() == [[5.0, 12.0], [0.5, -3.0], [5.0, 7.0]]
    with pytest.raises(ValueError, match="names ES 5"):
        make_channel("awgn", link_snr_db={5: 1.0}).reset(np.random.default_rng(0), 2)
    with pytest.raises(ValueError, match="link_snr_db"):
        make_channel("awgn", link_snr_db={"up": 1.0})


def test_perfect_is_noiseless_with_nominal_snr():
    ch = make_channel("perfect")
    ch.reset(np.random.default_rng(0), 2)
    assert ch.noiseless and ch.snr_db(1, "dl", 1e6) == 10.0  # the scenario default's nominal SNR
    assert not make_channel("awgn").noiseless and not make_channel("umi").noiseless


def test_make_channel_unknown_kind_lists_known():
    with pytest.raises(ValueError) as err:
        make_channel("nope")
    assert str(err.value) == "'channel.kind' must be one of ['awgn', 'perfect', 'uma', 'umi'] (got 'nope')"
    with pytest.raises(ValueError, match=r"'channel.carrier_hz' is not a parameter of channel kind 'awgn'"):
        make_channel("awgn", carrier_hz=3e9)


@pytest.mark.parametrize(("kw", "field"), [
    ({"fading": "foo"}, "'channel.fading' must be one of ['none', 'rayleigh', 'rician'] (got 'foo')"),
    ({"carrier_hz": 1e6}, "'channel.carrier_hz'"),
    ({"noise_figure_db": -1.0}, "'channel.noise_figure_db'"),
    ({"ue_speed_mps": -1.0}, "'channel.ue_speed_mps'"),
    ({"ue_speed_mps": float("nan")}, "'channel.ue_speed_mps'"),
    ({"mobility": "teleport"}, "'channel.mobility'"),
    ({"los": "maybe"}, "'channel.los'"),
    ({"shadowing": "yes"}, "'channel.shadowing'"),
    ({"ue_position_m": (1.0,)}, "'channel.ue_position_m'"),
    ({"es_positions_m": [(0.0, 0.0), (1.0, "a")]}, "'channel.es_positions_m[1]'"),
    ({"area_m": (0.0, 0.0, -1.0, 5.0)}, "'channel.area_m'"),
    ({"area_m": (100.0, 100.0, 200.0, 200.0)}, "'channel.ue_position_m' must lie inside"),
    ({"ue_height_m": 30.0}, "'channel.ue_height_m'"),
    ({"ue_tx_power_dbm": True}, "'channel.ue_tx_power_dbm'"),
])
def test_bad_link_budget_params_name_the_field(kw, field):
    with pytest.raises(ValueError) as err:
        make_channel("umi", **kw)
    assert field in str(err.value)


def test_bad_runtime_arguments():
    ch = make_channel("umi", es_positions_m=[(0.0, 0.0)])
    with pytest.raises(RuntimeError, match="reset"):
        ch.snr_db(0, "ul", 1e6)
    with pytest.raises(ValueError, match="'channel.es_positions_m' holds 1 positions but num_es is 2"):
        ch.reset(np.random.default_rng(0), 2)
    with pytest.raises(ValueError, match="'num_es'"):
        ch.reset(np.random.default_rng(0), 0)
    with pytest.raises(ValueError, match="'rng'"):
        ch.reset(0, 1)
    ch.reset(np.random.default_rng(0), 1)
    with pytest.raises(ValueError, match="'link' must be one of"):
        ch.snr_db(0, "up", 1e6)
    with pytest.raises(ValueError, match=r"'es_index' must be in \[0, 0\] \(got 1\)"):
        ch.snr_db(1, "ul", 1e6)
    with pytest.raises(ValueError, match="'bandwidth_hz'"):
        ch.snr_db(0, "ul", 0.0)
    with pytest.raises(ValueError, match="'bandwidth_hz'"):
        ch.snr_db(0, "ul", float("nan"))
    with pytest.raises(ValueError, match="'dt_s'"):
        ch.advance(-1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="'channel.snr_db'"):
        make_channel("awgn", snr_db=float("nan"))


def test_param_tables_for_config_validators():
    params = channel_params()
    assert set(params) == set(CHANNELS) == {"awgn", "perfect", "umi", "uma"}
    assert params["awgn"] == {"snr_db": 10.0, "link_snr_db": None, "reference_bandwidth_hz": None,
                              "snr_range_db": None}
    assert params["perfect"]["snr_db"] == 10.0  # the config default (CHANNEL_DEFAULTS), not a second one
    for kind in ("umi", "uma"):
        names = CHANNELS[kind].param_names()
        for name in ("carrier_hz", "noise_figure_db", "fading", "rician_k_db", "shadowing", "ue_tx_power_dbm",
                     "es_tx_power_dbm", "es_positions_m", "ue_position_m", "ue_speed_mps"):
            assert name in names
        assert issubclass(CHANNELS[kind], ChannelModel)
    assert params["uma"]["es_height_m"] == 25.0 and params["umi"]["es_height_m"] == 10.0


def test_module_examples():
    import meg_gym.channel.models as models

    assert doctest.testmod(models).failed == 0


def test_awgn_reference_bandwidth_spreads_fixed_power():
    ch = make_channel("awgn", snr_db=10.0, reference_bandwidth_hz=20e6)
    ch.reset(np.random.default_rng(0), 1)
    assert ch.snr_db(0, "ul", 20e6) == pytest.approx(10.0)
    assert ch.snr_db(0, "ul", 5e6) == pytest.approx(10.0 + 10 * np.log10(4))  # a quarter of the band: +6 dB


def test_awgn_snr_range_draws_each_block_uniformly_and_reproducibly():
    ch = make_channel("awgn", snr_range_db=[-20.0, 20.0])
    ch.reset(np.random.default_rng(3), 2)
    seen = []
    for _ in range(400):
        ul, dl = ch.snr_lists_db(20e6)
        assert ul == dl  # both links of an ES share the block's SNR
        seen.extend(ul)
        ch.advance(1.0, np.random.default_rng(len(seen)))
    assert -20.0 <= min(seen) < -18.0 and 18.0 < max(seen) <= 20.0
    assert abs(np.mean(seen)) < 1.5
    again = make_channel("awgn", snr_range_db=[-20.0, 20.0])
    again.reset(np.random.default_rng(3), 2)
    assert again.snr_lists_db(20e6) == make_channel_at(3)


def make_channel_at(seed):
    ch = make_channel("awgn", snr_range_db=[-20.0, 20.0])
    ch.reset(np.random.default_rng(seed), 2)
    return ch.snr_lists_db(20e6)


@pytest.mark.parametrize("bad", [[5.0, -5.0], [1.0], "x", [0.0, float("nan")]])
def test_awgn_snr_range_rejects_bad_ranges(bad):
    with pytest.raises(ValueError, match="snr_range_db"):
        make_channel("awgn", snr_range_db=bad)


def test_snr_range_concentrates_with_a_smaller_share():
    ch = make_channel("awgn", snr_range_db=[0.0, 10.0], reference_bandwidth_hz=20e6)
    ch.reset(np.random.default_rng(0), 1)
    full = ch.snr_lists_db(20e6)[0][0]
    assert ch.snr_lists_db(5e6)[0][0] == pytest.approx(full + 10 * np.log10(4))
