"""The digital link model: TR 36.942 rates, repetitions, block fading, outage and HARQ, closed form and simulated."""

import math

import numpy as np
import pytest

from meg_gym.channel import DigitalLink, coherence_time_s, digital_transfer, outage_probability
from meg_gym.channel.digital import _binomial, fading_cdf, spectral_efficiency_tr
from meg_gym.channel.links import fading_gain

SHANNON = dict(efficiency=1.0, snr_min_db=-math.inf, max_spectral_efficiency=math.inf)


@pytest.mark.parametrize(("rate_bps_hz", "snr_db"), [(0.5, 0.0), (2.0, 10.0), (4.0, 20.0), (1.0, -3.0)])
def test_rayleigh_block_outage_matches_the_closed_form(rate_bps_hz, snr_db):
    """P(out) = 1 - exp(-(2^(R/B) - 1) / SNR) for a rate R/B chosen off a block of mean SNR (Goldsmith eq. 4.17)."""
    link = DigitalLink(fading="rayleigh", **SHANNON)
    rate_snr_db = 10 * math.log10(2 ** rate_bps_hz - 1)
    closed = 1 - math.exp(-(2 ** rate_bps_hz - 1) / 10 ** (snr_db / 10))
    assert outage_probability(link, snr_db, rate_snr_db) == pytest.approx(closed, rel=1e-9)
    # and by simulation of the blocks' power gains
    re, im = np.random.default_rng(1).standard_normal((2, 400_000))
    gain_db = 10 * np.log10(fading_gain("rayleigh", False, 0.0, re, im))
    capacity = np.log2(1 + 10 ** ((snr_db + gain_db) / 10))
    assert float((capacity < rate_bps_hz).mean()) == pytest.approx(closed, abs=0.003)


@pytest.mark.parametrize("k_linear", [0.5, 7.94, 40.0])
def test_rician_cdf_matches_simulated_gains(k_linear):
    re, im = np.random.default_rng(2).standard_normal((2, 400_000))
    g = fading_gain("rician", True, k_linear, re, im)
    for x in (0.05, 0.3, 0.8, 1.5):
        assert fading_cdf("rician", True, k_linear, x) == pytest.approx(float((g < x).mean()), abs=0.003)
    assert fading_cdf("rician", False, k_linear, 0.3) == pytest.approx(1 - math.exp(-0.3))  # NLOS: Rayleigh


def test_tr36942_truncation_and_repetitions():
    """0 below SNR_MIN without repetitions; alpha log2(1 + SNR) between; Thr_MAX above (TR 36.942 A.2)."""
    down = DigitalLink(max_repetitions=1)
    assert spectral_efficiency_tr(-10.5, down) == 0.0
    assert spectral_efficiency_tr(5.0, down) == pytest.approx(0.6 * math.log2(1 + 10 ** 0.5))
    assert spectral_efficiency_tr(30.0, down) == 4.4
    up = DigitalLink(efficiency=0.4, max_spectral_efficiency=2.0)
    assert spectral_efficiency_tr(30.0, up) == 2.0
    # below SNR_MIN, n repetitions of SNR_MIN's rate: -20 dB needs 10 of them
    assert spectral_efficiency_tr(-20.0, DigitalLink()) == pytest.approx(0.6 * math.log2(1.1) / 10)
    assert digital_transfer(1e6, 1e6, -20.0, DigitalLink(max_repetitions=9))[2]  # an outage: nothing sent
    assert digital_transfer(1e6, 1e6, -20.0, DigitalLink(max_repetitions=9))[0] == 0.0


def test_without_fading_a_transfer_never_fails_and_takes_bits_over_rate():
    link = DigitalLink(coherence_s=0.01)
    airtime, retx, failed = digital_transfer(2e6, 1e6, 10.0, link, u=np.full(4, 0.999))
    assert (retx, failed) == (0, False)
    assert airtime == pytest.approx(2e6 / (1e6 * 0.6 * math.log2(11.0)))


def test_coherence_time_of_clarkes_model():
    assert coherence_time_s(1.0, 3.5e9) == pytest.approx(0.0362, abs=1e-4)  # the 36 ms
    assert coherence_time_s(0.0, 3.5e9) == math.inf


def test_block_fading_harq_matches_a_block_by_block_simulation():
    """Retransmissions and failures drawn level by level (binomial thinning) have the statistics of
    sending every block and every retransmission on its own fresh Rayleigh block."""
    link = DigitalLink(fading="rayleigh", margin_db=3.0, coherence_s=0.01, max_retransmissions=2)
    bits, bw, snr = 3e5, 1e6, 10.0  # 10 dB - 3 dB margin: 0.6 log2(1 + 10^0.7) bit/s/Hz; 30 blocks
    rng = np.random.default_rng(3)
    model = [digital_transfer(bits, bw, snr, link, u=rng.random(3)) for _ in range(4000)]
    p = outage_probability(link, snr, snr - 3.0)
    per_attempt = bits / (bw * spectral_efficiency_tr(snr - 3.0, link))
    blocks = math.ceil(per_attempt / 0.01)
    sim_retx, sim_fail = [], []
    for _ in range(4000):  # the first block has the SNR the rate was chosen for; the others are fresh
        lost = int((rng.random(blocks - 1) < p).sum())
        retx = 0
        for _level in range(2):
            retx += lost
            lost = int((rng.random(lost) < p).sum())
        sim_retx.append(retx)
        sim_fail.append(lost > 0)
    retx = np.array([m[1] for m in model])
    assert retx.mean() == pytest.approx(np.mean(sim_retx), rel=0.03)
    assert np.mean([m[2] for m in model]) == pytest.approx(np.mean(sim_fail), abs=0.02)
    airtime = np.array([m[0] for m in model])
    assert np.allclose(airtime, (blocks + retx) * per_attempt / blocks)


@pytest.mark.parametrize(("n", "p"), [(10, 0.3), (300, 0.05), (5000, 0.5), (10**9, 1e-9)])
def test_binomial_quantiles_have_the_binomial_law(n, p):
    u = np.random.default_rng(4).random(20000)
    k = np.array([_binomial(n, p, x) for x in u])
    assert k.mean() == pytest.approx(n * p, rel=0.03, abs=0.02)
    assert k.var() == pytest.approx(n * p * (1 - p), rel=0.08, abs=0.05)
    assert k.min() >= 0 and k.max() <= n
