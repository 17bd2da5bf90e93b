"""Cooperative tiles that exchange activations (``generation.exchange: activations``): DistriFusion's
synchronous patch parallelism, which gives the monolithic UNet's result; the values exchanged counted by
hooks on the real modules; each ES's FLOPs its owned share; the keys of the shipped tables unchanged."""

import json
from dataclasses import replace

import pytest
import torch

from meg_gym.config import ConfigError, load_scenario
from meg_gym.ldm.stages import _ActivationTraffic, owned_columns, tile_layout
from tests.test_cooperative import SETTINGS, run

ACT = replace(SETTINGS, exchange="activations")


@pytest.mark.parametrize("protocol, num_es", [("uidcg", 2), ("uidcg", 3)])
def test_exchanged_activations_give_ciag_exactly(tiny, request_, protocol, num_es):
    """With the shipped 2-column halo (latent exchange: another image), the tiles give CIAG's image bit for bit."""
    ciag = run(tiny, request_, "ciag", 1).output
    assert not torch.equal(run(tiny, request_, protocol, num_es).output, ciag)
    assert torch.equal(run(tiny, request_, protocol, num_es, ACT).output, ciag)


def test_each_es_counts_the_share_of_the_work_it_owns_and_the_group_waits_for_every_round(tiny, request_):
    rate, latency = 1e8, 1e-3
    res = run(tiny, request_, "uidcg", 3, ACT, backhaul=(rate, latency))
    ciag = run(tiny, request_, "ciag", 1)
    unet = next(c.flops for c in ciag.costs if c.name == "denoise")
    owned = owned_columns(tile_layout(tiny.latent_size, 3, ACT.tile_overlap, 4), tiny.latent_size)
    costs = [c for c in res.costs if c.name == "denoise_tiles"]
    assert [c.flops for c in costs] == [unet * (b - a) // tiny.latent_size for a, b in owned]
    assert len({c.exchanges for c in costs}) == 1 and costs[0].exchanges > 0
    exchange = costs[0].exchanges * latency + max(c.backhaul_bits for c in costs) / rate
    assert res.summary["backhaul_s"] == pytest.approx(exchange, rel=1e-12)
    assert res.summary["backhaul_bits"] == sum(c.backhaul_bits for c in costs)


def test_the_counted_values_are_the_layers_halos_keys_values_and_group_sums():
    """On a small stack, counted by hand: two tiles owning columns 0-7 and 8-15 of a 16-wide map."""
    from diffusers.models.attention_processor import Attention

    conv = torch.nn.Conv2d(4, 8, 3, padding=1)
    down = torch.nn.Conv2d(8, 8, 3, stride=2, padding=1)
    norm = torch.nn.GroupNorm(2, 8)
    attn = Attention(query_dim=8, heads=2, dim_head=4)
    stack = torch.nn.ModuleList([conv, down, norm, attn])
    traffic = _ActivationTraffic(stack, [0, 8, 16], 16, 16)
    x = torch.randn(2, 4, 16, 16)
    with torch.no_grad():
        y = norm(down(conv(x)))  # (2, 8, 8, 8)
        attn(y.flatten(2).transpose(1, 2))  # 64 tokens, 8 x 8
    traffic.remove()
    batch_rows = 2 * 16
    # 3x3 conv: each tile reads one column beyond its own, from the other, of 4 channels
    conv_vals = [batch_rows * 4, batch_rows * 4]
    # 3x3 stride-2 conv, owned outputs 0-3 | 4-7 of 8: tile 0 reads input columns -1..8 (its own 0..7), tile 1
    # reads 7..16: input column 7 (tile 0's), 8 channels
    down_vals = [batch_rows * 8, 0]
    norm_vals = [2 * 2 * 2, 2 * 2 * 2]  # (sum, sum of squares) x batch x groups, to the one other tile
    attn_vals = [2 * 2 * 8 * (8 * 4)] * 2  # keys and values x batch x width 8 x 32 owned tokens
    assert traffic.sent == [sum(v) for v in zip(conv_vals, down_vals, norm_vals, attn_vals)]
    assert traffic.exchanges == 4


def test_meta_counts_equal_live_counts(tiny, request_):
    from meg_gym.ldm.components import meta_copy

    live = run(tiny, request_, "uidcg", 2, ACT)
    meta = meta_copy(tiny)
    request_meta = replace(request_, image=torch.empty(1, 3, 64, 64, device="meta"))
    counted = run(meta, request_meta, "uidcg", 2, ACT)
    assert [(c.flops, c.backhaul_bits, c.exchanges) for c in live.costs if c.name == "denoise_tiles"] == \
        [(c.flops, c.backhaul_bits, c.exchanges) for c in counted.costs if c.name == "denoise_tiles"]


def test_the_setting_is_keyed_only_when_not_the_default():
    from meg_gym import costs
    from meg_gym.core import check_table_matches
    from meg_gym.quality.calibrate import settings_key
    from meg_gym.system import MegSystem

    plain = MegSystem(load_scenario("default", backend="profiled"), judge=None)
    act = MegSystem(load_scenario("default", backend="profiled", generation={"exchange": "activations"}),
                    judge=None)
    keys = [json.loads(costs.entry_key(s.cost_comps, "uidcg", 2, s.settings, costs.transmission_key(s.scenario)))
            for s in (plain, act)]
    assert "exchange" not in keys[0]["settings"] and keys[1]["settings"]["exchange"] == "activations"
    assert "exchange" not in settings_key(plain) and settings_key(act)["exchange"] == "activations"
    from meg_gym.core import load_table_for

    table = load_table_for(plain.scenario)  # the shipped table, measured with latent exchange
    check_table_matches(plain.scenario, table)
    with pytest.raises(ValueError, match="'generation.exchange' is 'activations' but the calibration table"):
        check_table_matches(act.scenario, table)


@pytest.mark.parametrize("generation, needle", [
    ({"exchange": "layers"}, "'generation.exchange' must be one of ['latent', 'activations'] (got 'layers')"),
    ({"exchange": "activations", "exchange_every": 2},
     "'generation.exchange_every' must be 1 with exchange 'activations'"),
])
def test_bad_exchange_values_are_one_line_errors(generation, needle):
    with pytest.raises(ConfigError) as err:
        load_scenario(None, generation=generation)
    assert needle in str(err.value) and "\n" not in str(err.value)
