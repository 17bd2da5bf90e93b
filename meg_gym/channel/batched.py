"""Many UEs' channels to the same ESs, advanced together: state as arrays, one numpy pass per block.

:func:`make_channel_batch` (``kind``, ``num_ues``, the kind's parameters) gives a
:class:`ChannelBatch`: the model of ``make_channel(kind, **params)`` for each of ``num_ues``
UEs, with the UEs' own start positions (umi/uma) or SNRs (awgn/perfect) given at ``reset``.

* ``awgn`` / ``perfect`` (:class:`FixedSnrBatch`): each UE's table of link SNRs
  (:meth:`AwgnChannel._table <meg_gym.channel.models._FixedSnrChannel._table>`, overrides
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

import copy
import math
from typing import Any

import numpy as np

from meg_gym.channel.links import THERMAL_NOISE_DBM_PER_HZ, fading_gain
from meg_gym.channel.mobility import MobilityBatch, Static
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
        self._per_hz = bool(template._per_hz) or getattr(template, "_ref_bw", None) is not None

    @property
    def scales_with_bandwidth(self) -> bool:
        """True when a link's SNR falls by 10 log10(B) with the allocated bandwidth B."""
        return self._per_hz

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
        ch = copy.copy(self.template)
        ch._num_es, ch._per_hz = self.num_es, self._per_hz
        ch._base_db = self.base_db[k].T.tolist()
        return ch

    def _check_reset_done(self) -> None:
        if not self.num_es:
            raise RuntimeError(f"{type(self).__name__}.reset(rng, num_es, ...) must be called first")


class FixedSnrBatch(ChannelBatch):
    """awgn / perfect for many UEs: each UE's own ``snr_db`` (``reset``), the kind's overrides and range."""

    def reset(self, rng: np.random.Generator, num_es: int, snr_db: Any = None) -> None:
        """New episode; ``snr_db``: one SNR per UE (None: the parameters' ``snr_db`` for all)."""
        t = self.template
        n = t._check_reset(rng, num_es)
        m = self.num_ues
        snrs = [t._snr] * m if snr_db is None else [float(s) for s in np.asarray(snr_db, dtype=np.float64)]
        if len(snrs) != m or not all(-math.inf < s for s in snrs):  # NaN fails too
            raise ValueError(f"'snr_db' must hold num_ues={m} SNRs in dB, each > -inf (got {snr_db!r})")
        self._shift = 10.0 * math.log10(t._ref_bw) if t._ref_bw is not None else 0.0
        self._snr = snrs
        self.base_db = np.array([t._table(n, s) for s in snrs], dtype=np.float64).transpose(0, 2, 1) + self._shift
        self.num_es = n
        self._draw(rng)

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        """A new block: with ``snr_range_db``, new SNRs."""
        self.template._check_dt(dt_s)
        self._draw(rng)

    def _draw(self, rng: np.random.Generator) -> None:
        """With ``snr_range_db``: every UE's SNR to every ES (both links) uniform in the range."""
        if self.template._range is None:
            return
        lo, hi = self.template._range
        u = rng.random((self.num_ues, self.num_es))
        self.base_db[:] = (lo + (hi - lo) * u + self._shift)[:, :, None]

    def ue_channel(self, k: int) -> ChannelModel:
        ch = super().ue_channel(k)
        ch._snr, ch._shift, ch._uniforms, ch._u_i = self._snr[k], self._shift, [], 0
        return ch


