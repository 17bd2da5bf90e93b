"""The digital link: rate choice, block fading within a transfer, outage and HARQ.

One transfer of ``bits`` over bandwidth ``B`` at an observed SNR ``s`` (what the transmitter
knows when the transfer starts, including the current fading block) goes like this:

1. **Link abstraction** (3GPP TR 36.942 Annex A.2, the truncated attenuated Shannon bound):
   the spectral efficiency for an SNR ``x`` is 0 below ``snr_min_db``,
   ``alpha log2(1 + x)`` above it, capped at ``max_spectral_efficiency``. TR 36.942 Table
   A.2.1-1 gives alpha = 0.6, SNR_MIN = -10 dB (QPSK 1/8), Thr_MAX = 4.4 bit/s/Hz (64QAM 4/5)
   for the downlink, and alpha = 0.4, -10 dB, 2.0 bit/s/Hz (16QAM 3/4) for the uplink.
2. **Rate choice**: the transmitter picks the rate for ``s - margin_db``. Below SNR_MIN it
   repeats each code block ``n_rep`` = ceil(SNR_MIN / (s - margin)) times (linear ratio;
   the coverage-enhancement repetitions of LTE-M / NB-IoT, 3GPP TS 36.211 10.2.3, up to
   ``max_repetitions``) and combines them, so the rate is SE(SNR_MIN) / n_rep; needing more
   than ``max_repetitions`` is an outage before anything is sent.
3. **Block fading**: the transfer lasts T = bits / (B SE) and is cut into n = ceil(T / T_c)
   blocks of one coherence time T_c = 0.423 / f_D, f_D = v f_c / c (Clarke's model; Rappaport,
   *Wireless Communications*, 2nd ed., eq. 5.40.c: 36 ms at 1 m/s and 3.5 GHz). The first
   block sees the SNR the rate was chosen for; every later block, and every retransmission,
   a fresh fading draw around the large-scale SNR ``s - fade_db``.
4. **Outage and HARQ**: a block whose SNR is below the rate's threshold (the SNR at which
   the chosen spectral efficiency is achieved) is lost and sent again, up to
   ``max_retransmissions`` times. A block still lost after that fails the transfer, and the
   request with it (the caller decides what a failed request is worth). With Rayleigh
   fading the per-block outage probability at threshold x and mean SNR g is
   1 - exp(-x / g) (Goldsmith, *Wireless Communications*, eq. 4.17); Rician LOS links use
   the noncentral chi-square CDF of |h|^2.

Retransmissions draw fresh blocks (HARQ with a round trip of about a coherence time, or
retransmissions on other sub-bands); chase combining is not modelled. The numbers of lost
blocks are drawn level by level (blocks lost at attempt k ~ Binomial(blocks sent at attempt
k, p)) from one uniform per level, so a transfer of thousands of blocks costs a few draws.

Everything here is compiled (numba) and called both by the timing walk of the world core
and from Python (:func:`digital_transfer`), so live and profiled mode share one link model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

__all__ = ["LINK_FADINGS", "DigitalLink", "coherence_time_s", "decodable", "digital_transfer", "fading_cdf",
           "outage_probability", "spectral_efficiency_tr"]

SPEED_OF_LIGHT_MPS = 299_792_458.0
LINK_FADINGS = ("none", "rayleigh", "rician")  # the same codes as meg_gym.channel.links.FADINGS
_LN2 = math.log(2.0)
# layout of DigitalLink.consts (one float64 array, as the compiled walk takes it)
_EFF, _SNR_MIN, _SE_MAX, _REPS, _MARGIN, _TC, _RETX, _LAW, _K = range(9)


def coherence_time_s(speed_mps: float, carrier_hz: float) -> float:
    """T_c = 0.423 / f_D with f_D = v f_c / c (Rappaport eq. 5.40.c); inf for a UE at rest."""
    if speed_mps <= 0.0:
        return math.inf
    return 0.423 / (speed_mps * carrier_hz / SPEED_OF_LIGHT_MPS)


@dataclass(frozen=True)
class DigitalLink:
    """The digital link's settings (see the module docstring), for one direction or both.

    ``efficiency``: TR 36.942's attenuation alpha; ``snr_min_db`` / ``max_spectral_efficiency``:
    its truncation (``-inf`` / ``inf`` for the plain attenuated Shannon bound);
    ``max_repetitions``: coverage repetitions below SNR_MIN (1: none); ``margin_db``: the
    back-off of the rate below the observed SNR; ``coherence_s``: the fading block (inf: one
    block per transfer); ``max_retransmissions``: HARQ; ``fading``: the small-scale law of the
    blocks ('none', 'rayleigh', 'rician' on LOS links), ``rician_k_linear`` its K-factor."""

    efficiency: float = 0.6
    snr_min_db: float = -10.0
    max_spectral_efficiency: float = 4.4
    max_repetitions: int = 2048
    margin_db: float = 0.0
    coherence_s: float = math.inf
    max_retransmissions: int = 3
    fading: str = "none"
    rician_k_linear: float = 0.0

    @property
    def consts(self) -> np.ndarray:
        """The settings as the compiled functions take them."""
        return np.array([self.efficiency, self.snr_min_db, self.max_spectral_efficiency, float(self.max_repetitions),
                         self.margin_db, self.coherence_s, float(self.max_retransmissions),
                         float(LINK_FADINGS.index(self.fading)), self.rician_k_linear])

    @property
    def levels(self) -> int:
        """Uniforms one transfer takes: one per HARQ level (the first attempt and each retransmission)."""
        return self.max_retransmissions + 1


@njit(cache=True)
def _se(snr_db, efficiency, snr_min_db, max_se):
    """TR 36.942 A.2: 0 below SNR_MIN, alpha log2(1 + SNR), capped at Thr_MAX (bit/s/Hz)."""
    if snr_db < snr_min_db:
        return 0.0
    if snr_db > 300.0:  # 10^(snr/10) would overflow; log2(1 + s) = log2(s) to double precision
        se = efficiency * snr_db / (10.0 * math.log10(2.0))
    else:
        se = efficiency * math.log1p(10.0 ** (snr_db / 10.0)) / _LN2
    return se if se < max_se else max_se


@njit(cache=True)
def _rate(snr_db, c):
    """(spectral efficiency, repetitions, threshold SNR in dB) for a rate chosen at ``snr_db``;
    (0, 0, inf) when even ``max_repetitions`` cannot reach SNR_MIN."""
    eff, snr_min, se_max, reps_max = c[_EFF], c[_SNR_MIN], c[_SE_MAX], c[_REPS]
    if snr_db >= snr_min:
        se = _se(snr_db, eff, snr_min, se_max)
        # the SNR at which this efficiency is achieved: the rate's outage threshold
        th = 10.0 * math.log10(math.expm1(se / eff * _LN2)) if se < 1000.0 else snr_db
        return se, 1.0, th
    if not snr_db > -math.inf:
        return 0.0, 0.0, math.inf
    reps = math.ceil(10.0 ** ((snr_min - snr_db) / 10.0) - 1e-9)
    if reps > reps_max:
        return 0.0, 0.0, math.inf
    return _se(snr_min, eff, snr_min, se_max) / reps, reps, snr_min - 10.0 * math.log10(reps)


@njit(cache=True)
def _fading_cdf(law, los, k, x):
    """P(|h|^2 < x) for a block's power gain of mean 1 (``law``: index into LINK_FADINGS)."""
    if not x > 0.0:
        return 0.0
    if law == 0:
        return 1.0 if x > 1.0 else 0.0
    if law == 1 or not los or k <= 0.0:
        return -math.expm1(-x)
    # Rician: 2 (K + 1) |h|^2 is noncentral chi-square with 2 degrees of freedom and
    # noncentrality 2K; its CDF as a Poisson(K) mixture of central chi-square (Gamma(j + 1)) CDFs
    t = (k + 1.0) * x  # the Gamma argument y / 2
    log_w = -k  # log Poisson weight of j = 0
    log_term = -t  # log of e^-t t^j / j!, summed into the Gamma(j + 1) upper tail
    upper = math.exp(log_term)
    total = 0.0
    seen = 0.0
    j = 0
    while j < 100000:
        w = math.exp(log_w)
        total += w * (1.0 - upper)
        seen += w
        if seen > 1.0 - 1e-13 or (j > k and w < 1e-17):
            break
        j += 1
        log_w += math.log(k) - math.log(j)
        log_term += math.log(t) - math.log(j)
        upper += math.exp(log_term)
        upper = upper if upper < 1.0 else 1.0
    return total if total < 1.0 else 1.0


