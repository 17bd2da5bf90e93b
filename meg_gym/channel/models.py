"""Channel models: the link SNR between the UE and each ES, one table of kinds.

Every model has the same small interface (:class:`ChannelModel`):

>>> import numpy as np
>>> ch = make_channel("umi", fading="none", shadowing=False, los="los", mobility="static")
>>> ch.reset(np.random.default_rng(0), num_es=2)
>>> round(ch.snr_db(0, "ul", 20e6), 1)  # UE at (50, 0) m, ES 0 at the origin
39.9
>>> ch.advance(0.1, np.random.default_rng(1))  # mobility, then a new fading block

Kinds (:data:`CHANNELS`):

* ``perfect``: no noise at all (``noiseless`` is True: a transmission returns the tensor
  bit-identical); ``snr_db`` (default 30 dB) only sets the rate, so airtime stays finite.
* ``awgn``: a fixed SNR in dB on every link whatever the bandwidth, the setting of the MEG
  case study (-20..30 dB typical); ``link_snr_db`` overrides it per link or per ES.
* ``umi`` / ``uma``: the 3GPP TR 38.901 link budget of :mod:`meg_gym.channel.links`
  (path loss, LOS probability, correlated log-normal shadowing, Rayleigh/Rician block
  fading, thermal noise with a noise figure) for a moving UE and fixed ESs:

  SNR_dB = P_tx,dBm - PL_dB - SF_dB + 10 log10|h|^2 - (-174 + 10 log10 B + NF).

  The transmitter puts its whole power ``*_tx_power_dbm`` into the allocated bandwidth B,
  so halving B raises the SNR by 3 dB. Uplink and downlink share path loss and shadowing
  and draw their own fading.

State is plain floats and short lists, so ``copy.deepcopy`` (or :meth:`ChannelModel.copy`)
snapshots a model cheaply; ``advance`` and ``snr_db`` allocate next to nothing. All
randomness comes from the ``np.random.Generator`` passed to ``reset`` / ``advance``. The
link budget draws the same amount of random numbers per ``advance`` whatever its options
(mobility draws its waypoints on top), so switching e.g. fading off does not shift the
other random streams.
"""

from __future__ import annotations

import copy
import inspect
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from meg_gym.channel._validate import check_choice, check_int, check_number, check_position, show
from meg_gym.channel.links import (
    FADINGS,
    SCENARIOS_38901,
    THERMAL_NOISE_DBM_PER_HZ,
    Tr38901Scenario,
    db_to_linear,
    fading_gain,
)
from meg_gym.channel.mobility import MOBILITIES, Mobility, Static
from meg_gym.config import CHANNEL_DEFAULTS  # the one place the kinds' defaults live

_TR = CHANNEL_DEFAULTS["umi"]  # umi and uma share them

__all__ = [
    "CHANNELS",
    "LINKS",
    "LOS_MODES",
    "AwgnChannel",
    "ChannelModel",
    "PerfectChannel",
    "UmaChannel",
    "UmiChannel",
    "channel_params",
    "make_channel",
]

LINKS = ("ul", "dl")  # uplink: UE -> ES; downlink: ES -> UE
_LINK_INDEX = {"ul": 0, "dl": 1}
LOS_MODES = ("random", "los", "nlos")  # random: drawn from the LOS probability of TR 38.901 Table 7.4.2-1
_MIN_GAIN = 1e-12  # floor of the fading power gain (-120 dB) so that its dB value stays finite


def _check_bandwidth(bandwidth_hz: Any) -> None:
    try:
        ok = 0.0 < bandwidth_hz < math.inf
    except TypeError:
        ok = False
    if not ok:
        raise ValueError(f"'bandwidth_hz' must be a finite number > 0 (got {show(bandwidth_hz)})")