class Tr38901Batch(ChannelBatch):
    """umi / uma for many UEs: each UE's own start position (``reset``), the kind's parameters for all."""

    def reset(self, rng: np.random.Generator, num_es: int, ue_positions_m: Any = None,
              area_m: Any = None) -> None:
        """New episode. ``ue_positions_m``: (num_ues, 2) start positions (None: the parameters'
        ``ue_position_m`` for all); ``area_m``: the walk's [x_min, y_min, x_max, y_max] (None:
        the parameters' ``area_m``, or the sites' and starts' bounding box padded by ISD/2)."""
        t = self.template
        n = t._check_reset(rng, num_es)
        m = self.num_ues
        pos = np.tile(np.asarray(t.ue_position_m, dtype=np.float64), (m, 1)) if ue_positions_m is None \
            else np.array(ue_positions_m, dtype=np.float64)
        if pos.shape != (m, 2) or not np.all(np.isfinite(pos)):
            raise ValueError(f"'ue_positions_m' must hold num_ues={m} finite [x, y] positions (got shape {pos.shape})")
        es_xy = t._layout(n)
        self._es_tx = np.asarray(t._es_tx_dbm(n), dtype=np.float64)
        # the link budget's constant terms per UE, ES and link: transmit power, receiver noise per Hz
        tx = np.stack([np.full(n, t.ue_tx_power_dbm), self._es_tx], axis=1)  # (ESs, [ul, dl])
        noise = [THERMAL_NOISE_DBM_PER_HZ + t.es_noise_figure_db, THERMAL_NOISE_DBM_PER_HZ + t.noise_figure_db]
        self._tx_dbm = np.tile(tx, (m, 1, 1))
        self._noise_dbm = np.tile(noise, (m, n, 1))  # the ES receives the uplink
        self._es_xy = np.array(es_xy, dtype=np.float64).T[:, None, :]  # (2, 1, ESs): x, y
        if area_m is None:
            area_m = t.area_m
        if area_m is None:
            pad = t.scenario.isd_m / 2.0
            xs, ys = np.concatenate([self._es_xy[0, 0], pos[:, 0]]), np.concatenate([self._es_xy[1, 0], pos[:, 1]])
            area_m = (xs.min() - pad, ys.min() - pad, xs.max() + pad, ys.max() + pad)
        x0, y0, x1, y1 = (float(a) for a in area_m)
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
        self._neg_corr_m = np.array([-t.scenario.shadow_corr_nlos_m, -t.scenario.shadow_corr_los_m])
        self.los = np.ones((m, n), dtype=bool)
        self.z = np.zeros((m, n))  # shadowing in units of sigma_SF
        self._update(rng, np.full(m, math.inf))

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        """Every UE moves by ``dt_s`` seconds, then a new large-scale state and fading block."""
        dt = self.template._check_dt(dt_s)
        self._check_reset_done()
        if dt > 0.0:
            moved = self._mob.advance(dt, rng)
        else:
            moved = np.zeros(self.num_ues)
        self._update(rng, moved)

    @property
    def ue_positions_m(self) -> np.ndarray:
        """Every UE's position now, (num_ues, 2)."""
        return self._mob.pos.T.copy()

    def _update(self, rng: np.random.Generator, moved_m: np.ndarray) -> None:
        """``_Tr38901Channel._update`` for every UE and ES at once (``moved_m``: per UE; inf draws afresh).

        The same arithmetic per link as the scalar model; the factors that depend only on the
        distance a UE moved are computed per UE (for a LOS and a NLOS link), Pr_LOS only at the
        links that redraw their LOS state."""
        t, sc = self.template, self.template.scenario
        m, n = self.num_ues, self.num_es
        u = rng.random((m, 2 * n))
        g = rng.standard_normal((m, 5 * n))
        dxy = self._mob.pos[:, :, None] - self._es_xy  # (2, UEs, ESs)
        d2d = np.hypot(dxy[0], dxy[1])
        self.d2d = d2d
        x = moved_m[:, None] / self._neg_corr_m  # -moved / d_corr, (UEs, [NLOS, LOS])
        if t.los_mode == "random":
            # LOS state: redrawn from Pr_LOS(d) with probability 1 - exp(-moved/d_corr)
            redraw = u[:, :n] < -np.expm1(x[:, :1])
            los = self.los.copy()
            los[redraw] = u[:, n:][redraw] < sc.los_probability(d2d[redraw], t.ue_height_m)
        else:
            los = np.full((m, n), t.los_mode == "los")
        self.los = los
        # Gudmundson (1991): z' = a z + sqrt(1 - a^2) w, a = exp(-moved / d_corr)
        a = np.exp(x)
        z = np.where(los, a[:, 1:], a[:, :1])
        z *= self.z
        w = np.sqrt(1.0 - a * a)
        z += np.where(los, w[:, 1:], w[:, :1]) * g[:, :n]
        self.z = z
        pl = sc.pathloss_db(d2d, los, t.carrier_hz, t.es_height_m, t.ue_height_m)
        if t.shadowing:
            pl += np.where(los, sc.shadow_sigma_los_db, sc.shadow_sigma_nlos_db) * z
        self.pl = pl
        # the fading normals per ES: uplink (re, im), downlink (re, im); as (UEs, ESs, [ul, dl])
        re, im = g[:, n::2].reshape(m, n, 2), g[:, n + 1::2].reshape(m, n, 2)
        gain = fading_gain(t.fading, los[:, :, None], t._k_linear, re, im)
        if isinstance(gain, np.ndarray):  # a new array: the dB values in its place
            fade_db = np.log10(np.maximum(gain, _MIN_GAIN, out=gain), out=gain)
            fade_db *= 10.0
        else:
            fade_db = np.full((m, n, 2), 10.0 * math.log10(max(gain, _MIN_GAIN)))
        self.fade_db = fade_db
        base = np.empty((m, n, 2))
        base[:, :, 0], base[:, :, 1] = pl, pl
        np.subtract(self._tx_dbm, base, out=base)
        base += fade_db
        base -= self._noise_dbm
        self.base_db = base

    def ue_channel(self, k: int) -> ChannelModel:
        ch = super().ue_channel(k)
        ch._es_xy, ch._es_tx = list(self.es_xy_m), self._es_tx.tolist()
        ch._mob = Static((float(self._mob.x[k]), float(self._mob.y[k])), 0.0, self.area_m)
        ch._los, ch._z, ch._d2d, ch._pl = (self.los[k].tolist(), self.z[k].tolist(), self.d2d[k].tolist(),
                                           self.pl[k].tolist())
        ch._fade_db = self.fade_db[k].T.tolist()
        return ch


def make_channel_batch(kind: str, num_ues: int, **params: Any) -> ChannelBatch:
    """``num_ues`` UEs under the channel model ``make_channel(kind, **params)`` (validated the same way)."""
    template = make_channel(kind, **params)
    cls = Tr38901Batch if hasattr(template, "scenario") else FixedSnrBatch
    return cls(template, num_ues)