@njit(cache=True)
def _binomial(n, p, u):
    """The ``u``-quantile of Binomial(n, p): exact inversion while the pmf is representable and
    the walk short, the normal approximation with continuity correction beyond."""
    if n <= 0 or p <= 0.0:
        return 0
    if p >= 1.0:
        return n
    mean = n * p
    var = mean * (1.0 - p)
    log_p0 = n * math.log1p(-p)
    if var < 400.0 and log_p0 > -700.0:
        pmf = math.exp(log_p0)
        cdf = pmf
        k = 0
        ratio = p / (1.0 - p)
        top = mean + 40.0 * math.sqrt(var) + 40.0  # the cdf saturates below a u close to 1: stop there
        while cdf < u and k < n and k < top:
            pmf *= (n - k) / (k + 1.0) * ratio
            k += 1
            cdf += pmf
        return k
    z = _norm_ppf(u)
    k = math.floor(mean + z * math.sqrt(var) + 0.5)
    return 0 if k < 0 else (n if k > n else int(k))


@njit(cache=True)
def _norm_ppf(u):
    """Standard normal quantile by bisection on erfc (accurate to 1e-10; called rarely)."""
    u = 1e-300 if u < 1e-300 else (1.0 - 1e-16 if u > 1.0 - 1e-16 else u)
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < u:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-10:
            break
    return 0.5 * (lo + hi)


