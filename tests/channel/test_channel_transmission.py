"""Transmission of real tensors: analog noise, repetition, digital quantisation, perfect, meta."""

import math

import pytest
import torch

from meg_gym.channel import (
    DigitalLink,
    airtime_s,
    quantize,
    transmit,
    transmit_text,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def big():
    return torch.randn(200_000, generator=gen(123)) * 3.0 + 1.0  # mean power 10


# ------------------------------------------------------------------------------------------
# analog
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("snr_db", [10.0, 0.0, -10.0])
def test_analog_noise_power_matches_snr(big, snr_db):
    tx = transmit(big, snr_db=snr_db, bandwidth_hz=1e6, mode="analog", bits_per_value=16, generator=gen(1))
    signal = float(big.double().pow(2).mean())
    noise = float((tx.received.double() - big.double()).pow(2).mean())
    assert noise == pytest.approx(signal / 10 ** (snr_db / 10), rel=0.05)
    assert tx.received.shape == big.shape and tx.received.dtype == big.dtype
    assert tx.payload_bits == big.numel() * 16
    assert tx.airtime_s == pytest.approx(big.numel() / 2e6)
    assert tx.channel_uses == big.numel() and tx.effective_snr_db == snr_db
    assert not tx.outage


def test_analog_repetition_raises_effective_snr(big):
    n, bw = big.numel(), 1e6
    one = transmit(big, snr_db=0.0, bandwidth_hz=bw, mode="analog", bits_per_value=16, generator=gen(2))
    # a budget for 4.5 passes gives r = 4 copies
    four = transmit(big, snr_db=0.0, bandwidth_hz=bw, mode="analog", bits_per_value=16, generator=gen(2),
                    airtime_budget_s=4.5 * n / (2 * bw))
    assert four.repetitions == 4 and four.channel_uses == 4 * n
    assert four.effective_snr_db == pytest.approx(10 * math.log10(4))
    assert four.airtime_s == pytest.approx(4 * n / (2 * bw))
    assert four.payload_bits == one.payload_bits  # overhead counts values, not copies
    p_one = float((one.received - big).double().pow(2).mean())
    p_four = float((four.received - big).double().pow(2).mean())
    assert p_one / p_four == pytest.approx(4.0, rel=0.05)
    # a budget under two passes changes nothing
    short = transmit(big, snr_db=0.0, bandwidth_hz=bw, mode="analog", bits_per_value=16, generator=gen(2),
                     airtime_budget_s=1.9 * n / (2 * bw))
    assert short.repetitions == 1 and torch.equal(short.received, one.received)


def test_analog_is_deterministic_per_generator_seed():
    x = torch.rand(3, 32, 32)
    kw = dict(snr_db=5.0, bandwidth_hz=1e6, mode="analog", bits_per_value=16)
    a = transmit(x, generator=gen(9), **kw).received
    b = transmit(x, generator=gen(9), **kw).received
    c = transmit(x, generator=gen(10), **kw).received
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_analog_keeps_low_precision_dtype():
    x = torch.rand(2, 8, dtype=torch.float16)
    tx = transmit(x, snr_db=20.0, bandwidth_hz=1e6, mode="analog", bits_per_value=16, generator=gen())
    assert tx.received.dtype == torch.float16


# ------------------------------------------------------------------------------------------
# digital
# ------------------------------------------------------------------------------------------
def test_digital_payload_airtime_and_exact_delivery():
    """TR 36.942's downlink abstraction by default: alpha 0.6, capped at 4.4 bit/s/Hz; the words arrive exactly."""
    x = torch.randn(4, 16, 16, generator=gen(3))
    tx = transmit(x, snr_db=10.0, bandwidth_hz=2e6, mode="digital", bits_per_value=8, generator=gen(4))
    assert tx.payload_bits == x.numel() * 8 and not tx.outage
    assert tx.airtime_s == pytest.approx(tx.payload_bits / (0.6 * 2e6 * math.log2(11.0)))
    capped = transmit(x, snr_db=40.0, bandwidth_hz=2e6, mode="digital", bits_per_value=8, generator=gen(4))
    assert capped.airtime_s == pytest.approx(tx.payload_bits / (4.4 * 2e6))
    lo, hi = float(x.min()), float(x.max())
    step = (hi - lo) / 255
    assert float((tx.received - x).abs().max()) <= step / 2 + 1e-6
    # below SNR_MIN the blocks are repeated (coverage enhancement): slower, still exact
    low = transmit(x, snr_db=-25.0, bandwidth_hz=2e6, mode="digital", bits_per_value=8, generator=gen(4))
    reps = math.ceil(10 ** 1.5)
    assert low.airtime_s == pytest.approx(reps * tx.payload_bits / (0.6 * 2e6 * math.log2(1.1)))
    assert torch.equal(low.received, tx.received) and not low.outage
    # beyond the repetitions allowed: nothing arrives
    none = transmit(x, snr_db=-25.0, bandwidth_hz=2e6, mode="digital", bits_per_value=8, generator=gen(4),
                    link=DigitalLink(max_repetitions=1))
    assert none.outage and none.airtime_s == math.inf


@pytest.mark.parametrize("bits", [1, 4, 12, 24])
def test_quantisation_error_is_bounded_by_half_a_step(bits):
    x = torch.randn(5000, generator=gen(5), dtype=torch.float64)
    tx = transmit(x, snr_db=30.0, bandwidth_hz=1e6, mode="digital", bits_per_value=bits, generator=gen())
    step = float(x.max() - x.min()) / (2**bits - 1)
    assert float((tx.received - x).abs().max()) <= step / 2 * (1 + 1e-9)
    words, lo, hi = quantize(x, bits)
    assert int(words.min()) == 0 and int(words.max()) == 2**bits - 1


def test_digital_32_bits_is_float_passthrough_and_constant_tensor_survives():
    x = torch.randn(100, generator=gen(6))
    tx = transmit(x, snr_db=10.0, bandwidth_hz=1e6, mode="digital", bits_per_value=32, generator=gen())
    assert torch.equal(tx.received, x) and tx.payload_bits == 3200
    const = torch.full((10,), 0.25)
    assert torch.equal(transmit(const, snr_db=10.0, bandwidth_hz=1e6, mode="digital", bits_per_value=6,
                                generator=gen()).received, const)


# ------------------------------------------------------------------------------------------
# perfect, meta, text
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["analog", "digital"])
def test_noiseless_is_bit_identical(mode):
    x = torch.randn(3, 17, 5, generator=gen(1))
    tx = transmit(x, snr_db=-10.0, bandwidth_hz=1e6, mode=mode, bits_per_value=4, generator=gen(), noiseless=True)
    assert torch.equal(tx.received, x) and not tx.outage
    assert tx.payload_bits == x.numel() * 4
    noisy = transmit(x, snr_db=-10.0, bandwidth_hz=1e6, mode=mode, bits_per_value=4, generator=gen())
    assert tx.airtime_s == pytest.approx(noisy.airtime_s) and tx.airtime_s > 0