class ChannelModel:
    """The SNR of every UE-ES link, as it evolves with time.

    ``reset(rng, num_es)`` starts a new world; ``advance(dt_s, rng)`` moves the UE by
    ``dt_s`` seconds and draws a new fading block; ``snr_db(es_index, link, bandwidth_hz)``
    reads the current SNR of a link ('ul' or 'dl') for the allocated bandwidth.
    ``noiseless`` is True only for the perfect channel. The constructor's keyword arguments
    are the kind's parameters: :meth:`param_names` / :meth:`param_defaults`.
    """

    kind: ClassVar[str] = ""
    noiseless: ClassVar[bool] = False
    _per_hz: ClassVar[bool] = False  # True: the stored SNRs are per Hz, subtract 10 log10(B)

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._num_es = 0
        self._base_db: list[list[float]] = [[], []]  # [link][es]

    # -- the kind's parameters ------------------------------------------------------------
    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        """Parameter name -> default value, from the constructor's signature."""
        sig = inspect.signature(cls.__init__)
        return {n: p.default for n, p in sig.parameters.items()
                if n != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY}

    @classmethod
    def param_names(cls) -> tuple[str, ...]:
        """The parameter names this kind accepts (besides ``kind``)."""
        return tuple(cls.param_defaults())

    def params(self) -> dict[str, Any]:
        """The parameters this model was built with."""
        return dict(self._params)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._params.items())
        return f"{type(self).__name__}({args})"

    # -- runtime ----------------------------------------------------------------------------
    @property
    def num_es(self) -> int:
        """Number of ESs since the last ``reset`` (0 before it)."""
        return self._num_es

    def reset(self, rng: np.random.Generator, num_es: int) -> None:
        """Start a new world with ``num_es`` ESs."""
        raise NotImplementedError

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        """Move on by ``dt_s`` seconds: mobility, then a new fading block."""
        raise NotImplementedError

    def snr_db(self, es_index: int, link: str, bandwidth_hz: float) -> float:
        """Current SNR in dB of ``link`` ('ul' or 'dl') of ES ``es_index`` over ``bandwidth_hz``."""
        try:
            li = _LINK_INDEX[link]
        except (KeyError, TypeError):
            raise ValueError(f"'link' must be one of {list(LINKS)} (got {show(link)})") from None
        i = self._es(es_index)
        _check_bandwidth(bandwidth_hz)
        base = self._base_db[li][i]
        return base - 10.0 * math.log10(bandwidth_hz) if self._per_hz else base

    @property
    def scales_with_bandwidth(self) -> bool:
        """True when a link's SNR falls by 10 log10(B) with the allocated bandwidth B (fixed power, kTB noise)."""
        return bool(self._per_hz)

    def with_state(self, base_db: Any, **state: Any) -> ChannelModel:
        """A copy of this model in a given state: ``base_db`` (ESs, 2) the links' SNRs ([:, 0] up,
        [:, 1] down; per Hz when :attr:`scales_with_bandwidth`), plus the kind's own state
        (see the subclasses). A snapshot to read SNRs from and transmit over; it does not walk on."""
        ch = copy.copy(self)
        base = np.asarray(base_db, dtype=np.float64)
        ch._num_es = base.shape[0]
        ch._per_hz = self.scales_with_bandwidth
        ch._base_db = base.T.tolist()
        return ch

    def snr_lists_db(self, bandwidth_hz: float) -> tuple[list[float], list[float]]:
        """Uplink and downlink SNRs (dB) of every ES over ``bandwidth_hz``, as two lists (the env's fast path)."""
        if not self._num_es:
            self._es(0)  # raises: reset() first
        _check_bandwidth(bandwidth_hz)
        ul, dl = self._base_db
        if self._per_hz:
            off = 10.0 * math.log10(bandwidth_hz)
            return [v - off for v in ul], [v - off for v in dl]
        return list(ul), list(dl)

    def snr_table_db(self, bandwidth_hz: float) -> np.ndarray:
        """SNRs of all links, shape (num_es, 2): column 0 uplink, column 1 downlink."""
        self._es(0)
        check_number("bandwidth_hz", bandwidth_hz, lo=0.0, lo_open=True)
        out = np.array(self._base_db, dtype=np.float64).T
        return out - 10.0 * math.log10(bandwidth_hz) if self._per_hz else out

    def block_sampler(self, es_index: int, link: str, bandwidth_hz: float,
                      rng: np.random.Generator) -> Callable[[], float]:
        """A callable that draws the SNR (dB) of a fresh fading block on this link, for retransmissions.

        Position, LOS state and shadowing stay as they are; only small-scale fading is
        redrawn. The model's own state is not changed. Fixed-SNR kinds return the same SNR.
        """
        snr = self.snr_db(es_index, link, bandwidth_hz)
        return lambda: snr

    def copy(self) -> ChannelModel:
        """A deep copy (a snapshot of the state)."""
        return copy.deepcopy(self)

    def _es(self, es_index: Any) -> int:
        try:
            i = operator.index(es_index)
        except TypeError:
            raise ValueError(f"'es_index' must be an int (got {show(es_index)})") from None
        if not 0 <= i < self._num_es:
            if self._num_es == 0:
                raise RuntimeError(f"{type(self).__name__}.reset(rng, num_es) must be called first")
            raise ValueError(f"'es_index' must be in [0, {self._num_es - 1}] (got {i})")
        return i

    @staticmethod
    def check_reset(rng: Any, num_es: Any) -> int:
        """``num_es`` as an int >= 1, after checking ``rng`` is a Generator (what ``reset`` takes)."""
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"'rng' must be a numpy.random.Generator (got {show(rng)})")
        return check_int("num_es", num_es, lo=1)

    @staticmethod
    def check_dt(dt_s: Any) -> float:
        """``dt_s`` as a float >= 0 (what ``advance`` takes)."""
        if type(dt_s) is float and 0.0 <= dt_s < math.inf:  # the common case, checked cheaply
            return dt_s
        return check_number("dt_s", dt_s, lo=0.0)


