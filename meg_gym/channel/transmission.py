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
    identity for float32 input). The rate is the attenuated Shannon bound
    R = efficiency x B log2(1 + SNR) (Shannon, "A mathematical theory of communication",
    BSTJ 1948; the attenuation follows Mogensen et al., "LTE capacity compared to the
    Shannon bound", IEEE VTC 2007-Spring, and 3GPP TR 36.942 Annex A.2, which fit real
    link adaptation with a factor 0.6-0.75), and airtime = bits / R.

    The transmitter picks its rate for ``rate_snr_db`` (its channel knowledge; default the
    link SNR minus ``fading_margin_db``). A block whose SNR is below that rate's threshold
    (the SNR at which R is the attenuated capacity, i.e. ``rate_snr_db`` itself) is in
    outage and is sent again, each retransmission costing the same airtime and seeing a
    fresh block SNR drawn by ``fading_sampler`` (the same SNR without one), up to
    ``max_retransmissions``. If the last attempt still fails, the quantised words are
    delivered with bit errors at the uncoded BPSK bit error rate Q(sqrt(2 SNR)) of that
    block, which corrupts the tensor the way a failed decode would. With a fixed SNR and
    no margin or a positive one, a digital transmission is error-free.

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
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from meg_gym.channel._validate import check_choice, check_int, check_number, show

__all__ = [
    "MODES",
    "TextTransmission",
    "Transmission",
    "airtime_s",
    "analog_repetitions",
    "bpsk_ber",
    "dequantize",
    "quantize",
    "shannon_rate_bps",
    "spectral_efficiency",
    "transmit",
    "transmit_text",
]

MODES = ("analog", "digital")
_LN2 = math.log(2.0)
_CHUNK_VALUES = 1 << 16  # bit flips are drawn this many values at a time (bounds memory)


@dataclass(frozen=True)
class Transmission:
    """What one tensor transmission delivered and cost."""

    received: torch.Tensor  # what the receiver gets: same shape, dtype and device as sent
    payload_bits: int  # exactly numel x bits_per_value
    airtime_s: float  # all passes / attempts included
    snr_db: float  # the link SNR given
    effective_snr_db: float  # analog: after combining r copies; digital: SNR of the delivered block
    channel_uses: int  # real-valued channel uses (2 per complex symbol), all passes / attempts
    retransmissions: int  # digital: attempts after the first; analog: 0
    bit_errors: int  # digital: flipped bits delivered; analog: 0
    repetitions: int = 1  # analog: copies sent and combined; digital: 1


@dataclass(frozen=True)
class TextTransmission:
    """A text sent losslessly (UTF-8 bytes at the attenuated Shannon rate)."""

    received: str
    payload_bits: int
    airtime_s: float
    snr_db: float
    effective_snr_db: float
    channel_uses: int
    retransmissions: int = 0
    bit_errors: int = 0


# ------------------------------------------------------------------------------------------
# Rates and airtime
# ------------------------------------------------------------------------------------------
def spectral_efficiency(snr_db: float, efficiency: float = 1.0) -> float:
    """efficiency x log2(1 + SNR) in bit/s/Hz (Shannon 1948, attenuated as Mogensen et al. 2007)."""
    if snr_db > 300.0:  # 10^(snr/10) would overflow; log2(1 + s) = log2(s) to double precision
        return efficiency * snr_db / (10.0 * math.log10(2.0))
    return efficiency * math.log1p(10.0 ** (snr_db / 10.0)) / _LN2


def shannon_rate_bps(snr_db: float, bandwidth_hz: float, efficiency: float = 1.0) -> float:
    """R = efficiency x B log2(1 + SNR), in bit/s."""
    return bandwidth_hz * spectral_efficiency(snr_db, efficiency)


def bpsk_ber(snr_db: float) -> float:
    """Uncoded BPSK bit error rate Q(sqrt(2 SNR)) = erfc(sqrt(SNR)) / 2 (SNR = Eb/N0 per bit)."""
    return 0.5 * math.erfc(math.sqrt(10.0 ** (min(snr_db, 300.0) / 10.0)))


