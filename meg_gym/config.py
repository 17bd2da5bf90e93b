"""Validated scenario configs: YAML in, frozen objects out.

A *scenario* says what world a run simulates: the model, the backend mode, how many edge
servers (ESs) there are and what they run on, the radio channel, the generation settings,
the reward weights and the protocols offered to agents. Every key is optional; a missing
key takes its default (:data:`DEFAULT_SCENARIO`), and nested mappings merge key by key
with the defaults. Lists (``es``, ``protocols``, ``position_m``) are replaced whole.

>>> sc = load_scenario("configs/scenarios/case_study.yaml", channel={"snr_db": 5.0})  # doctest: +SKIP
>>> sc.channel.snr_db, sc.num_es, len(sc.es)  # doctest: +SKIP
(5.0, 1, 1)

Sources and overrides (:func:`load_scenario`):

* ``source`` is ``None`` (the defaults), a path to a YAML file, the bare name of a shipped
  scenario in ``configs/scenarios/`` (``"case_study"``), a mapping, or a :class:`Scenario`.
* ``**overrides`` are merged on top of the source, in the same key-by-key way. A keyword is
  a top-level key (``channel={"snr_db": 5}``) or a path whose parts are joined by ``__``
  (``channel__snr_db=5``); ``**{"channel.snr_db": 5}`` works too.
* ``channel``: when a layer (file or overrides) changes ``channel.kind``, the parameters of
  the layer below are dropped and the new kind starts from its own defaults
  (:data:`CHANNEL_DEFAULTS`), so ``channel={"kind": "umi"}`` does not inherit ``snr_db``.
* ``es``: either exactly ``num_es`` entries or one entry applied to every ES; each entry
  merges with the ES defaults. After validation ``Scenario.es`` always holds ``num_es``.
* ``protocols``: when neither the source nor the overrides name it and ``num_es`` is 1, the
  default is the single-ES protocols (the multi-ES ones need two ESs or more). A list that
  is given is checked as given.

Every bad value raises :class:`ConfigError` with a one-line message that names the dotted
field, what is allowed and what was given, e.g.
``'es[1].flops_per_s' must be in [1e+06, 1e+17] (got -3.0)``.

The tables of known names (channel kinds, protocols, device presets) are the owning modules'
(``meg_gym.channel.CHANNELS``, ``meg_gym.protocols.PROTOCOLS``, ``meg_gym.compute.DEVICES``); the
channel kinds' defaults live here (:data:`CHANNEL_DEFAULTS`) and the channel constructors take them.
"""

from __future__ import annotations

import copy
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator, model_validator