# ------------------------------------------------------------------------------------------
# Fixed SNR: awgn and perfect
# ------------------------------------------------------------------------------------------
def _parse_overrides(value: Any) -> dict[tuple[str, Any], float]:
    """``link_snr_db`` keys -> ('link', li) | ('es', i) | ('pair', (i, li))."""
    name = "channel.link_snr_db"
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError(f"'{name}' must be a mapping of link -> SNR in dB (got {show(value)})")
    out: dict[tuple[str, Any], float] = {}
    for key, snr in value.items():
        k = _override_key(key)
        if k is None:
            raise ValueError(f"'{name}' keys must be 'ul', 'dl', an ES index i, 'es<i>', 'es<i>.ul', 'es<i>.dl' "
                             f"or a tuple (i, 'ul'|'dl') (got {show(key)})")
        out[k] = check_number(f"{name}[{key!r}]", snr, finite=False)
    return out


def _override_key(key: Any) -> tuple[str, Any] | None:
    if isinstance(key, str):
        if key in _LINK_INDEX:
            return ("link", _LINK_INDEX[key])
        if key.startswith("es"):
            head, _, link = key[2:].partition(".")
            if head.isdigit() and (link == "" or link in _LINK_INDEX):
                return ("es", int(head)) if link == "" else ("pair", (int(head), _LINK_INDEX[link]))
        return None
    if isinstance(key, tuple) and len(key) == 2 and key[1] in _LINK_INDEX:
        try:
            i = operator.index(key[0])
        except TypeError:
            return None
        return ("pair", (i, _LINK_INDEX[key[1]])) if i >= 0 else None
    try:
        i = operator.index(key)
    except TypeError:
        return None
    return ("es", i) if i >= 0 and not isinstance(key, bool) else None


