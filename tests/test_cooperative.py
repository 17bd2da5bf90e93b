"""Cooperative tiles that exchange their borders (UIDCG, DCSUC): as one image, the exchange's bits
from the real tensors, and the synchronised timing of the joint group."""

from dataclasses import replace

import pytest
import torch

from meg_gym.config import ConfigError, load_scenario
from meg_gym.executor import LinkConditions, NodeCompute, execute
from meg_gym.ldm.stages import GenerationSettings, owned_columns, tile_layout
from meg_gym.protocols import place
from meg_gym.timing import compile_plan

SETTINGS = GenerationSettings(steps=6, strength=0.7, guidance_scale=3.0, complete_steps=2, complete_strength=0.5)


def links(num_es, bits=16):
    return LinkConditions(snr_db={(i, d): 10.0 for i in range(num_es) for d in ("ul", "dl")}, bandwidth_hz=5e6,
                          bits_per_value=bits, noiseless=True)


def run(tiny, request_, protocol, num_es=2, settings=SETTINGS, es_flops=None, backhaul=None, bits=16):
    es_flops = es_flops or {i: 3e13 for i in range(num_es)}
    return execute(place(protocol, tuple(range(num_es))), tiny, request_.image, request_.prompt, settings=settings,
                   links=links(num_es, bits), compute=NodeCompute(2e12, es_flops, backhaul=backhaul),
                   generator=torch.Generator().manual_seed(5), channel_generator=torch.Generator().manual_seed(6))


@pytest.mark.parametrize("num_es", [2, 3])
def test_tiles_as_wide_as_the_latent_give_ciag_exactly(tiny, request_, num_es):
    """Split equals monolithic: tiles that cover the whole latent and exchange borders denoise the
    very latent CIAG denoises (same noise, same steps), so the UE decodes the same image."""
    wide = replace(SETTINGS, tile_overlap=tiny.latent_size)
    ciag = run(tiny, request_, "ciag", 1, wide)
    uidcg = run(tiny, request_, "uidcg", num_es, wide)
    assert torch.equal(uidcg.output, ciag.output)


def test_exchanging_borders_makes_strips_closer_to_one_image(tiny, request_):
    """With the shipped 2-pixel halo, exchanged borders bring UIDCG nearer CIAG than strips alone."""
    ciag = run(tiny, request_, "ciag", 1).output
    alone = run(tiny, request_, "uidcg", 2, replace(SETTINGS, exchange_every=0)).output
    together = run(tiny, request_, "uidcg", 2).output
    assert (together - ciag).abs().mean() < (alone - ciag).abs().mean()


@pytest.mark.parametrize("every", [1, 2, 4])
@pytest.mark.parametrize("bits", [8, 16])
def test_backhaul_bits_are_the_exchanged_columns(tiny, request_, every, bits):
    """Each ES sends, per exchange, the columns it owns that lie in another ES's tile: values
    counted from the layout here, bits = values x bits per value; none after the last step."""
    settings = replace(SETTINGS, exchange_every=every)
    res = run(tiny, request_, "uidcg", 3, settings, bits=bits)
    size, c = tiny.latent_size, tiny.latent_channels
    layout = tile_layout(size, 3, settings.tile_overlap, 4)
    owned = owned_columns(layout, size)
    denoising = int(settings.steps * settings.strength)
    exchanges = (denoising - 1) // every
    for k, cost in enumerate(c for c in res.costs if c.name == "denoise_tiles"):
        cols = sum(max(0, min(owned[k][1], s + w) - max(owned[k][0], s)) for j, (s, w) in enumerate(layout) if j != k)
        assert cost.exchanges == exchanges
        assert cost.backhaul_bits == exchanges * c * size * cols * bits
    assert res.summary["backhaul_bits"] == sum(c.backhaul_bits for c in res.costs)
    # each ES sends the UE only the columns it owns: one latent in all, as CIAG's downlink
    assert res.summary["downlink_bits"] == c * size * size * bits