@njit(cache=True)
def _transfer(bits, bw, snr_db, fade_db, los, c, u):
    """One transfer (module docstring): (airtime s, retransmitted blocks, failed 0/1).

    ``u``: one uniform per HARQ level (``max_retransmissions + 1``)."""
    se, reps, th = _rate(snr_db - c[_MARGIN], c)
    if se <= 0.0:  # no rate reaches the receiver: an outage before anything is sent
        return 0.0, 0.0, 1.0
    per_attempt = bits / (bw * se)
    tc = c[_TC]
    blocks = 1
    if per_attempt > tc:
        blocks = int(math.ceil(per_attempt / tc - 1e-9))
    large = snr_db - fade_db
    x = th - large - 1e-9  # the tolerance keeps a rate chosen at the block's own SNR (th == s) from failing
    p = _fading_cdf(int(c[_LAW]), los, c[_K], 10.0 ** (x / 10.0) if x < 3000.0 else math.inf)
    retx_max = int(c[_RETX])
    # the first block sees the observed SNR (known when the rate was chosen); the others are fresh
    lost = (1 if snr_db < th - 1e-9 else 0) + _binomial(blocks - 1, p, u[0])
    sent = blocks
    for level in range(retx_max):
        if lost == 0:
            break
        sent += lost
        lost = _binomial(lost, p, u[level + 1])
    return sent * (per_attempt / blocks), float(sent - blocks), 1.0 if lost > 0 else 0.0


@njit(cache=True)
def _decodable(rate_snr_db, other_snr_db, c):
    """Can a receiver at ``other_snr_db`` decode a transfer whose rate was chosen for ``rate_snr_db``
    (the link's observed SNR): its SNR reaches the rate's threshold (:func:`_rate`, margin included)?"""
    se, reps, th = _rate(rate_snr_db - c[_MARGIN], c)
    return se > 0.0 and other_snr_db >= th - 1e-9


@njit(cache=True)
def _decodable_many(rate_snr_db, other_snr_db, c, out):
    for k in range(rate_snr_db.shape[0]):
        out[k] = _decodable(rate_snr_db[k], other_snr_db[k], c)


def decodable(link: DigitalLink, rate_snr_db: Any, other_snr_db: Any) -> Any:
    """Whether a third receiver (an eavesdropper) at ``other_snr_db`` can decode what ``link`` sends at
    the rate it chose for its own receiver's ``rate_snr_db``: floats give a bool, arrays a bool array.
    The rate and its threshold are :func:`_rate`'s, the one link model."""
    if np.ndim(rate_snr_db) == 0 and np.ndim(other_snr_db) == 0:
        return bool(_decodable(float(rate_snr_db), float(other_snr_db), link.consts))
    a, b = np.broadcast_arrays(np.asarray(rate_snr_db, dtype=np.float64), np.asarray(other_snr_db, dtype=np.float64))
    out = np.empty(a.size, dtype=np.bool_)
    _decodable_many(np.ascontiguousarray(a).reshape(-1), np.ascontiguousarray(b).reshape(-1), link.consts, out)
    return out.reshape(a.shape)


def spectral_efficiency_tr(snr_db: float, link: DigitalLink) -> float:
    """Bit/s/Hz of a rate chosen at ``snr_db`` under ``link``'s abstraction (repetitions included)."""
    return float(_rate(float(snr_db), link.consts)[0])


def fading_cdf(fading: str, los: bool, k_linear: float, x: float) -> float:
    """P(|h|^2 < x) of one fading block (mean gain 1)."""
    return float(_fading_cdf(LINK_FADINGS.index(fading), bool(los), float(k_linear), float(x)))


def outage_probability(link: DigitalLink, snr_db: float, rate_snr_db: float, los: bool = True) -> float:
    """Probability that a fresh block at mean SNR ``snr_db`` cannot carry a rate chosen for ``rate_snr_db``."""
    _, _, th = _rate(float(rate_snr_db), link.consts)
    x = th - float(snr_db)
    return float(_fading_cdf(LINK_FADINGS.index(link.fading), bool(los), link.rician_k_linear,
                             10.0 ** (x / 10.0) if x < 3000.0 else math.inf))


def digital_transfer(bits: float, bandwidth_hz: float, snr_db: float, link: DigitalLink, *, fade_db: float = 0.0,
                     los: bool = True, u: np.ndarray | None = None) -> tuple[float, int, bool]:
    """One transfer from Python: (airtime s, retransmitted blocks, failed); ``u`` its HARQ levels' uniforms
    (None: the median outcome, every uniform 0.5)."""
    uu = np.full(link.levels, 0.5) if u is None else np.asarray(u, dtype=np.float64)
    a, r, f = _transfer(float(bits), float(bandwidth_hz), float(snr_db), float(fade_db), bool(los), link.consts, uu)
    return float(a), int(r), bool(f)