class _FixedSnrChannel(ChannelModel):
    """Every link at ``snr_db``, unless ``link_snr_db`` overrides it.

    Without ``reference_bandwidth_hz`` the SNR holds whatever the bandwidth. With it, the SNR
    is the one over that bandwidth: a transmitter of fixed power spread over a share ``s`` of
    it sees ``snr_db - 10 log10(s)`` (noise power grows with bandwidth, kTB).
    """

    def __init__(self, *, snr_db: float, link_snr_db: Mapping[Any, float] | None,
                 reference_bandwidth_hz: float | None = None,
                 snr_range_db: Sequence[float] | None = None) -> None:
        super().__init__()
        self._range: tuple[float, float] | None = None
        self._uniforms: list[float] = []  # snr_range_db's draws, a block at a time (never mutated)
        self._u_i = 0
        if snr_range_db is not None:
            ok = not isinstance(snr_range_db, (str, bytes, Mapping)) and hasattr(snr_range_db, "__len__") \
                and len(snr_range_db) == 2
            lo, hi = (check_number(f"channel.snr_range_db[{i}]", v) for i, v in enumerate(snr_range_db)) if ok \
                else (0.0, -1.0)
            if not ok or not lo <= hi:
                raise ValueError(f"'channel.snr_range_db' must be [low, high] in dB with low <= high "
                                 f"(got {show(snr_range_db)})")
            self._range = (lo, hi)
        if reference_bandwidth_hz is not None:
            check_number("channel.reference_bandwidth_hz", reference_bandwidth_hz, lo=0.0, lo_open=True)
        self._ref_bw = reference_bandwidth_hz
        self._snr = check_number("channel.snr_db", snr_db, finite=False)
        if self._snr == -math.inf:
            raise ValueError(f"'channel.snr_db' must be a number > -inf, not NaN (got {show(snr_db)})")
        self._overrides = _parse_overrides(link_snr_db)
        self._params = {"snr_db": snr_db, "link_snr_db": link_snr_db,
                        "reference_bandwidth_hz": reference_bandwidth_hz}
        if snr_range_db is not None:
            self._params["snr_range_db"] = snr_range_db

    @property
    def nominal_snr_db(self) -> float:
        """The ``snr_db`` parameter: every link's SNR unless ``link_snr_db`` overrides it."""
        return self._snr

    @property
    def reference_bandwidth_hz(self) -> float | None:
        """The bandwidth ``snr_db`` holds over (None: the SNR holds whatever the bandwidth)."""
        return self._ref_bw

    @property
    def snr_range_db(self) -> tuple[float, float] | None:
        """``(low, high)``: every block draws each ES's SNR uniformly in it; None: fixed SNRs."""
        return self._range

    @property
    def scales_with_bandwidth(self) -> bool:
        return self._ref_bw is not None

    def with_state(self, base_db: Any, snr_db: float | None = None, **state: Any) -> ChannelModel:
        """:meth:`ChannelModel.with_state`; ``snr_db``: the UE's nominal SNR (default: the parameter's)."""
        ch = super().with_state(base_db)
        ch._snr = self._snr if snr_db is None else float(snr_db)
        ch._shift = 10.0 * math.log10(self._ref_bw) if self._ref_bw is not None else 0.0
        ch._uniforms, ch._u_i = [], 0
        return ch

    def reset(self, rng: np.random.Generator, num_es: int) -> None:
        n = self.check_reset(rng, num_es)
        table = self.link_table(n, self._snr)
        self._shift = 0.0
        if self._ref_bw is not None:  # store per-Hz values; snr_db() subtracts 10 log10(B)
            self._shift = 10.0 * math.log10(self._ref_bw)
            table = [[v + self._shift for v in row] for row in table]
            self._per_hz = True
        self._base_db = table
        self._num_es = n
        self._uniforms, self._u_i = [], 0
        self._draw(rng)

    def link_table(self, n: int, snr_db: float) -> list[list[float]]:
        """[uplink, downlink] SNR of every ES in dB over the reference bandwidth: ``snr_db``
        unless ``link_snr_db`` overrides it (the more specific key wins)."""
        table = [[snr_db] * n, [snr_db] * n]
        for order in ("link", "es", "pair"):  # the more specific key wins
            for (what, where), snr in self._overrides.items():
                if what != order:
                    continue
                if what == "link":
                    table[where] = [snr] * n
                    continue
                i, links = (where, (0, 1)) if what == "es" else (where[0], (where[1],))
                if i >= n:
                    raise ValueError(f"'channel.link_snr_db' names ES {i} but num_es is {n}")
                for li in links:
                    table[li][i] = snr
        return table

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        self.check_dt(dt_s)
        self._draw(rng)

    def _draw(self, rng: np.random.Generator) -> None:
        """With ``snr_range_db``: a new block, every ES's SNR (both links) uniform in the range."""
        if self._range is None:
            return
        lo, hi = self._range
        n, j = self._num_es, self._u_i
        if j + n > len(self._uniforms):  # 64 blocks of uniforms per generator call
            self._uniforms, j = rng.random(64 * n).tolist(), 0
        u = self._uniforms
        ul, dl = self._base_db
        for i in range(n):
            ul[i] = dl[i] = lo + (hi - lo) * u[j + i] + self._shift
        self._u_i = j + n


class AwgnChannel(_FixedSnrChannel):
    """AWGN at a fixed SNR, the MEG case study's channel.

    ``snr_db``: the SNR of every link, in dB, whatever the allocated bandwidth.
    ``link_snr_db``: overrides, keys 'ul' / 'dl' (all ESs), an ES index or 'es<i>' (both
    links of ES i), 'es<i>.ul' / 'es<i>.dl' or (i, 'ul'|'dl'); the most specific key wins.
    ``snr_range_db``: ``[low, high]``: instead, every fading block (each ``reset`` and
    ``advance``) draws each ES's SNR (both links) uniformly in the range: the case study
    swept over SNR, one request at a time.
    """

    kind = "awgn"

    def __init__(self, *, snr_db: float = CHANNEL_DEFAULTS["awgn"]["snr_db"],
                 link_snr_db: Mapping[Any, float] | None = None, reference_bandwidth_hz: float | None = None,
                 snr_range_db: Sequence[float] | None = None) -> None:
        super().__init__(snr_db=snr_db, link_snr_db=link_snr_db, reference_bandwidth_hz=reference_bandwidth_hz,
                         snr_range_db=snr_range_db)


class PerfectChannel(_FixedSnrChannel):
    """No noise at all: tensors arrive bit-identical (``noiseless``).

    ``snr_db`` (nominal, default 10 dB, the scenario default's) and ``link_snr_db`` only set
    the rate, so airtime is finite.
    """

    kind = "perfect"
    noiseless = True

    def __init__(self, *, snr_db: float = CHANNEL_DEFAULTS["perfect"]["snr_db"],
                 link_snr_db: Mapping[Any, float] | None = None, reference_bandwidth_hz: float | None = None) -> None:
        super().__init__(snr_db=snr_db, link_snr_db=link_snr_db, reference_bandwidth_hz=reference_bandwidth_hz)