def analog_repetitions(values: int, bandwidth_hz: float, airtime_budget_s: float | None) -> int:
    """Copies r = floor(2 B T / numel) an airtime budget T allows (at least 1)."""
    if airtime_budget_s is None or values <= 0:
        return 1
    r = math.floor(2.0 * bandwidth_hz * airtime_budget_s / values + 1e-9)
    return r if r >= 2 else 1


def airtime_s(*, values: int, payload_bits: int, snr_db: float, bandwidth_hz: float, mode: str,
              efficiency: float = 0.75, airtime_budget_s: float | None = None, fading_margin_db: float = 0.0,
              rate_snr_db: float | None = None, max_retransmissions: int = 3) -> float:
    """Airtime of one transmission, without sending anything (the timing model's fast path).

    analog: r numel / (2B) (``values`` = numel; r from ``airtime_budget_s``, else 1).
    digital: bits / R with R = efficiency B log2(1 + SNR_rate), SNR_rate = ``rate_snr_db`` or
    ``snr_db - fading_margin_db``; if ``snr_db`` is below SNR_rate every attempt fails at a
    fixed SNR, so the airtime is (1 + ``max_retransmissions``) attempts, as :func:`transmit`
    would take without a fading sampler.
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
    rate_snr = snr_db - fading_margin_db if rate_snr_db is None else rate_snr_db
    se = spectral_efficiency(rate_snr, efficiency)
    if not se > 0.0:
        raise ValueError(f"'snr_db' is too low for any rate (got {snr_db!r} dB)")
    attempts = 1 + max_retransmissions if snr_db < rate_snr else 1
    return attempts * payload_bits / (bandwidth_hz * se)


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


def _flip_bits(words: torch.Tensor, bits_per_value: int, ber: float,
               generator: torch.Generator | None) -> tuple[torch.Tensor, int]:
    """Flip every bit of every word independently with probability ``ber``; returns (words, flips)."""
    import torch
    flat = words.reshape(-1).clone()
    device = generator.device if generator is not None else torch.device("cpu")
    weights = torch.ones(bits_per_value, dtype=torch.int64, device=device) << torch.arange(
        bits_per_value, dtype=torch.int64, device=device)
    flips = 0
    for start in range(0, flat.numel(), _CHUNK_VALUES):
        n = min(_CHUNK_VALUES, flat.numel() - start)
        hit = torch.rand((n, bits_per_value), generator=generator, device=device) < ber
        flips += int(hit.sum())
        mask = (hit.to(torch.int64) * weights).sum(dim=1)
        flat[start:start + n] ^= mask.to(flat.device)
    return flat.view(words.shape), flips


# ------------------------------------------------------------------------------------------
# Transmission
# ------------------------------------------------------------------------------------------
def _check_common(snr_db: float, bandwidth_hz: float, efficiency: float) -> tuple[float, float, float]:
    snr = check_number("snr_db", snr_db, finite=False)
    if snr == -math.inf:
        raise ValueError(f"'snr_db' must be a number > -inf, not NaN (got {show(snr_db)})")
    bw = check_number("bandwidth_hz", bandwidth_hz, lo=0.0, lo_open=True)
    eff = check_number("efficiency", efficiency, lo=0.0, hi=1.0, lo_open=True)
    return snr, bw, eff


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
    efficiency: float = 0.75,
    max_retransmissions: int = 3,
    fading_margin_db: float = 0.0,
    rate_snr_db: float | None = None,
    fading_sampler: Callable[[], float] | None = None,
) -> Transmission:
    """Send tensor ``x`` over a link at ``snr_db`` (dB) and ``bandwidth_hz``; see the module docstring.

    ``mode``: 'analog' or 'digital'. ``bits_per_value``: 1..32, sets ``payload_bits`` in both
    modes and the quantiser in digital mode. ``generator``: the source of all noise.
    ``noiseless``: the perfect channel (values arrive unchanged). ``airtime_budget_s``
    (analog): repeat and combine when the budget allows 2 or more passes. ``efficiency``,
    ``fading_margin_db``, ``rate_snr_db``, ``max_retransmissions``, ``fading_sampler``
    (a callable returning a fresh block SNR in dB, e.g. :meth:`ChannelModel.block_sampler`):
    digital rate and retransmissions.
    """
    import torch
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"'x' must be a torch.Tensor (got {type(x).__name__})")
    check_choice("mode", mode, MODES)
    bits = check_int("bits_per_value", bits_per_value, lo=1, hi=32)
    snr, bw, eff = _check_common(snr_db, bandwidth_hz, efficiency)
    retx_max = check_int("max_retransmissions", max_retransmissions, lo=0)
    margin = check_number("fading_margin_db", fading_margin_db)
    budget = None if airtime_budget_s is None else check_number("airtime_budget_s", airtime_budget_s, lo=0.0)
    rate_snr = snr - margin if rate_snr_db is None else check_number("rate_snr_db", rate_snr_db)
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
        r = analog_repetitions(numel, bw, budget)
        airtime = r * numel / (2.0 * bw)
        eff_snr = snr + 10.0 * math.log10(r)
        if is_meta:
            received = torch.empty_like(x)
        elif noiseless or numel == 0:
            received = x.clone()
        else:
            received = _analog_noise(x, eff_snr, generator)
        return Transmission(received, payload, airtime, snr, eff_snr, r * numel, 0, 0, r)

    # digital
    if payload == 0:
        received = torch.empty_like(x) if is_meta else x.clone()
        return Transmission(received, 0, 0.0, snr, snr, 0, 0, 0)
    se = spectral_efficiency(rate_snr, eff)  # bit per complex channel use
    if not se > 0.0:
        raise ValueError(f"'snr_db' is too low for any rate (got {snr_db!r} dB)")
    per_attempt_s = payload / (bw * se)
    per_attempt_uses = math.ceil(2.0 * payload / se - 1e-9) if math.isfinite(se) else 0
    block_snr, retx = snr, 0
    while block_snr < rate_snr and retx < retx_max:
        retx += 1
        if fading_sampler is not None:
            block_snr = check_number("fading_sampler()", fading_sampler(), finite=False)
    failed = block_snr < rate_snr
    airtime = (1 + retx) * per_attempt_s
    uses = (1 + retx) * per_attempt_uses
    if is_meta:
        return Transmission(torch.empty_like(x), payload, airtime, snr, block_snr, uses, retx, 0)
    if noiseless:
        return Transmission(x.clone(), payload, airtime, snr, block_snr, uses, retx, 0)
    words, lo, hi = quantize(x, bits)
    flips = 0
    if failed:
        words, flips = _flip_bits(words, bits, bpsk_ber(block_snr), generator)
    received = dequantize(words, lo, hi, bits, x.dtype)
    if bits == 32 and flips:  # flipped exponent bits: the receiver clamps to the known range
        xf = x.detach()
        lo_v, hi_v = float(xf.min()), float(xf.max())
        received = torch.nan_to_num(received, nan=(lo_v + hi_v) / 2, posinf=hi_v, neginf=lo_v).clamp_(lo_v, hi_v)
    return Transmission(received, payload, airtime, snr, block_snr, uses, retx, flips)


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


def transmit_text(text: str, *, snr_db: float, bandwidth_hz: float, efficiency: float = 0.75) -> TextTransmission:
    """Send ``text`` losslessly: payload 8 x len(UTF-8 bytes), airtime at the attenuated Shannon rate."""
    if not isinstance(text, str):
        raise ValueError(f"'text' must be a str (got {type(text).__name__})")
    snr, bw, eff = _check_common(snr_db, bandwidth_hz, efficiency)
    payload = 8 * len(text.encode("utf-8"))
    if payload == 0:
        return TextTransmission(text, 0, 0.0, snr, snr, 0)
    se = spectral_efficiency(snr, eff)
    if not se > 0.0:
        raise ValueError(f"'snr_db' is too low for any rate (got {snr_db!r} dB)")
    uses = math.ceil(2.0 * payload / se - 1e-9) if math.isfinite(se) else 0
    return TextTransmission(text, payload, payload / (bw * se), snr, snr, uses)
