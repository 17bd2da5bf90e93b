"""Sending a real tensor over the simulated link: analog or digital, with airtime and bits.

Payload
    ``payload_bits`` is exactly ``x.numel() * bits_per_value`` in both modes: the overhead
    the MEG users count is values x bits per value (no hidden headers; the power-scale of
    analog mode and the min/max of digital mode are side information and not counted).

Analog (:func:`transmit`, ``mode='analog'``)
    The values are scaled to unit mean power, sent as real channel symbols, hit by white
    Gaussian noise of variance 1/SNR, and scaled back, so the received noise power is
    P_x / SNR. Complex baseband of bandwidth B carries 2B real symbols per second (Nyquist),
    so one pass takes numel / (2B) seconds. With an ``airtime_budget_s`` T that allows
    r = floor(2BT / numel) >= 2 passes, r copies are sent and averaged (maximal-ratio
    combining on AWGN): SNR_eff = SNR + 10 log10(r), airtime r numel / (2B). The mean of r
    independent noises is drawn directly as one noise of variance 1/(r SNR).

Digital (``mode='digital'``)
    The values are uniformly quantised to ``bits_per_value`` bits between the tensor's min
    and max (32 bits: the float32 words are sent as they are, so quantisation is the
    identity for float32 input) and arrive bit-exact: channel coding and HARQ either deliver
    a transport block intact or lose it, and a lost block fails the request
    (:mod:`meg_gym.channel.digital`, which also gives the airtime: the truncated attenuated
    Shannon bound of 3GPP TR 36.942 A.2, repetitions below its minimum SNR, block fading and
    retransmissions). ``airtime_s`` here is that model's for a link without fading
    (``link``: its settings), and ``outage`` says that no rate reaches the receiver.

Perfect (``noiseless=True``)
    The tensor arrives bit-identical (``torch.equal``); bits and airtime are still those of
    the mode at ``snr_db``.

Meta tensors (device 'meta') carry shapes only: no noise is drawn, a meta tensor of the
same shape comes back, and bits and airtime are computed as usual. All noise comes from
the ``torch.Generator`` given (CPU generators work for tensors on any device); ``None``
falls back on torch's global generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from meg_gym.channel._validate import check_choice, check_int, check_number, show
from meg_gym.channel.digital import DigitalLink, _se, digital_transfer, spectral_efficiency_tr

__all__ = [
    "MODES",
    "TextTransmission",
    "Transmission",
    "airtime_s",
    "analog_repetitions",
    "dequantize",
    "quantize",
    "shannon_rate_bps",
    "spectral_efficiency",
    "transmit",
    "transmit_text",
]

MODES = ("analog", "digital")


@dataclass(frozen=True)
class Transmission:
    """What one tensor transmission delivered and cost."""

    received: torch.Tensor  # what the receiver gets: same shape, dtype and device as sent
    payload_bits: int  # exactly numel x bits_per_value
    airtime_s: float  # all passes / attempts included
    snr_db: float  # the link SNR given
    effective_snr_db: float  # analog: after combining r copies; digital: the link SNR
    channel_uses: int  # real-valued channel uses (2 per complex symbol), all passes
    repetitions: int = 1  # analog: copies sent and combined; digital: 1
    outage: bool = False  # digital: no rate reaches the receiver (nothing arrives; received is a copy)


@dataclass(frozen=True)
class TextTransmission:
    """A text sent losslessly (UTF-8 bytes at the attenuated Shannon rate)."""

    received: str
    payload_bits: int
    airtime_s: float
    snr_db: float
    effective_snr_db: float
    channel_uses: int
    outage: bool = False


# ------------------------------------------------------------------------------------------
# Rates and airtime
# ------------------------------------------------------------------------------------------
def spectral_efficiency(snr_db: float, efficiency: float = 1.0) -> float:
    """efficiency x log2(1 + SNR) in bit/s/Hz (Shannon 1948, attenuated as Mogensen et al. 2007), untruncated."""
    return float(_se(float(snr_db), float(efficiency), -math.inf, math.inf))


def shannon_rate_bps(snr_db: float, bandwidth_hz: float, efficiency: float = 1.0) -> float:
    """R = efficiency x B log2(1 + SNR), in bit/s."""
    return bandwidth_hz * spectral_efficiency(snr_db, efficiency)


def analog_repetitions(values: int, bandwidth_hz: float, airtime_budget_s: float | None) -> int:
    """Copies r = floor(2 B T / numel) an airtime budget T allows (at least 1)."""
    if airtime_budget_s is None or values <= 0:
        return 1
    r = math.floor(2.0 * bandwidth_hz * airtime_budget_s / values + 1e-9)
    return r if r >= 2 else 1


def airtime_s(*, values: int, payload_bits: int, snr_db: float, bandwidth_hz: float, mode: str,
              airtime_budget_s: float | None = None, link: DigitalLink | None = None) -> float:
    """Airtime of one transmission on a link without fading, without sending anything.

    analog: r numel / (2B) (``values`` = numel; r from ``airtime_budget_s``, else 1).
    digital: :mod:`meg_gym.channel.digital`'s transfer of ``payload_bits`` (``link``: its
    settings, None: the defaults); inf when no rate reaches the receiver.
    """
    if not 0.0 < bandwidth_hz < math.inf:
        raise ValueError(f"'bandwidth_hz' must be a finite number > 0 (got {show(bandwidth_hz)})")
    if mode == "analog":
        if values <= 0:
            return 0.0
        return analog_repetitions(values, bandwidth_hz, airtime_budget_s) * values / (2.0 * bandwidth_hz)
    if mode != "digital":
        check_choice("mode", mode, MODES)
    if payload_bits <= 0:
        return 0.0
    if math.isnan(snr_db):
        raise ValueError(f"'snr_db' must be a number (got {show(snr_db)})")
    a, _, failed = digital_transfer(payload_bits, bandwidth_hz, snr_db, link or DigitalLink())
    return math.inf if failed else a


# ------------------------------------------------------------------------------------------
# Quantisation
# ------------------------------------------------------------------------------------------
def quantize(x: torch.Tensor, bits_per_value: int) -> tuple[torch.Tensor, float, float]:
    """Uniform quantisation to ``bits_per_value`` bits between min(x) and max(x).

    Returns (words, lo, hi): int64 words in [0, 2^b - 1], and the side information. The
    step is (hi - lo) / (2^b - 1), so the error after :func:`dequantize` is at most step/2.
    With 32 bits the words are the float32 bit patterns (quantisation is the identity).
    """
    import torch
    if bits_per_value == 32:
        words = x.detach().to(torch.float32).contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
        return words, math.nan, math.nan
    xd = x.detach().to(torch.float64)
    if xd.numel() == 0:
        return torch.zeros(xd.shape, dtype=torch.int64, device=xd.device), 0.0, 0.0
    lo, hi = float(xd.min()), float(xd.max())
    levels = (1 << bits_per_value) - 1
    if hi > lo:
        words = torch.round((xd - lo) * (levels / (hi - lo))).clamp_(0, levels).to(torch.int64)
    else:
        words = torch.zeros(xd.shape, dtype=torch.int64, device=xd.device)
    return words, lo, hi


def dequantize(words: torch.Tensor, lo: float, hi: float, bits_per_value: int, dtype: torch.dtype) -> torch.Tensor:
    """The values that ``words`` stand for (inverse of :func:`quantize`), as ``dtype``."""
    import torch
    if bits_per_value == 32:
        signed = torch.where(words >= (1 << 31), words - (1 << 32), words).to(torch.int32)
        return signed.view(torch.float32).to(dtype)
    levels = (1 << bits_per_value) - 1
    return (lo + words.to(torch.float64) * ((hi - lo) / levels)).to(dtype)


# ------------------------------------------------------------------------------------------
# Transmission
# ------------------------------------------------------------------------------------------
def _check_common(snr_db: float, bandwidth_hz: float) -> tuple[float, float]:
    snr = check_number("snr_db", snr_db, finite=False)
    if snr == -math.inf:
        raise ValueError(f"'snr_db' must be a number > -inf, not NaN (got {show(snr_db)})")
    bw = check_number("bandwidth_hz", bandwidth_hz, lo=0.0, lo_open=True)
    return snr, bw


def transmit(
    x: torch.Tensor,
    *,
    snr_db: float,
    bandwidth_hz: float,
    mode: str,
    bits_per_value: int,
    generator: torch.Generator | None = None,
    noiseless: bool = False,
    airtime_budget_s: float | None = None,
    repetitions: int | None = None,
    link: DigitalLink | None = None,
) -> Transmission:
    """Send tensor ``x`` over a link at ``snr_db`` (dB) and ``bandwidth_hz``; see the module docstring.

    ``mode``: 'analog' or 'digital'. ``bits_per_value``: 1..32, sets ``payload_bits`` in both
    modes and the quantiser in digital mode. ``generator``: the source of all noise.
    ``noiseless``: the perfect channel (values arrive unchanged). ``airtime_budget_s``
    (analog): repeat and combine when the budget allows 2 or more passes; ``repetitions``
    (analog): send that many copies instead (a scenario's ``analog_repetitions``). ``link``: the
    digital link's settings (:class:`~meg_gym.channel.digital.DigitalLink`; None: its defaults).
    """
    import torch
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"'x' must be a torch.Tensor (got {type(x).__name__})")
    check_choice("mode", mode, MODES)
    bits = check_int("bits_per_value", bits_per_value, lo=1, hi=32)
    snr, bw = _check_common(snr_db, bandwidth_hz)
    budget = None if airtime_budget_s is None else check_number("airtime_budget_s", airtime_budget_s, lo=0.0)
    if repetitions is not None:
        check_int("repetitions", repetitions, lo=1)
        if budget is not None:
            raise ValueError("give 'repetitions' or 'airtime_budget_s', not both")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise ValueError(f"'generator' must be a torch.Generator or None (got {type(generator).__name__})")
    if x.is_complex():
        raise ValueError(f"'x' must be a real tensor (got {x.dtype})")
    is_meta = x.device.type == "meta"
    if not (noiseless or is_meta or x.is_floating_point()):
        raise ValueError(f"'x' must be a floating-point tensor unless the channel is noiseless (got {x.dtype})")
    numel = x.numel()
    payload = numel * bits

    if mode == "analog":
        r = analog_repetitions(numel, bw, budget) if repetitions is None else int(repetitions)
        airtime = r * numel / (2.0 * bw)
        eff_snr = snr + 10.0 * math.log10(r)
        if is_meta:
            received = torch.empty_like(x)
        elif noiseless or numel == 0:
            received = x.clone()
        else:
            received = _analog_noise(x, eff_snr, generator)
        return Transmission(received, payload, airtime, snr, eff_snr, r * numel, r)

    # digital: bit-exact after quantisation, or nothing at all (outage)
    if payload == 0:
        received = torch.empty_like(x) if is_meta else x.clone()
        return Transmission(received, 0, 0.0, snr, snr, 0)
    lk = link or DigitalLink()
    airtime, _, failed = digital_transfer(payload, bw, snr, lk)
    se = spectral_efficiency_tr(snr - lk.margin_db, lk)
    uses = math.ceil(2.0 * payload / se - 1e-9) if 0.0 < se < math.inf else 0
    if is_meta:
        received = torch.empty_like(x)
    elif noiseless or failed:
        received = x.clone()
    else:
        words, lo, hi = quantize(x, bits)
        received = dequantize(words, lo, hi, bits, x.dtype)
    return Transmission(received, payload, math.inf if failed else airtime, snr, snr, uses, 1, bool(failed))


def _analog_noise(x: torch.Tensor, snr_db: float, generator: torch.Generator | None) -> torch.Tensor:
    """x + n with n ~ N(0, P_x / SNR): unit-power normalisation, noise of variance 1/SNR, de-normalisation."""
    import torch
    work = torch.float64 if x.dtype == torch.float64 else torch.float32
    xw = x.detach().to(work)
    power = float(xw.pow(2).mean())
    scale = math.sqrt(power) if power > 0.0 else 1.0  # side information, not counted
    std = scale / math.sqrt(10.0 ** (snr_db / 10.0)) if snr_db < 3000.0 else 0.0
    device = generator.device if generator is not None else x.device
    noise = torch.randn(x.shape, generator=generator, device=device, dtype=work).to(x.device)
    return (xw + noise * std).to(x.dtype)


def transmit_text(text: str, *, snr_db: float, bandwidth_hz: float,
                  link: DigitalLink | None = None) -> TextTransmission:
    """Send ``text`` losslessly: payload 8 x len(UTF-8 bytes), airtime of the digital link (``link``)."""
    if not isinstance(text, str):
        raise ValueError(f"'text' must be a str (got {type(text).__name__})")
    snr, bw = _check_common(snr_db, bandwidth_hz)
    payload = 8 * len(text.encode("utf-8"))
    if payload == 0:
        return TextTransmission(text, 0, 0.0, snr, snr, 0)
    lk = link or DigitalLink()
    airtime, _, failed = digital_transfer(payload, bw, snr, lk)
    se = spectral_efficiency_tr(snr - lk.margin_db, lk)
    uses = math.ceil(2.0 * payload / se - 1e-9) if 0.0 < se < math.inf else 0
    return TextTransmission(text, payload, math.inf if failed else airtime, snr, snr, uses, bool(failed))