# ------------------------------------------------------------------------------------------
# 3GPP TR 38.901 link budget: umi and uma
# ------------------------------------------------------------------------------------------
class _Tr38901Channel(ChannelModel):
    """A moving UE and fixed ESs under a TR 38.901 scenario (see the module docstring)."""

    scenario: ClassVar[Tr38901Scenario]
    _per_hz = True

    @classmethod
    def param_defaults(cls) -> dict[str, Any]:
        out = super().param_defaults()
        out.update(es_tx_power_dbm=cls.default_es_tx_power_dbm, es_height_m=cls.default_es_height_m)
        return out

    default_es_tx_power_dbm: ClassVar[float]
    default_es_height_m: ClassVar[float]

    def __init__(self, *, carrier_hz: float = _TR["carrier_hz"], ue_tx_power_dbm: float = 23.0,
                 es_tx_power_dbm: float | Sequence[float] | None = None,
                 noise_figure_db: float = _TR["noise_figure_db"],
                 es_noise_figure_db: float | None = _TR["es_noise_figure_db"],
                 fading: str = _TR["fading"], rician_k_db: float = _TR["rician_k_db"],
                 shadowing: bool = _TR["shadowing"], los: str = "random",
                 es_positions_m: Sequence[Sequence[float]] | None = None,
                 ue_position_m: Sequence[float] = (50.0, 0.0), ue_speed_mps: float = 1.0,
                 mobility: str = "random_waypoint", ue_heading_deg: float | None = None,
                 area_m: Sequence[float] | None = None, es_height_m: float | None = None,
                 ue_height_m: float = 1.5) -> None:
        # None: the kind's own default (a micro or a macro site)
        es_tx_power_dbm = self.default_es_tx_power_dbm if es_tx_power_dbm is None else es_tx_power_dbm
        es_height_m = self.default_es_height_m if es_height_m is None else es_height_m
        super().__init__()
        self._params = dict(
            carrier_hz=carrier_hz, ue_tx_power_dbm=ue_tx_power_dbm, es_tx_power_dbm=es_tx_power_dbm,
            noise_figure_db=noise_figure_db, es_noise_figure_db=es_noise_figure_db, fading=fading,
            rician_k_db=rician_k_db, shadowing=shadowing, los=los, es_positions_m=es_positions_m,
            ue_position_m=ue_position_m, ue_speed_mps=ue_speed_mps, mobility=mobility,
            ue_heading_deg=ue_heading_deg, area_m=area_m, es_height_m=es_height_m, ue_height_m=ue_height_m,
        )
        p = "channel."
        # TR 38.901 Table 7.4.1-1 holds for 0.5 GHz <= f_c <= 100 GHz
        self.carrier_hz = check_number(p + "carrier_hz", carrier_hz, lo=0.5e9, hi=100e9)
        self.ue_tx_power_dbm = check_number(p + "ue_tx_power_dbm", ue_tx_power_dbm)
        if isinstance(es_tx_power_dbm, (str, bytes, Mapping)) or not hasattr(es_tx_power_dbm, "__len__"):
            self.es_tx_power_dbm: float | tuple[float, ...] = check_number(p + "es_tx_power_dbm", es_tx_power_dbm)
        elif len(es_tx_power_dbm) == 0:
            raise ValueError(f"'{p}es_tx_power_dbm' must be a number or a non-empty list of one number per ES "
                             f"(got {show(es_tx_power_dbm)})")
        else:  # one power per ES
            self.es_tx_power_dbm = tuple(check_number(f"{p}es_tx_power_dbm[{i}]", v)
                                         for i, v in enumerate(es_tx_power_dbm))
        self.noise_figure_db = check_number(p + "noise_figure_db", noise_figure_db, lo=0.0)
        self.es_noise_figure_db = (self.noise_figure_db if es_noise_figure_db is None
                                   else check_number(p + "es_noise_figure_db", es_noise_figure_db, lo=0.0))
        self.fading = check_choice(p + "fading", fading, FADINGS)
        self.rician_k_db = check_number(p + "rician_k_db", rician_k_db)
        self._k_linear = db_to_linear(self.rician_k_db)
        if not isinstance(shadowing, (bool, np.bool_)):
            raise ValueError(f"'{p}shadowing' must be true or false (got {show(shadowing)})")
        self.shadowing = bool(shadowing)
        self.los_mode = check_choice(p + "los", los, LOS_MODES)
        if es_positions_m is None:
            self.es_positions_m: tuple[tuple[float, float], ...] | None = None
        else:
            if isinstance(es_positions_m, (str, bytes, Mapping)) or not hasattr(es_positions_m, "__len__") \
                    or len(es_positions_m) == 0:
                raise ValueError(f"'{p}es_positions_m' must be a non-empty list of [x, y] positions in metres "
                                 f"(got {show(es_positions_m)})")
            self.es_positions_m = tuple(check_position(f"{p}es_positions_m[{i}]", xy)
                                        for i, xy in enumerate(es_positions_m))
        if (self.es_positions_m is not None and isinstance(self.es_tx_power_dbm, tuple)
                and len(self.es_positions_m) != len(self.es_tx_power_dbm)):
            raise ValueError(f"'{p}es_tx_power_dbm' holds {len(self.es_tx_power_dbm)} powers but "
                             f"'{p}es_positions_m' holds {len(self.es_positions_m)} positions")
        self.ue_position_m = check_position(p + "ue_position_m", ue_position_m)
        self.ue_speed_mps = check_number(p + "ue_speed_mps", ue_speed_mps, lo=0.0)
        self.mobility = check_choice(p + "mobility", mobility, tuple(MOBILITIES))
        self.ue_heading_deg = None if ue_heading_deg is None else check_number(p + "ue_heading_deg", ue_heading_deg)
        self.es_height_m = check_number(p + "es_height_m", es_height_m, lo=1.0, hi=150.0, lo_open=True)
        self.ue_height_m = check_number(p + "ue_height_m", ue_height_m, lo=1.5, hi=22.5)  # Table 7.4.1-1 range
        if area_m is None:
            self.area_m: tuple[float, float, float, float] | None = None
        else:
            ok = not isinstance(area_m, (str, bytes, Mapping)) and hasattr(area_m, "__len__") and len(area_m) == 4
            vals = [check_number(f"{p}area_m[{i}]", v) for i, v in enumerate(area_m)] if ok else []
            if not ok or not (vals[0] < vals[2] and vals[1] < vals[3]):
                raise ValueError(f"'{p}area_m' must be [x_min, y_min, x_max, y_max] in metres with "
                                 f"x_min < x_max and y_min < y_max (got {show(area_m)})")
            x, y = self.ue_position_m
            if not (vals[0] <= x <= vals[2] and vals[1] <= y <= vals[3]):
                raise ValueError(f"'{p}ue_position_m' must lie inside 'channel.area_m' {vals} (got {[x, y]})")
            self.area_m = (vals[0], vals[1], vals[2], vals[3])
        self._mob: Mobility | None = None

    @property
    def rician_k_linear(self) -> float:
        """The Rician K-factor as a linear power ratio."""
        return self._k_linear

    def with_state(self, base_db: Any, *, es_xy_m: Any = (), es_tx_dbm: Any = (), position_m: Any = (0.0, 0.0),
                   area_m: Any = None, los: Any = (), z: Any = (), d2d_m: Any = (), pathloss_db: Any = (),
                   fade_db: Any = (), **state: Any) -> ChannelModel:
        """:meth:`ChannelModel.with_state` plus the link budget's state: the sites and their powers,
        the UE's position (a static UE) in ``area_m``, and per ES the LOS state, the shadowing (in
        units of sigma), the distance, the path loss and the fading (ESs, 2) in dB."""
        ch = super().with_state(base_db)
        ch._es_xy, ch._es_tx = list(es_xy_m), list(es_tx_dbm)
        ch._mob = Static((float(position_m[0]), float(position_m[1])), 0.0, area_m)
        ch._los, ch._z = list(np.asarray(los).tolist()), list(np.asarray(z).tolist())
        ch._d2d, ch._pl = list(np.asarray(d2d_m).tolist()), list(np.asarray(pathloss_db).tolist())
        ch._fade_db = np.asarray(fade_db, dtype=np.float64).T.tolist()
        return ch

    # -- layout ---------------------------------------------------------------------------
    def es_layout(self, n: int) -> list[tuple[float, float]]:
        if self.es_positions_m is None:  # a row of sites at the scenario's inter-site distance (Table 7.2-1)
            return [(i * self.scenario.isd_m, 0.0) for i in range(n)]
        if len(self.es_positions_m) != n:
            raise ValueError(f"'channel.es_positions_m' holds {len(self.es_positions_m)} positions "
                             f"but num_es is {n}")
        return list(self.es_positions_m)

    def _area(self, es_xy: list[tuple[float, float]]) -> tuple[float, float, float, float]:
        if self.area_m is not None:
            return self.area_m
        pad = self.scenario.isd_m / 2.0
        xs = [x for x, _ in es_xy] + [self.ue_position_m[0]]
        ys = [y for _, y in es_xy] + [self.ue_position_m[1]]
        return (min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad)

    # -- runtime --------------------------------------------------------------------------
    def es_tx_dbm(self, n: int) -> list[float]:
        """Every ES's transmit power for ``num_es`` = n."""
        if isinstance(self.es_tx_power_dbm, tuple):
            if len(self.es_tx_power_dbm) != n:
                raise ValueError(f"'channel.es_tx_power_dbm' holds {len(self.es_tx_power_dbm)} powers "
                                 f"but num_es is {n}")
            return list(self.es_tx_power_dbm)
        return [self.es_tx_power_dbm] * n

    def reset(self, rng: np.random.Generator, num_es: int) -> None:
        n = self.check_reset(rng, num_es)
        self._es_xy = self.es_layout(n)
        self._es_tx = self.es_tx_dbm(n)
        speed = 0.0 if self.mobility == "static" else self.ue_speed_mps
        self._mob = MOBILITIES[self.mobility](self.ue_position_m, speed, self._area(self._es_xy),
                                              self.ue_heading_deg)
        self._mob.reset(rng)
        self._num_es = n
        self._los = [True] * n
        self._z = [0.0] * n  # shadowing in units of sigma_SF
        self._d2d = [0.0] * n
        self._pl = [0.0] * n  # path loss + shadowing, dB
        self._fade_db = [[0.0] * n, [0.0] * n]
        self._base_db = [[0.0] * n, [0.0] * n]
        self._update(rng, math.inf)

    def advance(self, dt_s: float, rng: np.random.Generator) -> None:
        dt = self.check_dt(dt_s)
        if self._mob is None:
            raise RuntimeError(f"{type(self).__name__}.reset(rng, num_es) must be called first")
        x0, y0 = self._mob.x, self._mob.y
        if dt > 0.0:
            self._mob.advance(dt, rng)
        self._update(rng, math.hypot(self._mob.x - x0, self._mob.y - y0))

    def _update(self, rng: np.random.Generator, moved_m: float) -> None:
        """New large-scale state after a move of ``moved_m`` (inf: draw afresh) and a new fading block.

        Per ES it draws 2 uniforms (LOS state) and 5 normals (shadowing, UL and DL fading),
        whatever the options.
        """
        n = self._num_es
        u = rng.random(2 * n).tolist()
        g = rng.standard_normal(5 * n).tolist()
        sc = self.scenario
        fc, h_bs, h_ut = self.carrier_hz, self.es_height_m, self.ue_height_m
        x, y = self._mob.x, self._mob.y
        noise_ul = THERMAL_NOISE_DBM_PER_HZ + self.es_noise_figure_db  # the ES receives the uplink
        noise_dl = THERMAL_NOISE_DBM_PER_HZ + self.noise_figure_db
        fading, k = self.fading, self._k_linear
        for i in range(n):
            ex, ey = self._es_xy[i]
            d2d = math.hypot(x - ex, y - ey)
            self._d2d[i] = d2d
            los = self._los[i]
            if self.los_mode == "random":
                # LOS state: redrawn from Pr_LOS(d) with probability 1 - exp(-moved/d_corr)
                if u[i] < -math.expm1(-moved_m / sc.shadow_corr_nlos_m):
                    los = u[n + i] < sc.los_probability(d2d, h_ut)
            else:
                los = self.los_mode == "los"
            self._los[i] = los
            # Gudmundson (1991): z' = a z + sqrt(1 - a^2) w, a = exp(-moved / d_corr)
            a = math.exp(-moved_m / (sc.shadow_corr_los_m if los else sc.shadow_corr_nlos_m))
            z = a * self._z[i] + math.sqrt(1.0 - a * a) * g[i]
            self._z[i] = z
            pl = (sc.pathloss_los_db if los else sc.pathloss_nlos_db)(d2d, fc, h_bs, h_ut)
            if self.shadowing:
                pl += (sc.shadow_sigma_los_db if los else sc.shadow_sigma_nlos_db) * z
            self._pl[i] = pl
            j = n + 4 * i
            f_ul = 10.0 * math.log10(max(fading_gain(fading, los, k, g[j], g[j + 1]), _MIN_GAIN))
            f_dl = 10.0 * math.log10(max(fading_gain(fading, los, k, g[j + 2], g[j + 3]), _MIN_GAIN))
            self._fade_db[0][i], self._fade_db[1][i] = f_ul, f_dl
            self._base_db[0][i] = self.ue_tx_power_dbm - pl + f_ul - noise_ul
            self._base_db[1][i] = self._es_tx[i] - pl + f_dl - noise_dl

    def block_sampler(self, es_index: int, link: str, bandwidth_hz: float,
                      rng: np.random.Generator) -> Callable[[], float]:
        snr = self.snr_db(es_index, link, bandwidth_hz)
        i, li = self._es(es_index), _LINK_INDEX[link]
        large = snr - self._fade_db[li][i]
        fading, los, k = self.fading, self._los[i], self._k_linear

        def draw() -> float:
            re, im = rng.standard_normal(2).tolist()
            return large + 10.0 * math.log10(max(fading_gain(fading, los, k, re, im), _MIN_GAIN))

        return draw

    # -- read-outs ------------------------------------------------------------------------
    @property
    def ue_position_now_m(self) -> tuple[float, float]:
        """The UE's current position (x, y) in metres."""
        if self._mob is None:
            return self.ue_position_m
        return self._mob.position_m

    @property
    def es_xy_m(self) -> tuple[tuple[float, float], ...]:
        """The ES positions in use since ``reset``."""
        return tuple(getattr(self, "_es_xy", ()))

    def distance_m(self, es_index: int) -> float:
        """Horizontal UE-ES distance d_2D in metres (path loss clamps it to >= 10 m)."""
        return self._d2d[self._es(es_index)]

    def is_los(self, es_index: int) -> bool:
        """Whether the UE-ES link is line of sight in the current state."""
        return self._los[self._es(es_index)]

    def pathloss_db(self, es_index: int) -> float:
        """Path loss plus shadowing in dB (without small-scale fading)."""
        return self._pl[self._es(es_index)]

    def fading_db(self, es_index: int, link: str) -> float:
        """Small-scale fading power gain of the current block, in dB."""
        return self._fade_db[_LINK_INDEX[link]][self._es(es_index)]