def test_strips_alone_exchange_nothing_and_send_whole_strips(tiny, request_):
    res = run(tiny, request_, "uidcg", 2, replace(SETTINGS, exchange_every=0))
    assert res.summary["backhaul_bits"] == 0 and res.summary["backhaul_s"] == 0.0
    w = tile_layout(tiny.latent_size, 2, SETTINGS.tile_overlap, 4)[0][1]
    assert res.summary["downlink_bits"] == 2 * tiny.latent_channels * tiny.latent_size * w * 16


def test_joint_group_waits_for_its_slowest_es_and_the_exchanges(tiny, request_):
    """The tiles step in lockstep: the group starts when its last ES may and holds every ES for
    the slowest ES's compute plus each exchange's latency and the largest sender's bits / rate."""
    rate, latency = 1e6, 0.02
    res = run(tiny, request_, "uidcg", 2, es_flops={0: 1e12, 1: 4e12}, backhaul=(rate, latency))
    group = [r for r in res.trace if r.name == "denoise_tiles"]
    costs = [c for c in res.costs if c.name == "denoise_tiles"]
    assert len(group) == 2 and group[0].start_s == group[1].start_s and group[0].end_s == group[1].end_s
    slowest = max(c.flops / f for c, f in zip(costs, (1e12, 4e12)))
    exchange = costs[0].exchanges * latency + max(c.backhaul_bits for c in costs) / rate
    assert group[0].end_s - group[0].start_s == pytest.approx(slowest + exchange, rel=1e-12)
    assert res.summary["backhaul_s"] == pytest.approx(exchange, rel=1e-12)
    # the compiled walk gives the same floats
    plan = compile_plan(place("uidcg", (0, 1)), res.costs)
    fast, _ = plan.timing(ue_flops_per_s=2e12, es_flops_per_s=[1e12, 4e12], snr_ul_db=[10.0, 10.0],
                          snr_dl_db=[10.0, 10.0], bandwidth_hz=5e6, mode="analog", ue_power_w=6.0,
                          ue_tx_power_w=0.2, backhaul=(rate, latency))
    assert fast == res.summary


def test_dcsuc_exchanges_and_sends_owned_sketch_columns(tiny, request_):
    res = run(tiny, request_, "dcsuc", 2)
    denoising = int(SETTINGS.steps * SETTINGS.strength)
    assert [c.exchanges for c in res.costs if c.name == "denoise_tiles"] == [denoising] * 2  # and one at the end
    side = tiny.image_size // SETTINGS.sketch_scale
    assert res.summary["downlink_bits"] == 3 * side * side * 16  # one sketch in all
    assert res.output.shape == (1, 3, tiny.image_size, tiny.image_size)


@pytest.mark.parametrize("section, value, needle", [
    ({"generation": {"exchange_every": -1}}, None, "'generation.exchange_every' must be in [0, 1000] (got -1)"),
    ({"backhaul": {"rate_bps": 0.0}}, None, "'backhaul.rate_bps' must be in [1000, 1e+13]"),
    ({"backhaul": {"latency_s": -1.0}}, None, "'backhaul.latency_s' must be in [0, 10] (got -1.0)"),
    ({"backhaul": {"rate": 1e9}}, None, "'backhaul.rate' is not a known field"),
])
def test_bad_exchange_settings_are_one_line_errors(section, value, needle):
    with pytest.raises(ConfigError) as err:
        load_scenario(section)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_tiles_that_do_not_overlap_exchange_nothing_and_wait_for_nothing(tiny, request_):
    """Two strips of half the latent each (halo 0) share no column: no exchange, no backhaul wait."""
    res = run(tiny, request_, "uidcg", 2, replace(SETTINGS, tile_overlap=0), backhaul=(1e3, 1.0))
    assert [c.exchanges for c in res.costs if c.name == "denoise_tiles"] == [0, 0]
    assert res.summary["backhaul_s"] == 0.0 and res.summary["backhaul_bits"] == 0