__all__ = [
    "CHANNEL_DEFAULTS",
    "DEFAULT_SCENARIO",
    "SCENARIOS_DIR",
    "BackhaulConfig",
    "CachingConfig",
    "ChannelConfig",
    "ConfigError",
    "EsConfig",
    "GenerationConfig",
    "RewardConfig",
    "RewardWeights",
    "Scenario",
    "TransmissionConfig",
    "UeConfig",
    "WorkloadConfig",
    "channel_kinds",
    "device_names",
    "load_scenario",
    "multi_es_protocols",
    "protocol_names",
    "scenario_to_dict",
    "shipped_scenarios",
    "yaml_ready",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / "configs" / "models"
SCENARIOS_DIR = REPO_ROOT / "configs" / "scenarios"


class ConfigError(ValueError):
    """A bad scenario config; the message is one line naming the field, what is allowed and what was given."""


FADINGS = ("rayleigh", "rician", "none")
BACKENDS = ("live", "profiled")
TX_MODES = ("analog", "digital")
EXCHANGES = ("latent", "activations")  # what cooperative tiles exchange (meg_gym.ldm.stages._denoise_tiles)

# Defaults of each channel kind's parameters. umi/uma: 3GPP TR 38.901 street-canyon micro
# and macro cells; 3.5 GHz is the n78 band; the noise figures are 3GPP TR 36.814 Table
# A.2.1.1-3's: 9 dB at the UE (the downlink's receiver), 5 dB at the base station (the
# uplink's); 9 dB is TR 38.901 Table 7.5-6's mean LOS Rician K-factor.
CHANNEL_DEFAULTS: dict[str, dict[str, Any]] = {
    "awgn": {"snr_db": 10.0},
    "perfect": {"snr_db": 10.0},  # no noise; the SNR still sets the link rate
    "umi": {"carrier_hz": 3.5e9, "noise_figure_db": 9.0, "es_noise_figure_db": 5.0, "fading": "rayleigh",
            "rician_k_db": 9.0, "shadowing": True},
}
CHANNEL_DEFAULTS["uma"] = CHANNEL_DEFAULTS["umi"]  # the link budget's defaults are the same for both kinds
_CHANNEL_PARAMS = ("snr_db", "snr_range_db", "carrier_hz", "noise_figure_db", "es_noise_figure_db", "fading",
                   "rician_k_db", "shadowing")


def _channel_table() -> dict[str, tuple[str, ...]]:
    """Channel kind -> the parameter names its scenario section accepts: those of the kind's
    constructor (``meg_gym.channel.CHANNELS``) that are scenario-level channel parameters."""
    from meg_gym.channel import CHANNELS

    out: dict[str, tuple[str, ...]] = {}
    for kind, cls in CHANNELS.items():
        names = set(inspect.signature(cls).parameters)
        out[kind] = tuple(p for p in _CHANNEL_PARAMS if p in names)
    return out


def channel_kinds() -> list[str]:
    """The known channel kinds, sorted."""
    return sorted(_channel_table())


def protocol_names() -> list[str]:
    """The known protocol names, in the protocol table's order."""
    from meg_gym.protocols import PROTOCOLS

    return list(PROTOCOLS)


def multi_es_protocols() -> list[str]:
    """The protocols that need two ESs or more."""
    from meg_gym.protocols import PROTOCOLS

    return [n for n, p in PROTOCOLS.items() if p.multi_es]


def device_names() -> list[str]:
    """The known device preset names, sorted."""
    from meg_gym.compute.devices import DEVICES

    return sorted(DEVICES)


def model_cards() -> list[str]:
    """The model card names shipped in ``configs/models/``."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))


def shipped_scenarios() -> list[str]:
    """The scenario names shipped in ``configs/scenarios/``."""
    return sorted(p.stem for p in SCENARIOS_DIR.glob("*.yaml"))


# --------------------------------------------------------------------------------------
# Field types and errors
# --------------------------------------------------------------------------------------
class _FieldError(ValueError):
    """Raised inside validators: ``path`` (below the validator's location) and a message."""

    def __init__(self, path: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def _show(value: Any, limit: int = 80) -> str:
    """A short excerpt of a given value (:func:`meg_gym.errors.show`: never the ``repr`` of a whole large input)."""
    from meg_gym.errors import show

    return show(value, limit)


def _path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _one_of(allowed: list[str] | tuple[str, ...], value: Any) -> str:
    return f"must be one of {list(allowed)} (got {_show(value)})"


# Strict: numbers are numbers (no "5" or True), ints are ints (no 2.0); floats accept ints.
Number = Annotated[float, Strict(), Field(allow_inf_nan=False)]
Positive = Annotated[float, Strict(), Field(gt=0, allow_inf_nan=False)]
NonNegative = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Fraction = Annotated[float, Strict(), Field(gt=0, le=1, allow_inf_nan=False)]  # (0, 1]
PositiveInt = Annotated[int, Strict(), Field(ge=1)]
NonNegativeInt = Annotated[int, Strict(), Field(ge=0)]
Text = Annotated[str, Strict()]


@dataclass(frozen=True)
class _Range:
    """A field's allowed range, kept in its type so that an error can state the whole range."""

    lo: float
    hi: float
    lo_open: bool = False
    hi_open: bool = False

    def __str__(self) -> str:
        lo, hi = (str(v) if isinstance(v, int) else f"{v:g}" for v in (self.lo, self.hi))
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


def _in(lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> Any:
    """A finite number in [lo, hi] (``lo_open``/``hi_open``: that end excluded)."""
    return Annotated[float, Strict(), Field(allow_inf_nan=False, **{"gt" if lo_open else "ge": lo},
                                            **{"lt" if hi_open else "le": hi}), _Range(lo, hi, lo_open, hi_open)]


def _int_in(lo: int, hi: int) -> Any:
    return Annotated[int, Strict(), Field(ge=lo, le=hi), _Range(lo, hi)]


def _range_of(loc: tuple[str | int, ...]) -> _Range | None:
    """The :class:`_Range` of the field at a pydantic error's location, if its type has one."""
    model: Any = Scenario
    ann: Any = None
    for part in loc:
        if isinstance(part, int):
            continue
        if model is None or part not in getattr(model, "model_fields", {}):
            return None
        ann = model.model_fields[part].annotation
        meta = model.model_fields[part].metadata
        model = next((t for t in _flatten(ann) if isinstance(t, type) and issubclass(t, BaseModel)), None)
    found = [m for m in [*_flatten(ann), *(meta if ann is not None else [])] if isinstance(m, _Range)]
    return found[0] if found else None


def _flatten(ann: Any) -> list[Any]:
    """A type and everything inside it (Optional, tuple elements, Annotated metadata)."""
    out = [ann]
    for arg in get_args(ann):
        out += _flatten(arg) if not isinstance(arg, _Range) else [arg]
    return out


# Physically meaningful ranges of the numeric fields (issue 21): a value outside one is a typo or
# a unit slip, and beyond them the models overflow (10 ** (1e308 / 10)), divide by zero or give
# rewards and observations no agent can learn from. Each bound says where it comes from.
MAX_ES = 64  # the ES sets a multi-ES protocol may use grow as 2**num_es (core.MAX_PLACEMENTS caps them)
OBS_LIMIT = 1e4  # |observation| and |reward term| bound (envs.common.BIG): ratios the config sets stay below it
SNR_RANGE_DB = (-50.0, 100.0)  # the case study's -20..30 dB with margin; SNR / 30 observations stay within +-10
SnrDb = _in(*SNR_RANGE_DB)
CarrierHz = _in(0.5e9, 100e9)  # TR 38.901 Table 7.4.1-1 holds for 0.5 GHz <= f_c <= 100 GHz
NoiseFigureDb = _in(0.0, 30.0)  # TR 38.802: UE 9 dB, gNB 5 dB; 30 dB leaves a wide margin
RicianKDb = _in(-30.0, 40.0)  # TR 38.901 Table 7.5-6: LOS K means 7-9 dB, spreads 3.5-8 dB (+-6 sigma and more)
# TS 38.101-1: -40 dBm minimum output power (6.3.1), 31 dBm the highest FR1 power class (Table 6.2.1-1), +2 dB
UeTxDbm = _in(-40.0, 33.0)
# TS 38.104 6.2: a local-area BS <= 24 dBm, a medium-range one <= 38 dBm; macro cells 46-49 dBm
# (TR 38.901 Table 7.8-1); 60 dBm (1 kW) is the margin
EsTxDbm = _in(0.0, 60.0)
Coord = _in(-5e3, 5e3)  # metres: TR 38.901's path loss holds for d2D <= 5 km (Table 7.4.1-1)
Position = tuple[Coord, Coord]
SpeedMps = _in(0.0, 140.0)  # TR 38.913 7.17: NR serves UEs up to 500 km/h (138.9 m/s, high-speed train)
# from a microcontroller (1 MFLOP/s) to an 8-GPU server (8 x 989 TFLOP/s dense FP16 on H100, ~8e15) with margin
FlopsPerS = _in(1e6, 1e17)
PowerW = _in(1e-3, 1e4)  # from a 1 mW microcontroller to a 10 kW 8-GPU server (DGX H100: 10.2 kW)
MIN_BANDWIDTH_HZ = 1e3  # below one NB-IoT tone (3.75 kHz, TS 36.211 10.1)
BandwidthHz = _in(MIN_BANDWIDTH_HZ, 2e9)  # up to FR2-2's widest channel, 2 GHz (TS 38.101-2)
Steps = _int_in(1, 1000)  # a sampler takes at most the 1000 timesteps of the DDPM schedule (Ho et al. 2020)
Seconds = _in(1e-3, 3600.0)  # a millisecond (an NR slot at 15 kHz, TS 38.211) to an hour
Weight = _in(0.0, 1e6)  # a weight ratio beyond 1e6 is lost in float32 (SB3's reward buffers: 7 digits)


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_position(value: Any) -> Any:
    if isinstance(value, (list, tuple)) and len(value) != 2:
        raise _FieldError((), f"must hold 2 numbers [x, y] in metres (got {_show(value)})")
    return value


def _snr_range(v: tuple[float, float] | None) -> tuple[float, float] | None:
    if v is not None and not v[0] <= v[1]:
        raise _FieldError((), f"must be [low, high] in dB with low <= high (got {list(v)})")
    return v


def _check_device(value: Any) -> Any:
    known = device_names()
    if isinstance(value, str) and value not in known:
        raise _FieldError((), _one_of(known, value))
    return value


# --------------------------------------------------------------------------------------
# The schema
# --------------------------------------------------------------------------------------
class TransmissionConfig(_Frozen):
    """How tensors cross the air: analog (real values plus noise) or digital (quantised, coded)."""

    mode: Text = "analog"
    bits_per_value: Annotated[int, Strict(), Field(ge=1, le=32)] = 16
    # The digital link (meg_gym.channel.digital; text is sent on it in both modes): 3GPP TR
    # 36.942 Annex A.2's truncated attenuated Shannon bound, Table A.2.1-1's values as
    # [uplink, downlink] (one number: both): attenuation alpha 0.4 / 0.6, SNR_MIN -10 dB,
    # Thr_MAX 2.0 / 4.4 bit/s/Hz (16QAM 3/4 up, 64QAM 4/5 down)
    efficiency: tuple[Fraction, Fraction] = (0.4, 0.6)
    snr_min_db: SnrDb = -10.0
    # 30 bit/s/Hz: beyond 8 MIMO layers of 1024QAM (TS 38.214's largest spectral efficiency is 9.26 per layer)
    max_spectral_efficiency: tuple[_in(0.01, 100.0), _in(0.01, 100.0)] = (2.0, 4.4)
    # below SNR_MIN, repetitions of each code block combined (LTE-M / NB-IoT coverage
    # enhancement: up to 2048, 3GPP TS 36.211 10.2.3 / TS 36.213 16.4.1.3); 1: none (an outage)
    max_repetitions: _int_in(1, 2048) = 2048
    # the rate's back-off below the observed SNR; None: the margin at which a fresh fading block
    # fails with probability 0.1 (the BLER target of LTE's CQI, TS 36.213 7.2.3): 9.8 dB under
    # Rayleigh fading, 0 dB without fading
    fading_margin_db: _in(0.0, 40.0) | None = None
    max_retransmissions: _int_in(0, 32) = 3  # HARQ: LTE's default of 4 transmissions; up to 28 (TS 36.331 maxHARQ-Tx)
    # analog: copies of every tensor sent and combined (maximal-ratio combining on AWGN): r times
    # the airtime for SNR + 10 log10 r (bandwidth expansion by repetition)
    analog_repetitions: _int_in(1, 1024) = 1

    @field_validator("efficiency", "max_spectral_efficiency", mode="before")
    @classmethod
    def _per_direction(cls, v: Any) -> Any:
        return (v, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @field_validator("mode")
    @classmethod
    def _mode(cls, v: str) -> str:
        if v not in TX_MODES:
            raise _FieldError((), _one_of(TX_MODES, v))
        return v


class ChannelConfig(_Frozen):
    """The radio channel: ``kind`` and that kind's parameters (the others stay ``None``).

    awgn / perfect: ``snr_db``; awgn also ``snr_range_db`` ([low, high]: each fading block,
    i.e. each request, draws every ES's SNR uniformly in that range instead). umi / uma
    (3GPP TR 38.901): ``carrier_hz``, ``noise_figure_db`` (the UE's), ``es_noise_figure_db``,
    ``fading`` (rayleigh | rician |
    none), ``rician_k_db``, ``shadowing``.
    A parameter that is not given takes its kind's default (:data:`CHANNEL_DEFAULTS`).
    """

    kind: Text = "awgn"
    snr_db: SnrDb | None = None
    snr_range_db: tuple[SnrDb, SnrDb] | None = None
    carrier_hz: CarrierHz | None = None
    noise_figure_db: NoiseFigureDb | None = None
    es_noise_figure_db: NoiseFigureDb | None = None
    fading: Text | None = None
    rician_k_db: RicianKDb | None = None
    shadowing: Annotated[bool, Strict()] | None = None

    @model_validator(mode="before")
    @classmethod
    def _by_kind(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        table = _channel_table()
        kind = data.get("kind", "awgn")
        if not isinstance(kind, str) or kind not in table:
            raise _FieldError(("kind",), _one_of(sorted(table), kind))
        allowed = table[kind]
        for key, value in data.items():
            if key != "kind" and key not in allowed and not (key in _CHANNEL_PARAMS and value is None):
                raise _FieldError((str(key),), f"is not a known field of channel kind {kind!r}; "
                                               f"allowed: {['kind', *allowed]}")
        given = {k: v for k, v in data.items() if v is not None}
        return {**CHANNEL_DEFAULTS.get(kind, {}), **given}

    @field_validator("snr_range_db")
    @classmethod
    def _range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        return _snr_range(v)

    @field_validator("fading")
    @classmethod
    def _fading(cls, v: str | None) -> str | None:
        if v is not None and v not in FADINGS:
            raise _FieldError((), _one_of(FADINGS, v))
        return v

    def params(self) -> dict[str, Any]:
        """The kind's parameters (``kind`` left out), as keyword arguments for the channel."""
        return {k: v for k, v in self.model_dump(exclude={"kind"}).items() if v is not None}


class UeConfig(_Frozen):
    """The user equipment (phone). ``flops_per_s``/``power_w`` ``None``: the device preset's."""

    device: Text = "phone_npu"
    flops_per_s: FlopsPerS | None = None
    power_w: PowerW | None = None
    tx_power_dbm: UeTxDbm = 23.0  # 3GPP power class 3 UE
    rx_power_w: _in(0.0, 100.0) = 1.0  # drawn while receiving (meg_gym.compute.energy.UE_RX_POWER_W, cited there)
    position_m: Position = (50.0, 0.0)
    speed_mps: SpeedMps = 1.0  # pedestrian

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return _check_device(v)

    @field_validator("position_m", mode="before")
    @classmethod
    def _position(cls, v: Any) -> Any:
        return _check_position(v)


class EsConfig(_Frozen):
    """One edge server. ``load``: the share of its compute that other users keep busy, in [0, 1)."""

    device: Text = "edge_gpu"
    flops_per_s: FlopsPerS | None = None
    power_w: PowerW | None = None
    load: Annotated[float, Strict(), Field(ge=0, lt=1, allow_inf_nan=False)] = 0.3
    # None: the channel kind's base station (umi 30 dBm small cell, uma 46 dBm macro cell:
    # meg_gym.channel.models' default_es_tx_power_dbm); awgn/perfect ignore it
    tx_power_dbm: EsTxDbm | None = None
    position_m: Position = (0.0, 0.0)
    # The ES's own model variant, so that the parallel protocols' candidates (UIDG, DIUG, DSUC) differ for
    # a reason (issue #23: "each ES can run its own model variant"); None: the scenario's. ``model``: a card
    # that shares the scenario model's VAE and text encoder (as ``ue_model``: the ES reads the UE's seed and
    # its latents are decoded by the UE); ``guidance_scale``: its classifier-free guidance scale;
    # ``seed_offset``: the ES draws its noise from its own generator, seeded with the request's seed plus
    # this (None: from the request's one generator, in plan order, after the nodes before it).
    model: Text | None = None
    guidance_scale: _in(0.0, 50.0) | None = None
    seed_offset: _int_in(0, 2**31 - 1) | None = None

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        return _check_device(v)

    @field_validator("position_m", mode="before")
    @classmethod
    def _position(cls, v: Any) -> Any:
        return _check_position(v)

    @field_validator("model")
    @classmethod
    def _model_card(cls, v: str | None) -> str | None:
        cards = model_cards()
        if v is not None and v not in cards:
            raise _FieldError((), f"must be a model card name {cards} that shares the scenario model's VAE and "
                                  f"text encoder (got {v!r})")
        return v

    def variant(self, model: str, generation: Any) -> tuple[str | None, float | None, int | None]:
        """(model, guidance scale, seed offset) this ES changes from the scenario's ``model`` and ``generation``
        settings, each None where it runs the scenario's (a value equal to the scenario's is None too)."""
        return (None if self.model in (None, model) else self.model,
                None if self.guidance_scale in (None, generation.guidance_scale) else self.guidance_scale,
                self.seed_offset)


class GenerationConfig(_Frozen):
    """How a generation runs (mirrors ``meg_gym.ldm.stages.GenerationSettings``)."""

    steps: Steps = 20
    strength: Fraction = 0.6
    guidance_scale: _in(0.0, 50.0) = 4.0  # diffusers' default is 7.5; CFG papers sweep up to ~20
    ue_steps: Steps = 20  # Full UE: the MEG paper's 20 steps, as the ES (see GenerationSettings)
    sketch_scale: _int_in(1, 8) = 2  # a sketch has 1/sketch_scale of the resolution per side (8: one latent pixel)
    complete_steps: Steps = 10
    complete_strength: Fraction = 0.3
    tile_overlap: _int_in(0, 64) = 2  # latent pixels each side of a cooperative tile (SD 1.5's latent is 64 wide)
    # cooperative tiles exchange their borders every this many denoising steps (0: never, strips alone)
    exchange_every: _int_in(0, 1000) = 1
    # what they exchange: 'latent' columns, or 'activations' at every layer (exact: the monolithic UNet)
    exchange: Text = "latent"

    @field_validator("exchange")
    @classmethod
    def _exchange(cls, v: str) -> str:
        if v not in EXCHANGES:
            raise _FieldError((), _one_of(EXCHANGES, v))
        return v

    @model_validator(mode="after")
    def _exchange_fits(self) -> GenerationConfig:
        if self.exchange == "activations" and self.exchange_every != 1:
            raise _FieldError(("exchange_every",), f"must be 1 with exchange 'activations' (the activations are "
                                                   f"exchanged at every layer of every step; got "
                                                   f"{self.exchange_every})")
        return self


class BackhaulConfig(_Frozen):
    """The ES-to-ES link (Xn between base stations) that cooperating ESs exchange tile borders over:
    each ES sends its messages of one exchange one after another at ``rate_bps``, and each exchange
    waits ``latency_s`` more. Defaults: a non-ideal fibre backhaul, the best rate and lowest latency of
    3GPP TR 36.932 Table 6.1-1's "fiber access 2" (100-1000 Mbit/s, 5-10 ms one way; restated in "Small cell
    backhaul: challenges and prospective solutions", EURASIP JWCN 2015, doi:10.1186/s13638-015-0426-y,
    Table 3); an ideal fibre backhaul is up to 10 Gbit/s at under 2.5 us (the same tables)."""

    rate_bps: _in(1e3, 1e13) = 1.0e9  # from a 1 kbit/s control link to a 10 Tbit/s fibre bundle
    latency_s: _in(0.0, 10.0) = 5.0e-3  # 0 (an ideal link) to 10 s (a satellite hop with margin)


class RewardWeights(_Frozen):
    """Weights of the reward terms (magnitudes: the sign of a cost lives in its term)."""

    quality: Weight = 1.0
    latency: Weight = 0.5
    overhead: Weight = 0.1
    energy: Weight = 0.1
    deadline: Weight = 1.0
    # the terms of the optional features: they enter the reward only when the scenario sets them
    leakage: Weight = 1.0  # 'eavesdropper': -leakage (meg_gym.eavesdropper)
    aoi: Weight = 1.0  # 'digital_twin': -(the twin's mean age of information over the period) / period_s


class RewardConfig(_Frozen):
    """Scalar reward = weights . terms; ``ssim_weight`` mixes SSIM and prompt fidelity into quality."""

    weights: RewardWeights = Field(default_factory=RewardWeights)
    ssim_weight: Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)] = 0.5


class WorkloadConfig(_Frozen):
    """The request stream: Poisson arrivals, a deadline and a quality weight per request."""

    arrival_rate_hz: _in(1e-4, 1e4) = 1.0  # one request in ~3 hours to one per 0.1 ms (an NR mini-slot)
    deadline_s: tuple[Seconds, Seconds] = (0.3, 2.0)  # drawn uniformly per request
    quality_weight: tuple[_in(0.0, 1e3), _in(0.0, 1e3)] = (0.5, 1.5)  # drawn uniformly per request
    requests_per_episode: _int_in(1, 10**7) = 200  # 1e7: longer than any training run of this project
    latency_scale_s: Seconds = 1.0  # the latency term is -latency_s / latency_scale_s
    # the user model (MEG paper, motivation: "the user may need to repeat the request multiple times until
    # they receive satisfying results"): a result of quality below the threshold is asked again (same request,
    # new noise draw), up to max_attempts in all; None: every first result is accepted
    satisfaction_threshold: Fraction | None = None
    max_attempts: _int_in(1, 100) = 3
    # how the user picks among the parallel protocols' candidates (meg_gym.quality.user): by eye, without
    # the classifier that scores fidelity ("glance"), by that classifier ("scorer": an oracle on the
    # metric, biased upward; the default while the shipped calibration tables are measured with it), or
    # the first candidate ("first")
    selection: Text = "scorer"

    @field_validator("selection")
    @classmethod
    def _selection(cls, v: str) -> str:
        from meg_gym.quality.user import SELECTIONS

        if v not in SELECTIONS:
            raise _FieldError((), _one_of(list(SELECTIONS), v))
        return v

    @field_validator("deadline_s", "quality_weight")
    @classmethod
    def _range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] > v[1]:
            raise _FieldError((), f"must be [low, high] with low <= high (got {list(v)})")
        return v

    @model_validator(mode="after")
    def _observable(self) -> WorkloadConfig:
        # the observation holds deadline / latency_scale_s: it must stay within the observation bound
        ratio = self.deadline_s[1] / self.latency_scale_s
        if ratio > OBS_LIMIT:
            raise _FieldError(("latency_scale_s",), f"must be >= deadline_s[1] / {OBS_LIMIT:g} = "
                                                    f"{self.deadline_s[1] / OBS_LIMIT:g} s (observations hold "
                                                    f"deadline / latency_scale_s; got {self.latency_scale_s:g})")
        return self


ON_MISS = ("wait", "cloud", "fallback")
CACHE_RULES = ("lru", "lfu", "lc", "none")


class CachingConfig(_Frozen):
    """Model caching at the ESs (``meg_gym.caching``): a catalogue of generation models
    (``configs/catalogue.yaml``, listed here in popularity rank order), a Zipf popularity over
    them, each ES's GPU memory and backhaul, and what a request whose model is not cached meets:
    ``wait`` (its load over the backhaul), ``cloud`` (the cloud serves it, ``cloud_latency_s``
    more) or ``fallback`` (the best cached model serves it, at the quality ratio). ``rule``: how
    the cache changes when no cache action is given (every view but ``MEG/ModelCaching``)."""

    models: tuple[Text, ...] = ("sd15", "sdxl")
    zipf_exponent: NonNegative = 0.8
    es_memory_gb: Positive = 8.0
    backhaul_bps: Positive = 10.0e9
    on_miss: Text = "wait"
    cloud_latency_s: NonNegative = 1.0
    rule: Text = "lru"
    context_half_life_s: Positive = 60.0  # the LC rule's contexts lose half their weight in this time

    @field_validator("models")
    @classmethod
    def _models(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from meg_gym.caching import MAX_MODELS, load_catalogue

        known = sorted(load_catalogue())
        if not 1 <= len(v) <= MAX_MODELS:
            raise _FieldError((), f"must name 1 to {MAX_MODELS} catalogue models (got {len(v)})")
        for i, name in enumerate(v):
            if name not in known:
                raise _FieldError((i,), _one_of(known, name))
            if name in v[:i]:
                raise _FieldError((i,), f"must not repeat an earlier model (got {name!r} again)")
        return v

    @field_validator("on_miss")
    @classmethod
    def _on_miss(cls, v: str) -> str:
        if v not in ON_MISS:
            raise _FieldError((), _one_of(ON_MISS, v))
        return v

    @field_validator("rule")
    @classmethod
    def _rule(cls, v: str) -> str:
        if v not in CACHE_RULES:
            raise _FieldError((), _one_of(CACHE_RULES, v))
        return v

    @model_validator(mode="after")
    def _fits(self) -> CachingConfig:
        from meg_gym.caching import load_catalogue

        cat = load_catalogue()
        for i, name in enumerate(self.models):
            if cat[name].memory_gb > self.es_memory_gb:
                raise _FieldError(("models", i), f"must fit in es_memory_gb={self.es_memory_gb} "
                                                 f"(got {name!r} of {cat[name].memory_gb} GB)")
        return self


class EavesdropperConfig(_Frozen):
    """An eavesdropper with its own channel to the UE and the ESs (``meg_gym.eavesdropper``): it
    overhears every tensor sent and finishes the generation from its copy with the public model.

    awgn / perfect: ``snr_db`` (over the whole ``bandwidth_hz``, as ``channel.snr_db``) or
    ``snr_range_db`` (awgn: drawn per request, per ES) on both hops it overhears. umi / uma:
    ``position_m``, a static receiver at the UE's height: the ESs' downlinks reach it through its
    own TR 38.901 links (path loss, shadowing, fading, LOS state), the UE's uplink through the
    same law between the two UE-height antennas (NLOS, Rayleigh fading per request).
    ``encryption`` (digital transmission only): every tensor is sent AES-GCM encrypted, so an
    eavesdropper decodes nothing it can use (leakage 0), at ``encryption_overhead_bits`` more per
    tensor and the time to encrypt and decrypt it at ``encryption_rate_bps``."""

    snr_db: SnrDb = 0.0
    snr_range_db: tuple[SnrDb, SnrDb] | None = None
    position_m: Position | None = None
    encryption: Annotated[bool, Strict()] = False
    # NIST SP 800-38D (GCM): a 96-bit IV (8.2.1's recommended length) and a 128-bit tag sent with each message
    encryption_overhead_bits: _int_in(0, 10**6) = 224
    # AES-128-GCM throughput at each end; the default is measured on this project's CPU (docs/envs/eavesdropper.md)
    encryption_rate_bps: _in(1e6, 1e13) = 3.2e10
    leakage_table: Text | None = None  # profiled mode's table; None: configs/calibration/leakage_<model>_<mode>.json

    @field_validator("snr_range_db")
    @classmethod
    def _range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        return _snr_range(v)

    @field_validator("position_m", mode="before")
    @classmethod
    def _position(cls, v: Any) -> Any:
        return _check_position(v)


class DigitalTwinConfig(_Frozen):
    """Digital twins (``meg_gym.core``): every UE's twin asks for a regeneration every ``period_s``
    (one epoch per period, all twins in phase, instead of Poisson arrivals); an update is delivered
    when it arrives within the period without an outage and with quality >= ``min_quality``. A
    result later than the period is superseded by the next request (its age is never reset by it)."""

    period_s: Seconds = 2.0
    min_quality: Annotated[float, Strict(), Field(ge=0, le=1, allow_inf_nan=False)] = 0.0


class Scenario(_Frozen):
    """A whole scenario, validated and frozen. ``es`` always holds exactly ``num_es`` entries."""

    name: Annotated[str, Strict(), Field(min_length=1)] = "default"
    seed: _int_in(0, 2**63 - 1) = 0  # an int64, as numpy's and torch's generators take seeds
    model: Text = "tiny"
    # FLOPs and payload sizes from another model's geometry (e.g. sd15), content from ``model``:
    # the tiny LDM then stands in for Stable Diffusion at its real scale. None: ``model`` itself.
    cost_model: Text | None = None
    # the model the UE runs (Full UE and every UE-side denoising stage): a card that shares ``model``'s
    # VAE and text encoder (``shares:`` in its card, e.g. tiny_ue for tiny). None: ``model`` itself.
    ue_model: Text | None = None
    backend: Text = "live"
    # torch's intra-op threads when the model runs (live mode, cost counts); None: 1 for a model of
    # at most 128 px (the shipped tiny one: its ops are too small to split, and a second thread
    # that competes with other processes makes a step 3-4x slower; README, "Threads"), torch's own
    # default otherwise
    torch_threads: _int_in(1, 1024) | None = None
    # the torch device and dtype the model runs on in live mode and in ``calibrate`` (docs/models.md);
    # an unavailable device is an error when a live system is built (meg_gym.ldm.runtime)
    torch_device: Text = "cpu"  # cpu | cuda | cuda:N | mps
    torch_dtype: Text = "fp32"  # fp32 | fp16 | bf16
    num_es: _int_in(1, MAX_ES) = 2
    bandwidth_hz: BandwidthHz = 20.0e6
    transmission: TransmissionConfig = Field(default_factory=TransmissionConfig)
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    ue: UeConfig = Field(default_factory=UeConfig)
    es: tuple[EsConfig, ...] = Field(default_factory=lambda: (EsConfig(),) * 2)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)
    backhaul: BackhaulConfig = Field(default_factory=BackhaulConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    protocols: tuple[Text, ...] = Field(default_factory=lambda: tuple(protocol_names()))
    # of bandwidth_hz, offered to agents (each share is an action: a few dozen at most)
    bandwidth_shares: Annotated[tuple[Fraction, ...], Field(min_length=1, max_length=64)] = (0.25, 0.5, 1.0)
    # profiled mode's table: a file, or a bare name for configs/calibration/<name>.json; None: the model's own
    calibration: Text | None = None
    caching: CachingConfig | None = None  # model caching at the ESs (meg_gym.caching); None: one model, always there
    eavesdropper: EavesdropperConfig | None = None  # an eavesdropper and its leakage term; None: nobody listens
    digital_twin: DigitalTwinConfig | None = None  # periodic twin updates and their age of information; None: off

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        n = data.get("num_es", 2)
        valid_n = isinstance(n, int) and not isinstance(n, bool) and 1 <= n <= MAX_ES
        if valid_n and "protocols" not in data:
            multi = set(multi_es_protocols())
            data["protocols"] = [p for p in protocol_names() if n >= 2 or p not in multi]
        es = data.get("es", [{}])
        if valid_n and isinstance(es, (list, tuple)):
            if len(es) == 1:
                es = list(es) * n
            elif len(es) != n:
                raise _FieldError(("es",), f"must hold 1 entry (applied to every ES) or num_es={n} entries "
                                           f"(got {len(es)})")
            data["es"] = es
        return data

    @field_validator("backend")
    @classmethod
    def _backend(cls, v: str) -> str:
        if v not in BACKENDS:
            raise _FieldError((), _one_of(BACKENDS, v))
        return v

    @field_validator("torch_device")
    @classmethod
    def _torch_device(cls, v: str) -> str:
        from meg_gym.ldm.runtime import device_error

        err = device_error(v)
        if err is not None:
            raise _FieldError((), err)
        return v

    @field_validator("torch_dtype")
    @classmethod
    def _torch_dtype(cls, v: str) -> str:
        from meg_gym.ldm.runtime import DTYPES

        if v not in DTYPES:
            raise _FieldError((), _one_of(list(DTYPES), v))
        return v

    @field_validator("cost_model", "ue_model")
    @classmethod
    def _cost_model(cls, v: str | None) -> str | None:
        return None if v is None else cls._model(v)

    @field_validator("model")
    @classmethod
    def _model(cls, v: str) -> str:
        cards = model_cards()
        if v in cards:
            return v
        looks_like_path = "/" in v or "\\" in v or v.startswith((".", "~")) or Path(v).exists()
        if looks_like_path:
            if not Path(v).is_dir():
                raise _FieldError((), f"must be a model card name {cards} or an existing local folder "
                                      f"(got {v!r}: no such folder)")
            return v
        raise _FieldError((), f"must be a model card name {cards} or a local folder (got {v!r})")

    @field_validator("protocols")
    @classmethod
    def _protocols(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from meg_gym.protocols import PROTOCOLS, ProtocolError

        if not v:
            raise _FieldError((), "must name at least one protocol (got [])")
        known = protocol_names()
        seen: set[str] = set()
        for i, p in enumerate(v):
            try:
                named = p in known or p in PROTOCOLS  # a parametric family member (tsplit:<k>, <protocol>@<steps>)
            except ProtocolError as exc:  # a family's name with a bad parameter
                raise _FieldError((i,), str(exc)) from None
            if not named:
                raise _FieldError((i,), _one_of(known, p) + "; or 'tsplit:<k>', '<protocol>@<steps>[/<strength>]'")
            if p in seen:
                raise _FieldError((i,), f"must not repeat an earlier protocol (got {p!r} again)")
            seen.add(p)
        return v

    @model_validator(mode="after")
    def _features_fit(self) -> Scenario:
        if self.workload.satisfaction_threshold is not None and self.backend != "profiled":
            raise _FieldError(("workload", "satisfaction_threshold"), f"needs backend 'profiled': retries are not "
                                                                      f"modelled in live mode (got {self.backend!r})")
        eve = self.eavesdropper
        if eve is not None:
            kind = self.channel.kind
            if eve.encryption and self.transmission.mode != "digital":
                raise _FieldError(("eavesdropper", "encryption"), f"needs transmission.mode 'digital': analog "
                                                                  f"values cannot be encrypted (got "
                                                                  f"{self.transmission.mode!r})")
            if kind in ("umi", "uma") and eve.position_m is None:
                raise _FieldError(("eavesdropper", "position_m"), f"is required for channel kind {kind!r}: [x, y] "
                                                                  f"in metres (got None)")
            if kind in ("umi", "uma") and eve.snr_range_db is not None:
                raise _FieldError(("eavesdropper", "snr_range_db"), f"applies to channel kind 'awgn' only; kind "
                                                                    f"{kind!r} places the eavesdropper at position_m")
            if kind not in ("umi", "uma") and eve.position_m is not None:
                raise _FieldError(("eavesdropper", "position_m"), f"applies to channel kinds 'umi'/'uma' only; kind "
                                                                  f"{kind!r} gives it snr_db or snr_range_db")
            if kind == "perfect" and eve.snr_range_db is not None:
                raise _FieldError(("eavesdropper", "snr_range_db"), "applies to channel kind 'awgn' only (got "
                                                                    "'perfect')")
        if self.caching is not None:
            from meg_gym.protocols import PROTOCOLS

            ue_only = [p for p in self.protocols if all(getattr(s, "on", "ue") == "ue" for s in PROTOCOLS[p].steps)]
            if ue_only:
                raise _FieldError(("protocols",), f"must hold only protocols that run on an ES when 'caching' is set "
                                                  f"(the cache is the ESs'; got {ue_only})")
        return self

    def _shares_model(self, path: tuple, name: str | None) -> None:
        """A model another node runs (``ue_model``, ``es[i].model``) reads and writes ``model``'s latents and
        text embeddings (the temporal split and the parallel protocols hand them over), so it must be ``model``
        or a card that shares its parts; FLOPs at a stand-in's scale (``cost_model``) have no counterpart of
        such a model, so the two do not combine."""
        if name is None or name == self.model:
            return
        from meg_gym.ldm.cards import ModelError, model_card

        try:
            shares = model_card(name).get("shares") if name in model_cards() else None
        except ModelError as exc:
            raise _FieldError(path, str(exc)) from None
        if shares != self.model:
            raise _FieldError(path, f"must be 'model' ({self.model!r}) or a model card that shares its VAE and text "
                                    f"encoder ('shares: {self.model}'; got {name!r})")
        if self.cost_model is not None:
            raise _FieldError(path, f"must be unset (or 'model') with 'cost_model' {self.cost_model!r}: FLOPs at a "
                                    f"stand-in's scale have no counterpart of {name!r} (got {name!r})")

    @model_validator(mode="after")
    def _ue_model_fits(self) -> Scenario:
        self._shares_model(("ue_model",), self.ue_model)
        return self

    @model_validator(mode="after")
    def _es_variants_fit(self) -> Scenario:
        """Per-ES model variants (``es[i].model``, ``guidance_scale``, ``seed_offset``): each model shares
        ``model``'s parts; live mode only (a calibration table holds one quality per protocol, measured on
        ESs 0 and 1, not one per subset of differing ESs); no model with ``caching`` (the cache decides what an
        ES holds); and the same variant on every ES when a cooperative protocol is offered (its tiles are one
        generation: one UNet, one guidance scale and one noise draw over the whole latent, stages.py
        ``_denoise_tiles``)."""
        from meg_gym.protocols import PROTOCOLS

        fields = ("model", "guidance_scale", "seed_offset")
        variants = [es.variant(self.model, self.generation) for es in self.es]
        for i, es in enumerate(self.es):
            self._shares_model(("es", i, "model"), es.model)
            given = [f for f, v in zip(fields, variants[i]) if v is not None]
            if given and self.backend != "live":
                raise _FieldError(("es", i, given[0]), f"needs backend 'live': a calibration table holds one quality "
                                                       f"per protocol, not one per ES variant (got backend "
                                                       f"{self.backend!r})")
            if variants[i][0] is not None and self.caching is not None:
                raise _FieldError(("es", i, "model"), f"must be unset when 'caching' is set: the cache decides which "
                                                      f"models an ES holds (got {es.model!r})")
        joint = [p for p in self.protocols if any(getattr(s, "stage", "") == "denoise_tiles"
                                                  for s in PROTOCOLS[p].steps)]
        if joint:
            for i in range(1, len(variants)):
                for j, f in enumerate(fields):
                    if variants[i][j] != variants[0][j]:
                        raise _FieldError(("es", i, f), f"must equal 'es[0].{f}' ({variants[0][j]!r}) when "
                                                        f"'protocols' holds cooperative {joint}: their tiles are one "
                                                        f"generation (one UNet, guidance scale and noise draw; got "
                                                        f"{variants[i][j]!r})")
        return self

    @model_validator(mode="after")
    def _splits_fit(self) -> Scenario:
        """A temporal split ``tsplit:<k>`` must leave both nodes a denoising step: k in [1, n-1] for the
        n = int(steps x strength) steps img2img runs (under the placement's step budget, if any)."""
        from meg_gym.ldm.stages import denoising_loop_steps
        from meg_gym.protocols import PROTOCOLS

        for i, name in enumerate(self.protocols):
            for st in PROTOCOLS[name].steps:
                params = dict(getattr(st, "params", ()))
                if "split" not in params:
                    continue
                steps = params.get("steps", self.generation.steps)
                n = denoising_loop_steps(steps, params.get("strength", self.generation.strength))
                if not 1 <= params["split"] <= n - 1:
                    raise _FieldError(("protocols", i), f"must split the {n} denoising steps of {steps} steps at "
                                                        f"strength {params.get('strength', self.generation.strength)}"
                                                        f" with k in [1, {n - 1}] (got {name!r}; k = 0 is full_ue, "
                                                        f"k = {n} is ciag)")
        return self

    @model_validator(mode="after")
    def _smallest_band(self) -> Scenario:
        # the narrowest band an agent can ask for must still be a band (BandwidthHz's lower bound)
        lo = MIN_BANDWIDTH_HZ
        share = min(self.bandwidth_shares)
        if self.bandwidth_hz * share < lo:
            raise _FieldError(("bandwidth_shares",), f"must keep bandwidth_hz * share >= {lo:g} Hz (got share "
                                                     f"{share:g} of bandwidth_hz {self.bandwidth_hz:g})")
        return self

    @model_validator(mode="after")
    def _multi_es_needs_es(self) -> Scenario:
        if self.num_es < 2:
            multi = [p for p in self.protocols if p in set(multi_es_protocols())]
            if multi:
                raise _FieldError(("protocols",), f"must hold only single-ES protocols when num_es is 1 "
                                                  f"(got multi-ES {multi})")
        return self


# --------------------------------------------------------------------------------------
# ValidationError -> one line
# --------------------------------------------------------------------------------------
_SECTIONS: dict[str, type[BaseModel]] = {
    "": Scenario,
    "transmission": TransmissionConfig,
    "channel": ChannelConfig,
    "ue": UeConfig,
    "es": EsConfig,
    "generation": GenerationConfig,
    "backhaul": BackhaulConfig,
    "reward": RewardConfig,
    "reward.weights": RewardWeights,
    "workload": WorkloadConfig,
    "caching": CachingConfig,
    "eavesdropper": EavesdropperConfig,
    "digital_twin": DigitalTwinConfig,
}


def _bound(ctx: dict[str, Any], key: str) -> str:
    v = ctx[key]
    return str(int(v)) if isinstance(v, float) and v.is_integer() and abs(v) < 1e15 else str(v)


def _describe(err: Mapping[str, Any]) -> str:
    """One line for one pydantic error."""
    loc = tuple(err["loc"])
    kind = err["type"]
    ctx = err.get("ctx") or {}
    given = _show(err.get("input"))
    if kind == "value_error" and isinstance(ctx.get("error"), _FieldError):
        e = ctx["error"]
        return f"'{_path(loc + e.path)}' {e.message}"
    field = f"'{_path(loc)}'"
    if kind == "extra_forbidden":
        section = ".".join(p for p in loc[:-1] if isinstance(p, str))
        model = _SECTIONS.get(section)
        allowed = f"; allowed: {list(model.model_fields)}" if model else ""
        return f"{field} is not a known field{allowed}"
    simple = {
        "int_type": "must be an integer",
        "float_type": "must be a number",
        "finite_number": "must be a finite number",
        "string_type": "must be a string",
        "bool_type": "must be true or false",
        "tuple_type": "must be a list",
        "list_type": "must be a list",
        "model_type": "must be a mapping",
        "dict_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
    }
    if kind in simple:
        return f"{field} {simple[kind]} (got {given})"
    ops = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
           "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}
    if kind in ops:
        op, key = ops[kind]
        rng = _range_of(loc)
        if rng is not None:
            return f"{field} must be in {rng} (got {given})"
        return f"{field} must be {op} {_bound(ctx, key)} (got {given})"
    if kind == "string_too_short":
        return f"{field} must not be empty (got {given})"
    if kind in ("too_short", "too_long"):
        lo, hi = ctx.get("min_length"), ctx.get("max_length")
        n = lo if kind == "too_short" else hi
        size = f"{'at least' if kind == 'too_short' else 'at most'} {n} entr{'y' if n == 1 else 'ies'}"
        return f"{field} must hold {size} (got {given})"
    if kind == "missing":
        return f"{field} is required"
    if kind == "frozen_instance":
        return f"{field} cannot be changed: scenarios are frozen (use load_scenario with overrides)"
    msg = str(err.get("msg", kind)).replace("\n", " ")
    return f"{field} is invalid: {msg} (got {given})"


def _validate(data: Mapping[str, Any]) -> Scenario:
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc.errors()[0])) from None


# --------------------------------------------------------------------------------------
# YAML, merging, loading
# --------------------------------------------------------------------------------------
class _Loader(yaml.SafeLoader):
    """Safe YAML that also reads ``20e6`` as a float (YAML 1.1 wants ``20.0e6``) and refuses duplicate keys."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if isinstance(key, str) and key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def read_yaml(text: str) -> Any:
    """The project's YAML: safe (plain data only, no tags that build objects), ``20e6`` a float and no
    duplicate keys; the one reader of scenarios and training configs. Raises ``yaml.YAMLError``."""
    loader = _Loader(text)  # a SafeLoader: it constructs only YAML's standard types
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _read_yaml(path: Path, shown: str) -> dict[str, Any]:
    if not path.exists():
        raise ConfigError(f"config file {shown} does not exist (shipped scenarios: {shipped_scenarios()})")
    if not path.is_file():
        raise ConfigError(f"config file {shown} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
        data = read_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise ConfigError(f"config file {shown} is not valid YAML: {problem}{where}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {shown} could not be read: {str(exc).splitlines()[0]}") from None
    if data is None:  # an empty file: all defaults
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {shown} must hold a mapping at top level (got {type(data).__name__})")
    return data


def _merge(base: Mapping[str, Any], over: Mapping[str, Any], top: bool = True) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: mappings key by key, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            if top and key == "channel" and "kind" in value and value["kind"] != old.get("kind", "awgn"):
                out[key] = copy.deepcopy(dict(value))  # a new kind starts from its own defaults
            else:
                out[key] = _merge(old, value, top=False)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _nest(overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``{"channel__snr_db": 5}`` (or ``"channel.snr_db"``) -> ``{"channel": {"snr_db": 5}}``."""
    out: dict[str, Any] = {}
    for key, value in overrides.items():
        parts = re.split(r"__|\.", key)
        if not all(parts):
            raise ConfigError(f"override {key!r} is not a field path (use 'channel__snr_db' or 'channel.snr_db')")
        for part in reversed(parts[1:]):
            value = {part: value}
        out = _merge(out, {parts[0]: value}, top=True)
    return out


def load_scenario(source: str | Path | Mapping[str, Any] | Scenario | None = None, **overrides: Any) -> Scenario:
    """A validated, frozen :class:`Scenario`.

    ``source``: ``None`` (the defaults), a YAML file path, a shipped scenario's bare name
    (``"case_study"``: ``configs/scenarios/case_study.yaml``), a mapping, or a Scenario.
    ``overrides``: merged on top, key by key; ``channel={"snr_db": 5}``, ``channel__snr_db=5``
    and ``**{"channel.snr_db": 5}`` are the same. Raises :class:`ConfigError` (one line).
    """
    if source is None:
        data: dict[str, Any] = {}
    elif isinstance(source, Scenario):
        data = scenario_to_dict(source)
    elif isinstance(source, Mapping):
        data = dict(source)
    elif isinstance(source, (str, Path)):
        path = Path(source).expanduser()
        bare = isinstance(source, str) and not path.suffix and len(path.parts) == 1
        if bare and not path.exists() and (SCENARIOS_DIR / f"{source}.yaml").is_file():
            path = SCENARIOS_DIR / f"{source}.yaml"
        data = _read_yaml(path, str(source))
    else:
        raise ConfigError(f"scenario source must be a YAML path, a mapping or None (got {type(source).__name__})")
    for key in data:
        if not isinstance(key, str):
            raise ConfigError(f"'{key}' is not a known field; allowed: {list(Scenario.model_fields)}")
    if overrides:
        data = _merge(data, _nest(overrides))
    return _validate(data)


def scenario_to_dict(s: Scenario) -> dict[str, Any]:
    """Plain data (dicts, lists, numbers, strings; YAML-ready); ``load_scenario`` of it gives ``s`` back.

    ``channel`` holds only its kind's parameters.
    """
    data = s.model_dump(mode="python")
    data["channel"] = {"kind": s.channel.kind, **s.channel.params()}
    return yaml_ready(data)


def yaml_ready(obj: Any) -> Any:
    """Nested dicts with tuples turned into lists, as ``yaml.safe_dump`` / ``safe_load`` round-trip them."""
    if isinstance(obj, dict):
        return {k: yaml_ready(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [yaml_ready(v) for v in obj]
    return obj


def _plain_defaults(model: type[BaseModel]) -> dict[str, Any]:
    """A model's field defaults as plain data, without validating."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        if field.default_factory is not None:
            sub = field.annotation if isinstance(field.annotation, type) else None
            if sub and issubclass(sub, BaseModel):
                out[name] = _plain_defaults(sub)
            else:  # a table read from its owning module (the protocols)
                value = field.default_factory()
                out[name] = list(value) if isinstance(value, tuple) else value
        else:
            out[name] = list(field.default) if isinstance(field.default, tuple) else field.default
    return out


def _defaults() -> dict[str, Any]:
    data = _plain_defaults(Scenario)
    data["channel"] = {"kind": "awgn", **CHANNEL_DEFAULTS["awgn"]}
    data["es"] = [_plain_defaults(EsConfig)]  # one entry, applied to every ES
    return data


DEFAULT_SCENARIO: dict[str, Any] = _defaults()
"""The defaults as plain data (``es`` as the one entry that every ES takes)."""
