"""FLOP counting: exact on small ops, the SD-1.5 stage figures on the meta model, the cache."""

from __future__ import annotations

import pytest
import torch

from meg_gym.compute import CFG_STEP_FLOPS, FlopCache, count_flops, measure_ldm_flops, shape_signature

# Reference figures for Stable Diffusion 1.5 at 512x512 (the brief's, from the MEG case study)
SD15_REFERENCE = {"vae_encode_flops": 1.1e12, "unet_cfg_step_flops": 1.6e12, "vae_decode_flops": 2.5e12}


def test_count_flops_matches_the_matmul_rule():
    layer = torch.nn.Linear(16, 8, bias=False)
    x = torch.randn(4, 16)
    out, flops = count_flops(layer, x)
    assert out.shape == (4, 8)
    assert flops == 2 * 4 * 16 * 8  # 2 FLOPs per multiply-accumulate


def test_count_flops_works_on_meta_tensors_and_passes_kwargs():
    with torch.device("meta"):
        conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        x = torch.empty(1, 3, 32, 32)
    out, flops = count_flops(conv, input=x)
    assert out.device.type == "meta" and out.shape == (1, 8, 32, 32)
    assert flops == 2 * (3 * 3 * 3) * 8 * 32 * 32


def test_attention_counts_the_same_on_the_cpu_and_the_meta_device():
    """The CPU's fused attention kernel is counted as the meta device's decomposition (Q K^T and P V):
    before, a live CPU run counted no attention FLOPs and the shared FLOP cache held whichever ran first."""
    q = torch.randn(2, 8, 64, 16)
    cpu = count_flops(torch.nn.functional.scaled_dot_product_attention, q, q, q)[1]
    meta = count_flops(torch.nn.functional.scaled_dot_product_attention, *(q.to("meta"),) * 3)[1]
    assert cpu == meta == 2 * 2 * (2 * 8 * 64 * 64 * 16)


def test_a_unet_step_counts_the_same_live_and_on_meta(tiny):
    from meg_gym.ldm.components import meta_copy

    x, t, emb = torch.randn(2, 4, 16, 16), torch.tensor(500), torch.randn(2, 16, 64)
    live = count_flops(tiny.unet, x, t, encoder_hidden_states=emb)[1]
    m = meta_copy(tiny).unet
    meta = count_flops(m, x.to("meta"), t.to("meta"), encoder_hidden_states=emb.to("meta"))[1]
    assert live == meta > 0


def test_count_flops_needs_a_callable():
    with pytest.raises(TypeError, match="'fn' must be callable"):
        count_flops(3)


def test_shape_signature_keeps_what_changes_the_work():
    a = {"image": torch.zeros(1, 3, 8, 8), "prompt": "a red cat", "steps": 20}
    b = {"image": torch.ones(1, 3, 8, 8), "prompt": "another prompt", "steps": 20}
    c = {"image": torch.zeros(1, 3, 16, 16), "prompt": "a red cat", "steps": 20}
    d = {"image": torch.zeros(1, 3, 8, 8), "prompt": "a red cat", "steps": 30}
    assert shape_signature(a) == shape_signature(b)  # values and prompt text do not matter
    assert shape_signature(a) != shape_signature(c)  # shapes do
    assert shape_signature(a) != shape_signature(d)  # so do numbers
    hash(shape_signature(a))


def test_flop_cache_counts_each_shape_once():
    layer = torch.nn.Linear(8, 8)
    cache = FlopCache()
    _, f1 = cache.run("m", "lin", layer, torch.randn(2, 8))
    out, f2 = cache.run("m", "lin", layer, torch.randn(2, 8))
    _, f3 = cache.run("m", "lin", layer, torch.randn(5, 8))
    assert f1 == f2 == 2 * 2 * 8 * 8 and f3 == 2 * 5 * 8 * 8
    assert out.shape == (2, 8)
    assert (cache.hits, cache.misses, len(cache)) == (1, 2, 2)
    key = FlopCache.key("m", "lin", (), {"x": torch.zeros(2, 8)})  # the executor's key/get/put style
    assert cache.get(key) is None
    cache.put(key, 7)
    assert cache.get(key) == 7 and key in cache
    with pytest.raises(ValueError, match="'flops' must be an int >= 0"):
        cache.put(key, -1)


@pytest.fixture(scope="module")
def sd15():
    from meg_gym.ldm.components import load_model

    return load_model("sd15")


def test_sd15_stage_flops_on_the_meta_model(sd15):
    """What FlopCounterMode measures for SD-1.5 at 512x512, against the reference figures (+-25%)."""
    assert sd15.device.type == "meta"
    measured = measure_ldm_flops(sd15)
    for field, ref in SD15_REFERENCE.items():
        got = getattr(measured, field)
        assert abs(got - ref) / ref < 0.25, (field, got, ref)
    # the exact counts the device presets are derived from
    assert measured.unet_cfg_step_flops == pytest.approx(CFG_STEP_FLOPS["sd15"], rel=5e-3)
    assert measured.vae_encode_flops == pytest.approx(1.117e12, rel=5e-3)
    assert measured.vae_decode_flops == pytest.approx(2.515e12, rel=5e-3)
    assert measured.text_encode_flops == pytest.approx(1.33e10, rel=5e-3)
    assert measured.generation_flops(50, encode=False, text_prompts=0) == (
        50 * measured.unet_cfg_step_flops + measured.vae_decode_flops)


def test_sd21_base_cfg_step_flops(sd15):
    """The SD 2.1-base UNet (the phone preset's figure is for it) counted like SD 1.5's."""
    cfg = dict(sd15.unet.config)
    cfg.update(attention_head_dim=[5, 10, 20, 20], cross_attention_dim=1024, use_linear_projection=True)
    with torch.device("meta"):
        unet = type(sd15.unet).from_config(cfg).eval()
        latents, context = torch.empty(2, 4, 64, 64), torch.empty(2, 77, 1024)
        t = torch.tensor(500)
    _, flops = count_flops(unet, latents, t, encoder_hidden_states=context)
    assert flops == pytest.approx(CFG_STEP_FLOPS["sd21-base"], rel=5e-3)
