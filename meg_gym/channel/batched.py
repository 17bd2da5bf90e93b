"""Many UEs' channels to the same ESs, advanced together: state as arrays, one compiled pass per block.

:func:`make_channel_batch` (``kind``, ``num_ues``, the kind's parameters) gives a
:class:`ChannelBatch`: the model of ``make_channel(kind, **params)`` for each of ``num_ues``
UEs, with the UEs' own start positions (umi/uma) or SNRs (awgn/perfect) given at ``reset``.

* ``awgn`` / ``perfect`` (:class:`FixedSnrBatch`): each UE's table of link SNRs
  (:meth:`link_table <meg_gym.channel.models._FixedSnrChannel.link_table>`, overrides
  included); with ``snr_range_db`` every block draws each UE's SNR per ES uniformly in the range.
* ``umi`` / ``uma`` (:class:`Tr38901Batch`): per UE and ES the LOS state, shadowing, distance,
  and per link the fading, as (UEs, ESs) arrays; the walk is a
  :class:`~meg_gym.channel.mobility.MobilityBatch`. The update is the scalar model's
  (``_Tr38901Channel._update``) with the same laws of :mod:`meg_gym.channel.links`, called on
  arrays: LOS state redrawn from Pr_LOS(d) with probability 1 - exp(-moved / d_corr), Gudmundson
  shadowing, Rayleigh/Rician block fading, thermal noise. Per block it draws, per UE and ES,
  2 uniforms and 5 normals, laid out per UE as the scalar model lays them out.

The random streams are drawn as arrays, so UE k of a batch is not step-for-step identical to a
scalar model driven by the same generator; the model is the same (``tests/channel/test_channel_batch.py``
checks the deterministic parts against the scalar model to 1e-12 and the random ones on their
statistics). :meth:`ChannelBatch.ue_channel` gives one UE's state as a scalar
:class:`~meg_gym.channel.models.ChannelModel` (live mode runs the transmission on it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from meg_gym.channel.links import (
    FADINGS,
    THERMAL_NOISE_DBM_PER_HZ,
    _fading_link_jit,
    _los_probability_link_jit,
    _pathloss_link_jit,
)
from meg_gym.channel.mobility import MobilityBatch
from meg_gym.channel.models import _MIN_GAIN, ChannelModel, _check_bandwidth, make_channel

__all__ = ["ChannelBatch", "FixedSnrBatch", "Tr38901Batch", "make_channel_batch"]


class ChannelBatch:
    """``num_ues`` UEs' links to the same ESs under one channel model (see the module docstring).

    ``base_db`` (UEs, ESs, 2) holds the current SNRs, ``[..., 0]`` uplink and ``[..., 1]``
    downlink, per Hz when :attr:`scales_with_bandwidth` (subtract 10 log10(B)), else in dB.
    """

    def __init__(self, template: ChannelModel, num_ues: int) -> None:
        if isinstance(num_ues, bool) or not isinstance(num_ues, (int, np.integer)) or num_ues < 1:
            raise ValueError(f"'num_ues' must be an integer >= 1 (got {num_ues!r})")
        self.template = template  # holds the validated parameters; never reset itself
        self.kind = template.kind
        self.noiseless = template.noiseless
        self.num_ues = int(num_ues)
        self.num_es = 0
        self.base_db = np.zeros((self.num_ues, 0, 2))
        # per-Hz SNRs: the link-budget kinds, and the fixed kinds given a reference bandwidth
        self._per_hz = template.scales_with_bandwidth

    @property
    def scales_with_bandwidth(self) -> bool:
        """True when a link's SNR falls by 10 log10(B) with the allocated bandwidth B."""
        return self._per_hz

    @property
    def link_state(self) -> np.ndarray:
        """(UEs, ESs, 3): per link its current block's small-scale fading in dB (uplink,
        downlink) and whether it is line of sight (1/0), as the digital link model
        (:mod:`meg_gym.channel.digital`) takes them; no fading here (zeros)."""
        z = self.__dict__.get("_zeros")
        if z is None or z.shape[:2] != self.base_db.shape[:2]:
            z = self._zeros = np.zeros(self.base_db.shape[:2] + (3,))
        return z

    def snr_table_db(self, bandwidth_hz: float) -> np.ndarray:
        """Every UE's SNR to every ES over ``bandwidth_hz``, shape (num_ues, num_es, 2)."""
        self._check_reset_done()
        _check_bandwidth(bandwidth_hz)
        if self._per_hz:
            return self.base_db - 10.0 * math.log10(bandwidth_hz)
        return self.base_db.copy()

    def ue_channel(self, k: int) -> ChannelModel:
        """UE ``k``'s channel now, as a scalar model in that state: a snapshot to read SNRs from
        and transmit over (live mode); it does not follow the batch, nor walk on (a static UE)."""
        self._check_reset_done()
        if not 0 <= k < self.num_ues:
            raise ValueError(f"'k' must be in [0, {self.num_ues - 1}] (got {k!r})")
        return self.template.with_state(self.base_db[k], **self._state_of(k))

    def _state_of(self, k: int) -> dict[str, Any]:
        """UE ``k``'s state beyond its SNRs, as the kind's :meth:`ChannelModel.with_state` takes it."""
        return {}

    def _check_reset_done(self) -> None:
        if not self.num_es:
            raise RuntimeError(f"{type(self).__name__}.reset(rng, num_es, ...) must be called first")