@pytest.mark.parametrize("mode", ["analog", "digital"])
def test_meta_tensors_give_shapes_bits_and_airtime(mode):
    x = torch.empty((1, 4, 8, 8), device="meta")
    tx = transmit(x, snr_db=10.0, bandwidth_hz=1e6, mode=mode, bits_per_value=16, generator=gen())
    assert tx.received.device.type == "meta" and tx.received.shape == x.shape
    assert tx.payload_bits == 256 * 16
    expect = airtime_s(values=256, payload_bits=256 * 16, snr_db=10.0, bandwidth_hz=1e6, mode=mode)
    assert tx.airtime_s == pytest.approx(expect) and tx.airtime_s > 0


def test_text_is_lossless_with_utf8_payload():
    tx = transmit_text("a cat, Öl", snr_db=10.0, bandwidth_hz=1e6)
    assert tx.received == "a cat, Öl" and tx.payload_bits == 8 * 10
    assert tx.airtime_s == pytest.approx(80 / (0.6 * 1e6 * math.log2(11.0)))
    assert transmit_text("", snr_db=-30.0, bandwidth_hz=1e6).airtime_s == 0.0
    assert transmit_text("x", snr_db=-30.0, bandwidth_hz=1e6).received == "x"
    assert transmit_text("x", snr_db=-50.0, bandwidth_hz=1e6).outage  # beyond 2048 repetitions
    assert airtime_s(values=0, payload_bits=80, snr_db=10.0, bandwidth_hz=1e6, mode="digital") == \
        pytest.approx(tx.airtime_s)


# ------------------------------------------------------------------------------------------
# bad inputs
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("kw", "field"), [
    ({"mode": "quantum"}, "'mode' must be one of ['analog', 'digital'] (got 'quantum')"),
    ({"bits_per_value": 0}, "'bits_per_value' must be an int in [1, 32] (got 0)"),
    ({"bits_per_value": 33}, "'bits_per_value'"),
    ({"bits_per_value": 8.0}, "'bits_per_value'"),
    ({"bits_per_value": True}, "'bits_per_value'"),
    ({"bandwidth_hz": 0.0}, "'bandwidth_hz' must be a finite number > 0 (got 0.0)"),
    ({"bandwidth_hz": -1e6}, "'bandwidth_hz'"),
    ({"bandwidth_hz": float("inf")}, "'bandwidth_hz'"),
    ({"bandwidth_hz": float("nan")}, "'bandwidth_hz'"),
    ({"snr_db": float("nan")}, "'snr_db'"),
    ({"snr_db": "10"}, "'snr_db'"),
    ({"airtime_budget_s": -1.0}, "'airtime_budget_s'"),
    ({"generator": 3}, "'generator'"),
])
def test_bad_inputs_name_the_argument(kw, field):
    args = dict(snr_db=10.0, bandwidth_hz=1e6, mode="analog", bits_per_value=8, generator=None)
    args.update(kw)
    with pytest.raises(ValueError) as err:
        transmit(torch.zeros(4), **args)
    assert field in str(err.value)


def test_bad_tensor_and_text():
    with pytest.raises(ValueError, match="'x' must be a torch.Tensor"):
        transmit([1.0], snr_db=1.0, bandwidth_hz=1.0, mode="analog", bits_per_value=8)
    with pytest.raises(ValueError, match="'x' must be a floating-point tensor"):
        transmit(torch.arange(4), snr_db=1.0, bandwidth_hz=1.0, mode="analog", bits_per_value=8)
    ints = torch.arange(4)
    assert torch.equal(transmit(ints, snr_db=1.0, bandwidth_hz=1.0, mode="digital", bits_per_value=8,
                                noiseless=True).received, ints)
    with pytest.raises(ValueError, match="'snr_db'"):
        transmit_text("hi", snr_db=float("nan"), bandwidth_hz=1e6)
    with pytest.raises(ValueError, match="'text'"):
        transmit_text(b"hi", snr_db=1.0, bandwidth_hz=1e6)