class UmiChannel(_Tr38901Channel):
    """3GPP TR 38.901 UMi-Street Canyon link budget (h_BS = 10 m, ISD 200 m).

    Arguments (all keyword):

    * ``carrier_hz``: carrier frequency, 0.5-100 GHz (default 3.5 GHz, band n78).
    * ``ue_tx_power_dbm``: UE transmit power (23 dBm: power class 3, TS 38.101-1).
    * ``es_tx_power_dbm``: ES transmit power, one number or one per ES (30 dBm: a small cell).
    * ``noise_figure_db``: receiver noise figure of the UE (9 dB), ``es_noise_figure_db`` of
      the ES, which receives the uplink (5 dB; both 3GPP TR 36.814 Table A.2.1.1-3; None: the UE's).
    * ``fading``: 'rayleigh', 'rician' (K on LOS links, Rayleigh on NLOS) or 'none';
      ``rician_k_db``: K factor (9 dB: TR 38.901 Table 7.5-6, UMi LOS).
    * ``shadowing``: log-normal shadowing on or off; ``los``: 'random' (drawn from the LOS
      probability), or forced 'los' / 'nlos'.
    * ``es_positions_m``: [[x, y], ...] one per ES (default: a row at the ISD along x);
      ``ue_position_m``: the UE's start; ``area_m``: [x_min, y_min, x_max, y_max] the UE
      walks in (default: the sites' bounding box padded by ISD/2).
    * ``mobility``: 'random_waypoint', 'constant_velocity' (``ue_heading_deg``, random when
      None) or 'static'; ``ue_speed_mps``: walking speed (1 m/s: a pedestrian).
    * ``es_height_m`` / ``ue_height_m``: antenna heights (10 m / 1.5 m, Table 7.4.1-1).
    """

    kind = "umi"
    scenario = SCENARIOS_38901["umi"]

    default_es_tx_power_dbm = 30.0
    default_es_height_m = 10.0