class FixedSnrBatch(ChannelBatch):
    """awgn / perfect for many UEs: each UE's own ``snr_db`` (``reset``), the kind's overrides and range."""

    def reset(self, rng: np.random.Generator, num_es: int, snr_db: Any = None) -> None:
        """New episode; ``snr_db``: one SNR per UE (None: the parameters' ``snr_db`` for all)."""
        t = self.template
        n = t.check_reset(rng, num_es)
        m = self.num_ues
        snrs = [t.nominal_snr_db] * m if snr_db is None else [float(s) for s in np.asarray(snr_db, dtype=np.float64)]
        if len(snrs) != m or not all(-math.inf < s for s in snrs):  # NaN fails too
            raise ValueError(f"'snr_db' must hold num_ues={m} SNRs in dB, each > -inf (got {snr_db!r})")
        ref = t.reference_bandwidth_hz
        self._shift = 10.0 * math.log10(ref) if ref is not None else 0.0
        self._snr = snrs
        self._blk, self._blk_i, self._blk_rng = np.empty((0,)), 0, None  # snr_range_db's block of SNRs
        self.base_db = np.array([t.link_table(n, s) for s in snrs], dtype=np.float64).transpose(0, 2, 1) + self._shift
        self.num_es = n
        self._draw(rng)

    def advance(self, dt_s: Any, rng: np.random.Generator) -> None:
        """A new block: with ``snr_range_db``, new SNRs (``dt_s``: one time step, or one per UE)."""
        _check_dts(self.template, dt_s, self.num_ues)
        self._draw(rng)

    def _draw(self, rng: np.random.Generator) -> None:
        """With ``snr_range_db``: every UE's SNR to every ES (both links) uniform in the range, from
        blocks of draws made ahead (the same uniforms in the same order as one draw per block; a
        different generator than the last call's starts afresh, so a new seed is reproducible)."""
        if self.template.snr_range_db is None:
            return
        if rng is not self._blk_rng or self._blk_i >= len(self._blk):
            lo, hi = self.template.snr_range_db
            b = max(1, 4096 // (self.num_ues * self.num_es))
            self._blk = lo + (hi - lo) * rng.random((b, self.num_ues, self.num_es)) + self._shift
            self._blk_i, self._blk_rng = 0, rng
        self.base_db[:] = self._blk[self._blk_i][:, :, None]
        self._blk_i += 1

    def _state_of(self, k: int) -> dict[str, Any]:
        return {"snr_db": self._snr[k]}


class Tr38901Batch(ChannelBatch):
    """umi / uma for many UEs: each UE's own start position (``reset``), the kind's parameters for all."""

    def reset(self, rng: np.random.Generator, num_es: int, ue_positions_m: Any = None,
              area_m: Any = None) -> None:
        """New episode. ``ue_positions_m``: (num_ues, 2) start positions (None: the parameters'
        ``ue_position_m`` for all); ``area_m``: the walk's [x_min, y_min, x_max, y_max] (None:
        the parameters' ``area_m``, or the sites' and starts' bounding box padded by ISD/2)."""
        t = self.template
        n = t.check_reset(rng, num_es)
        m = self.num_ues
        pos = np.tile(np.asarray(t.ue_position_m, dtype=np.float64), (m, 1)) if ue_positions_m is None \
            else np.array(ue_positions_m, dtype=np.float64)
        if pos.shape != (m, 2) or not np.all(np.isfinite(pos)):
            raise ValueError(f"'ue_positions_m' must hold num_ues={m} finite [x, y] positions (got shape {pos.shape})")
        es_xy = t.es_layout(n)
        self._es_tx = np.asarray(t.es_tx_dbm(n), dtype=np.float64)
        noise = [THERMAL_NOISE_DBM_PER_HZ + t.es_noise_figure_db, THERMAL_NOISE_DBM_PER_HZ + t.noise_figure_db]
        self._es_xy = np.array(es_xy, dtype=np.float64).T[:, None, :]  # (2, 1, ESs): x, y
        x0, y0, x1, y1 = (float(a) for a in (area_m if area_m is not None else self.walk_area(n, pos)))
        outside = ~((x0 <= pos[:, 0]) & (pos[:, 0] <= x1) & (y0 <= pos[:, 1]) & (pos[:, 1] <= y1))
        if outside.any():
            k = int(np.flatnonzero(outside)[0])
            raise ValueError(f"'ue_positions_m[{k}]' must lie inside the area {[x0, y0, x1, y1]} "
                             f"(got {pos[k].tolist()})")
        self.es_xy_m = tuple(es_xy)
        self.area_m = (x0, y0, x1, y1)
        speed = 0.0 if t.mobility == "static" else t.ue_speed_mps
        self._mob = MobilityBatch(t.mobility, pos, speed, self.area_m, t.ue_heading_deg)
        self._mob.reset(rng)
        self.num_es = n
        self._es_x, self._es_y = self._es_xy[0, 0].copy(), self._es_xy[1, 0].copy()
        sc = t.scenario
        # the block's constants: [LOS mode (0 random, 1 los, 2 nlos), Pr_LOS's UMa factor, fading
        # (index into FADINGS), shadowing] and [carrier, heights, Pr_LOS d1, shadow sigma LOS/NLOS,
        # decorrelation LOS/NLOS, Rician K, UE transmit power, uplink and downlink noise (the ES
        # receives the uplink), the fading gain's floor, then each ES's transmit power]
        self._pathloss_law = np.array(sc.pathloss_law)
        self._los_law = np.array([("random", "los", "nlos").index(t.los_mode), int(sc.los_c_uma),
                                  FADINGS.index(t.fading), int(bool(t.shadowing))], dtype=np.int64)
        self._consts = np.array([t.carrier_hz, t.es_height_m, t.ue_height_m, sc.los_d1_m, sc.shadow_sigma_los_db,
                                 sc.shadow_sigma_nlos_db, sc.shadow_corr_los_m, sc.shadow_corr_nlos_m,
                                 t.rician_k_linear, t.ue_tx_power_dbm, noise[0], noise[1], _MIN_GAIN,
                                 *self._es_tx.tolist()])
        self.los = np.ones((m, n), dtype=bool)
        self.z = np.zeros((m, n))  # shadowing in units of sigma_SF
        self._update(rng, np.full(m, math.inf))

    def walk_area(self, num_es: int, ue_positions_m: Any = None) -> tuple[float, float, float, float]:
        """The area the UEs walk: the parameters' ``area_m``, else the bounding box of the ES sites (and
        the given UE positions) padded by half the inter-site distance."""
        t = self.template
        if t.area_m is not None:
            return tuple(float(a) for a in t.area_m)
        xy = np.array(t.es_layout(num_es), dtype=np.float64)
        if ue_positions_m is not None:
            xy = np.concatenate([xy, np.asarray(ue_positions_m, dtype=np.float64).reshape(-1, 2)])
        pad = t.scenario.isd_m / 2.0
        (x0, y0), (x1, y1) = xy.min(axis=0) - pad, xy.max(axis=0) + pad
        return float(x0), float(y0), float(x1), float(y1)

    def advance(self, dt_s: Any, rng: np.random.Generator) -> None:
        """Every UE moves by ``dt_s`` seconds (one time step, or one per UE), then a new
        large-scale state and fading block."""
        dt = _check_dts(self.template, dt_s, self.num_ues)
        self._check_reset_done()
        if np.any(dt > 0.0):
            moved = self._mob.advance(dt, rng)
        else:
            moved = np.zeros(self.num_ues)
        self._update(rng, moved)

    @property
    def ue_positions_m(self) -> np.ndarray:
        """Every UE's position now, (num_ues, 2)."""
        return self._mob.pos.T.copy()

    def _update(self, rng: np.random.Generator, moved_m: np.ndarray) -> None:
        """``_Tr38901Channel._update`` for every UE and ES at once (``moved_m``: per UE; inf draws
        afresh): the random numbers drawn as two arrays, then one compiled pass over the links
        (:func:`_block`) with the laws of :mod:`meg_gym.channel.links`."""
        m, n = self.num_ues, self.num_es
        u = rng.random((m, 2 * n))
        g = rng.standard_normal((m, 5 * n))
        self.los, self.z = self.los.copy(), self.z.copy()  # new arrays: snapshots may hold the old ones
        self.d2d, self.pl = np.empty((m, n)), np.empty((m, n))
        self.fade_db, self.base_db = np.empty((m, n, 2)), np.empty((m, n, 2))
        _block(self._mob.pos, self._es_x, self._es_y, moved_m, u, g, self.los, self.z, self._los_law,
               self._pathloss_law, self._consts, self.d2d, self.pl, self.fade_db, self.base_db)
        self._state = np.concatenate([self.fade_db, self.los[..., None].astype(np.float64)], axis=2)

    @property
    def link_state(self) -> np.ndarray:
        """(UEs, ESs, 3): per link [uplink fading dB, downlink fading dB, LOS 1/0] of the current block."""
        return self._state

    def _state_of(self, k: int) -> dict[str, Any]:
        return {"es_xy_m": self.es_xy_m, "es_tx_dbm": self._es_tx.tolist(),
                "position_m": (float(self._mob.x[k]), float(self._mob.y[k])), "area_m": self.area_m,
                "los": self.los[k], "z": self.z[k], "d2d_m": self.d2d[k], "pathloss_db": self.pl[k],
                "fade_db": self.fade_db[k]}


def _check_dts(template: ChannelModel, dt_s: Any, num_ues: int) -> Any:
    """One time step (a float), or one per UE (an array of ``num_ues``), each finite and >= 0."""
    if type(dt_s) is float or np.ndim(dt_s) == 0:
        return template.check_dt(dt_s)
    dt = np.asarray(dt_s, dtype=np.float64)
    if dt.shape != (num_ues,) or not np.all((dt >= 0.0) & (dt < math.inf)):
        raise ValueError(f"'dt_s' must be one time or num_ues={num_ues} times, each finite and >= 0 "
                         f"(got shape {dt.shape})")
    return dt


def make_channel_batch(kind: str, num_ues: int, **params: Any) -> ChannelBatch:
    """``num_ues`` UEs under the channel model ``make_channel(kind, **params)`` (validated the same way)."""
    template = make_channel(kind, **params)
    cls = Tr38901Batch if hasattr(template, "scenario") else FixedSnrBatch
    return cls(template, num_ues)


@njit(cache=True)
def _block(pos, es_x, es_y, moved, u, g, los, z, flags, law, c, d2d_out, pl_out, fade_out, base_out):
    """One block of every UE's links (``Tr38901Batch._update``), as the scalar model's update
    per link with the same laws, compiled: the LOS state redrawn from Pr_LOS(d) with
    probability 1 - exp(-moved / d_corr), Gudmundson shadowing, the path loss in that state,
    the block's fading on the uplink and downlink, the SNRs per Hz. ``u`` and ``g`` hold per
    UE 2 uniforms and 5 normals per ES, laid out as the scalar model lays them out."""
    m, n = los.shape
    los_mode, c_uma, fading, shadowing = flags[0], flags[1] == 1, flags[2], flags[3] == 1
    fc, h_bs, h_ut, d1, sig_los, sig_nlos = c[0], c[1], c[2], c[3], c[4], c[5]
    corr_los, corr_nlos, k_lin, tx_ul, noise_ul, noise_dl, min_gain = c[6], c[7], c[8], c[9], c[10], c[11], c[12]
    es_tx = c[13:]
    for k in range(m):
        x_nlos, x_los = moved[k] / -corr_nlos, moved[k] / -corr_los
        redraw_p = -math.expm1(x_nlos)
        a_nlos, a_los = math.exp(x_nlos), math.exp(x_los)
        w_nlos, w_los = math.sqrt(1.0 - a_nlos * a_nlos), math.sqrt(1.0 - a_los * a_los)
        for i in range(n):
            d = math.hypot(pos[0, k] - es_x[i], pos[1, k] - es_y[i])
            d2d_out[k, i] = d
            if los_mode == 0:
                if u[k, i] < redraw_p:
                    los[k, i] = u[k, n + i] < _los_probability_link_jit(d, d1, h_ut, c_uma)
            else:
                los[k, i] = los_mode == 1
            lo = los[k, i]
            zz = (a_los if lo else a_nlos) * z[k, i]
            zz += (w_los if lo else w_nlos) * g[k, i]
            z[k, i] = zz
            pl = _pathloss_link_jit(d, lo, fc, h_bs, h_ut, law[0], law[1], law[2], law[3], law[4], law[5], law[6])
            if shadowing:
                pl += (sig_los if lo else sig_nlos) * zz
            pl_out[k, i] = pl
            j = n + 4 * i
            for link in range(2):
                gain = _fading_link_jit(fading, lo, k_lin, g[k, j + 2 * link], g[k, j + 2 * link + 1])
                f = math.log10(gain if gain > min_gain else min_gain) * 10.0
                fade_out[k, i, link] = f
                if link == 0:  # the link budget: transmit power - path loss + fading - noise per Hz
                    base_out[k, i, 0] = tx_ul - pl + f - noise_ul
                else:
                    base_out[k, i, 1] = es_tx[i] - pl + f - noise_dl
