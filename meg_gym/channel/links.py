"""Link budget: 3GPP TR 38.901 path loss, LOS probability, shadowing, fading, thermal noise.

Everything here is a pure function without state. The distance-dependent laws (path loss,
LOS probability) and :func:`fading_gain` take either floats, computed with :mod:`math` so that
the scalar channel models of :mod:`meg_gym.channel.models` call them cheaply on every block, or
numpy arrays (one entry per link), computed elementwise by the same expression: the batched
channel of :mod:`meg_gym.channel.batched` advances many UEs in one pass with them.

Sources
-------
* Path loss: 3GPP TR 38.901 (V17.0.0) Table 7.4.1-1, UMi-Street Canyon and UMa, LOS and
  NLOS. ``fc`` is in GHz and distances in metres inside the formulas; the break-point
  distance d'_BP = 4 h'_BS h'_UT f_c / c (f_c in Hz) uses effective heights h' = h - h_E,
  h_E = 1 m (note 1 of the table; for UMa h_E = 1 m holds exactly when h_UT < 13 m, where
  C(d_2D, h_UT) = 0; for taller UEs the table draws h_E at random, which we do not model).
* LOS probability: TR 38.901 Table 7.4.2-1 (UMi-Street Canyon, UMa).
* Shadow fading: log-normal with the standard deviation sigma_SF of Table 7.4.1-1 (UMi 4 /
  7.82 dB, UMa 4 / 6 dB for LOS / NLOS), correlated in space with the decorrelation
  distances of Table 7.5-6 (UMi 10 / 13 m, UMa 37 / 50 m) through the exponential model of
  Gudmundson, "Correlation model for shadow fading in mobile radio systems", Electronics
  Letters 27(23), 1991.
* Small-scale fading: block fading, one complex gain per block; Rayleigh (NLOS) or Rician
  with K factor (LOS; TR 38.901 Table 7.5-6 gives K = 9 dB for UMi and UMa LOS).
* Thermal noise: N = -174 dBm/Hz + 10 log10(B) + NF (kT at 290 K).

Validity: the table covers 10 m <= d_2D <= 5 km; shorter distances are clamped to 10 m,
longer ones are extrapolated.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numba import njit

__all__ = [
    "FADINGS",
    "MIN_DISTANCE_2D_M",
    "SCENARIOS_38901",
    "SPEED_OF_LIGHT_MPS",
    "THERMAL_NOISE_DBM_PER_HZ",
    "Tr38901Scenario",
    "breakpoint_distance_m",
    "db_to_linear",
    "fading_gain",
    "linear_to_db",
    "los_probability_uma",
    "los_probability_umi",
    "pathloss_uma_db",
    "pathloss_uma_los_db",
    "pathloss_uma_nlos_db",
    "pathloss_umi_db",
    "pathloss_umi_los_db",
    "pathloss_umi_nlos_db",
    "thermal_noise_dbm",
]

SPEED_OF_LIGHT_MPS = 299_792_458.0
THERMAL_NOISE_DBM_PER_HZ = -174.0  # 10 log10(k T) at T = 290 K, in dBm/Hz
MIN_DISTANCE_2D_M = 10.0  # lower end of TR 38.901 Table 7.4.1-1's validity range
_H_E_M = 1.0  # effective environment height (TR 38.901 Table 7.4.1-1, note 1)

# Small-scale fading kinds: 'rician' applies the K factor on LOS links and Rayleigh on NLOS
# links (TR 38.901 defines K only for LOS); 'none' keeps the power gain at 1.
FADINGS = ("none", "rayleigh", "rician")


def db_to_linear(x_db: float) -> float:
    """10^(x/10)."""
    return 10.0 ** (x_db / 10.0)


def linear_to_db(x: float) -> float:
    """10 log10(x); -inf for 0."""
    return 10.0 * math.log10(x) if x > 0 else -math.inf


def thermal_noise_dbm(bandwidth_hz: float, noise_figure_db: float = 0.0) -> float:
    """Receiver noise power N = -174 dBm/Hz + 10 log10(B) + NF, in dBm."""
    return THERMAL_NOISE_DBM_PER_HZ + 10.0 * math.log10(bandwidth_hz) + noise_figure_db


def breakpoint_distance_m(carrier_hz: float, es_height_m: float, ue_height_m: float) -> float:
    """d'_BP = 4 h'_BS h'_UT f_c / c with h' = h - 1 m (TR 38.901 Table 7.4.1-1, note 1)."""
    return 4.0 * (es_height_m - _H_E_M) * (ue_height_m - _H_E_M) * carrier_hz / SPEED_OF_LIGHT_MPS


# Table 7.4.1-1 per scenario: the LOS law (A, slope of PL1, slope of PL2's break-point term) and
# the NLOS law's PL' (A, d_3D slope, f_c slope, h_UT slope)
_PATHLOSS_UMI = (32.4, 21.0, 9.5, 22.4, 35.3, 21.3, 0.3)
_PATHLOSS_UMA = (28.0, 22.0, 9.0, 13.54, 39.08, 20.0, 0.6)


def _pathloss_link(d2d_m: float, los: bool, carrier_hz: float, es_height_m: float, ue_height_m: float,
                   a_los: float, slope1: float, bp_slope: float, a_nlos: float, d_slope: float, fc_slope: float,
                   h_slope: float) -> float:
    """One link's path loss: PL_LOS if ``los``, else PL_NLOS = max(PL_LOS, PL'), the forms UMi
    and UMa share (TR 38.901 Table 7.4.1-1), from one log10(d_3D). PL_LOS is
    PL1 = A + slope1 log10(d_3D) + 20 log10(f_c) for d_2D <= d'_BP,
    PL2 = A + 40 log10(d_3D) + 20 log10(f_c) - bp_slope log10(d'_BP^2 + (h_BS - h_UT)^2) beyond;
    PL' = A' + d_slope log10(d_3D) + fc_slope log10(f_c) - h_slope (h_UT - 1.5).
    Plain :mod:`math` on floats: called as Python by the scalar models and compiled (numba,
    :data:`_pathloss_link_jit`) in the batched channel's block update and the array forms."""
    dh = es_height_m - ue_height_m
    log_fc = math.log10(carrier_hz / 1e9)
    dbp = 4.0 * (es_height_m - _H_E_M) * (ue_height_m - _H_E_M) * carrier_hz / SPEED_OF_LIGHT_MPS
    d2d = d2d_m if d2d_m > MIN_DISTANCE_2D_M else MIN_DISTANCE_2D_M
    log_d3d = math.log10(math.sqrt(d2d * d2d + dh * dh))
    if d2d <= dbp:
        slope, bp_term = slope1, 0.0
    else:
        slope, bp_term = 40.0, bp_slope * math.log10(dbp * dbp + dh * dh)
    pl_los = a_los + slope * log_d3d + 20.0 * log_fc - bp_term
    if los:
        return pl_los
    pl = d_slope * log_d3d + a_nlos + fc_slope * log_fc - h_slope * (ue_height_m - 1.5)
    return pl_los if pl_los >= pl else pl


def _los_probability_link(d2d_m: float, d1_m: float, ue_height_m: float, c_uma: bool) -> float:
    """18/d_2D + exp(-d_2D/d1) (1 - 18/d_2D) beyond 18 m, 1 within (UMa: times the C'(h_UT)
    factor, capped at 1). d_2D is raised to 18 m first, where the expression is exactly 1
    (r = 1), so one expression covers both ranges. Python and compiled, as :func:`_pathloss_link`."""
    d = d2d_m if d2d_m > 18.0 else 18.0
    r = 18.0 / d
    p = r + math.exp(d / -d1_m) * (1.0 - r)
    if c_uma and ue_height_m > 13.0:
        c = ((ue_height_m - 13.0) / 10.0) ** 1.5
        # within 18 m p is 1 and the factor >= 1: the cap keeps it at 1
        p = p * (1.0 + c * 1.25 * (d / 100.0) ** 3.0 * math.exp(d / -150.0))  # pow, as numpy and math do
        p = p if p < 1.0 else 1.0
    return p


def _fading_link(fading: int, los: bool, k_linear: float, re: float, im: float) -> float:
    """One block's power gain |h|^2 (see :func:`fading_gain`), ``fading`` an index into
    :data:`FADINGS`. Python and compiled, as :func:`_pathloss_link`."""
    if fading == 0:
        return 1.0
    if fading == 2 and los:
        a = math.sqrt(k_linear / (k_linear + 1.0))
        b = math.sqrt(0.5 / (k_linear + 1.0))
        x, y = a + b * re, b * im
        return x * x + y * y
    return 0.5 * (re * re + im * im)


_pathloss_link_jit = njit(cache=True)(_pathloss_link)
_los_probability_link_jit = njit(cache=True)(_los_probability_link)
_fading_link_jit = njit(cache=True)(_fading_link)


@njit(cache=True)
def _pathloss_links(d2d, los, carrier_hz, es_height_m, ue_height_m, law, out):
    for i in range(d2d.shape[0]):
        out[i] = _pathloss_link_jit(d2d[i], los[i], carrier_hz, es_height_m, ue_height_m, law[0], law[1], law[2],
                                    law[3], law[4], law[5], law[6])


@njit(cache=True)
def _los_probability_links(d2d, d1_m, ue_height_m, c_uma, out):
    for i in range(d2d.shape[0]):
        out[i] = _los_probability_link_jit(d2d[i], d1_m, ue_height_m, c_uma)


@njit(cache=True)
def _fading_links(fading, los, k_linear, re, im, out):
    for i in range(re.shape[0]):
        out[i] = _fading_link_jit(fading, los[i], k_linear, re[i], im[i])


def _pathloss_db(d2d_m: Any, los: Any, carrier_hz: float, es_height_m: float, ue_height_m: float,
                 law: tuple[float, ...]) -> Any:
    """:func:`_pathloss_link` for a float, or elementwise for an array of d_2D (``los`` a bool
    or a bool array of its shape)."""
    if not isinstance(d2d_m, np.ndarray):
        return _pathloss_link(d2d_m, bool(los), carrier_hz, es_height_m, ue_height_m, *law[:7])
    d = np.ascontiguousarray(d2d_m, dtype=np.float64).ravel()
    lo = np.broadcast_to(np.asarray(los, dtype=bool), d2d_m.shape).ravel()
    out = np.empty(d.shape)
    _pathloss_links(d, lo, float(carrier_hz), float(es_height_m), float(ue_height_m), np.asarray(law[:7]), out)
    return out.reshape(d2d_m.shape)


def pathloss_umi_los_db(d2d_m: Any, carrier_hz: float, es_height_m: float = 10.0, ue_height_m: float = 1.5) -> Any:
    """UMi-Street Canyon LOS path loss (TR 38.901 Table 7.4.1-1).

    PL1 = 32.4 + 21 log10(d_3D) + 20 log10(f_c) for d_2D <= d'_BP,
    PL2 = 32.4 + 40 log10(d_3D) + 20 log10(f_c) - 9.5 log10(d'_BP^2 + (h_BS - h_UT)^2) beyond.
    """
    return _pathloss_db(d2d_m, True, carrier_hz, es_height_m, ue_height_m, _PATHLOSS_UMI)


def pathloss_umi_nlos_db(d2d_m: Any, carrier_hz: float, es_height_m: float = 10.0, ue_height_m: float = 1.5) -> Any:
    """UMi-Street Canyon NLOS path loss (TR 38.901 Table 7.4.1-1).

    PL = max(PL_UMi-LOS, PL'), PL' = 35.3 log10(d_3D) + 22.4 + 21.3 log10(f_c) - 0.3 (h_UT - 1.5).
    """
    return _pathloss_db(d2d_m, False, carrier_hz, es_height_m, ue_height_m, _PATHLOSS_UMI)


def pathloss_umi_db(d2d_m: Any, los: Any, carrier_hz: float, es_height_m: float = 10.0,
                    ue_height_m: float = 1.5) -> Any:
    """UMi-Street Canyon path loss of links in LOS state ``los``: :func:`pathloss_umi_los_db` where
    it holds, :func:`pathloss_umi_nlos_db` where not (arrays: one pass, ``los`` per link)."""
    return _pathloss_db(d2d_m, los, carrier_hz, es_height_m, ue_height_m, _PATHLOSS_UMI)


def pathloss_uma_los_db(d2d_m: Any, carrier_hz: float, es_height_m: float = 25.0, ue_height_m: float = 1.5) -> Any:
    """UMa LOS path loss (TR 38.901 Table 7.4.1-1), with h_E = 1 m.

    PL1 = 28.0 + 22 log10(d_3D) + 20 log10(f_c) for d_2D <= d'_BP,
    PL2 = 28.0 + 40 log10(d_3D) + 20 log10(f_c) - 9 log10(d'_BP^2 + (h_BS - h_UT)^2) beyond.
    """
    return _pathloss_db(d2d_m, True, carrier_hz, es_height_m, ue_height_m, _PATHLOSS_UMA)


def pathloss_uma_nlos_db(d2d_m: Any, carrier_hz: float, es_height_m: float = 25.0, ue_height_m: float = 1.5) -> Any:
    """UMa NLOS path loss (TR 38.901 Table 7.4.1-1).

    PL = max(PL_UMa-LOS, PL'), PL' = 13.54 + 39.08 log10(d_3D) + 20 log10(f_c) - 0.6 (h_UT - 1.5).
    """
    return _pathloss_db(d2d_m, False, carrier_hz, es_height_m, ue_height_m, _PATHLOSS_UMA)


def pathloss_uma_db(d2d_m: Any, los: Any, carrier_hz: float, es_height_m: float = 25.0,
                    ue_height_m: float = 1.5) -> Any:
    """UMa path loss of links in LOS state ``los``: :func:`pathloss_uma_los_db` where it holds,
    :func:`pathloss_uma_nlos_db` where not (arrays: one pass, ``los`` per link)."""
    return _pathloss_db(d2d_m, los, carrier_hz, es_height_m, ue_height_m, _PATHLOSS_UMA)


def _los_probability(d2d_m: Any, d1_m: float, ue_height_m: float, c_uma: bool) -> Any:
    """:func:`_los_probability_link` for a float, or elementwise for an array of d_2D."""
    if not isinstance(d2d_m, np.ndarray):
        return _los_probability_link(d2d_m, d1_m, ue_height_m, c_uma)
    d = np.ascontiguousarray(d2d_m, dtype=np.float64).ravel()
    out = np.empty(d.shape)
    _los_probability_links(d, float(d1_m), float(ue_height_m), bool(c_uma), out)
    return out.reshape(d2d_m.shape)


def los_probability_umi(d2d_m: Any, ue_height_m: float = 1.5) -> Any:
    """UMi-Street Canyon LOS probability (TR 38.901 Table 7.4.2-1).

    1 for d_2D <= 18 m, else 18/d_2D + exp(-d_2D/36) (1 - 18/d_2D). ``ue_height_m`` is unused
    (kept so that both scenarios share one signature).
    """
    return _los_probability(d2d_m, 36.0, ue_height_m, False)


def los_probability_uma(d2d_m: Any, ue_height_m: float = 1.5) -> Any:
    """UMa LOS probability (TR 38.901 Table 7.4.2-1).

    1 for d_2D <= 18 m, else [18/d_2D + exp(-d_2D/63)(1 - 18/d_2D)]
    (1 + C'(h_UT) 5/4 (d_2D/100)^3 exp(-d_2D/150)), C' = 0 for h_UT <= 13 m and
    ((h_UT - 13)/10)^1.5 for 13 m < h_UT <= 23 m.
    """
    return _los_probability(d2d_m, 63.0, ue_height_m, True)


def fading_gain(fading: str, los: Any, k_linear: float, re: Any, im: Any) -> Any:
    """Small-scale power gain |h|^2 (mean 1) of one block from two standard normals ``re``, ``im``.

    Rayleigh: h = (re + j im)/sqrt(2), so |h|^2 ~ Exp(1). Rician (LOS links only):
    h = sqrt(K/(K+1)) + sqrt(1/(K+1)) (re + j im)/sqrt(2). 'none': 1. Floats, or arrays of
    one entry per link (``los`` then a boolean array or a bool).
    """
    code = FADINGS.index(fading)
    if not isinstance(re, np.ndarray):
        return _fading_link(code, bool(los), k_linear, re, im)
    r = np.ascontiguousarray(re, dtype=np.float64)
    i = np.ascontiguousarray(np.broadcast_to(im, r.shape), dtype=np.float64).ravel()
    lo = np.broadcast_to(np.asarray(los, dtype=bool), r.shape).ravel()
    out = np.empty(r.size)
    _fading_links(code, lo, float(k_linear), r.ravel(), i, out)
    return out.reshape(r.shape)


@dataclass(frozen=True)
class Tr38901Scenario:
    """One TR 38.901 deployment scenario: heights, layout, path loss, LOS and shadowing laws."""

    name: str
    es_height_m: float  # h_BS (Table 7.2-1 / 7.4.1-1)
    isd_m: float  # inter-site distance (Table 7.2-1), used for the default ES layout
    pathloss_los_db: Callable[..., Any]  # (d_2D, f_c, h_BS, h_UT) -> dB
    pathloss_nlos_db: Callable[..., Any]  # the same
    pathloss_db: Callable[..., Any]  # (d_2D, LOS state, f_c, h_BS, h_UT) -> dB: each link's in its state
    los_probability: Callable[[float, float], float]
    shadow_sigma_los_db: float  # sigma_SF, Table 7.4.1-1
    shadow_sigma_nlos_db: float
    shadow_corr_los_m: float  # shadow fading decorrelation distance, Table 7.5-6
    shadow_corr_nlos_m: float
    pathloss_law: tuple[float, ...] = _PATHLOSS_UMI  # the constants of _pathloss_link (Table 7.4.1-1)
    los_d1_m: float = 36.0  # Pr_LOS's d1 (Table 7.4.2-1)
    los_c_uma: bool = False  # Pr_LOS with UMa's C'(h_UT) factor


# One row per scenario. The LOS-state process reuses the NLOS shadowing decorrelation
# distance (a simple stand-in for the spatially consistent LOS state of TR 38.901 7.6.3.3).
SCENARIOS_38901: dict[str, Tr38901Scenario] = {
    "umi": Tr38901Scenario("umi", 10.0, 200.0, pathloss_umi_los_db, pathloss_umi_nlos_db, pathloss_umi_db,
                           los_probability_umi, 4.0, 7.82, 10.0, 13.0, _PATHLOSS_UMI, 36.0, False),
    "uma": Tr38901Scenario("uma", 25.0, 500.0, pathloss_uma_los_db, pathloss_uma_nlos_db, pathloss_uma_db,
                           los_probability_uma, 4.0, 6.0, 37.0, 50.0, _PATHLOSS_UMA, 63.0, True),
}