class UmaChannel(_Tr38901Channel):
    """3GPP TR 38.901 UMa link budget (h_BS = 25 m, ISD 500 m).

    Arguments as :class:`UmiChannel`; the defaults differ in a 46 dBm macro ES (cf. TR
    36.814 Table A.2.1.1-2) and ``es_height_m`` = 25 m; K = 9 dB is also Table 7.5-6's UMa
    LOS value.
    """

    kind = "uma"
    scenario = SCENARIOS_38901["uma"]

    default_es_tx_power_dbm = 46.0
    default_es_height_m = 25.0


# ------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------
CHANNELS: dict[str, type[ChannelModel]] = {
    "awgn": AwgnChannel,
    "perfect": PerfectChannel,
    "uma": UmaChannel,
    "umi": UmiChannel,
}


def channel_params() -> dict[str, dict[str, Any]]:
    """Kind -> {parameter name: default} for every kind of :data:`CHANNELS` (for config validators)."""
    return {kind: cls.param_defaults() for kind, cls in CHANNELS.items()}


def make_channel(kind: str, **params: Any) -> ChannelModel:
    """Build the channel model of ``kind`` with its parameters; unknown kinds and parameters raise ValueError."""
    if not isinstance(kind, str) or kind not in CHANNELS:
        raise ValueError(f"'channel.kind' must be one of {sorted(CHANNELS)} (got {show(kind)})")
    cls = CHANNELS[kind]
    allowed = cls.param_names()
    for name in params:
        if name not in allowed:
            raise ValueError(f"'channel.{name}' is not a parameter of channel kind {kind!r}; "
                             f"allowed: {list(allowed)}")
    return cls(**params)
