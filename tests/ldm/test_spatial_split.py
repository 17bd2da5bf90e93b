"""The spatial split (``ssplit:<area>``): the ES generates the centre of the image, the UE outpaints the rest.

The UE's outpainting is diffusers' ``StableDiffusionInpaintPipeline`` (4-channel UNet) bit for bit, and the
centre the UE delivers is the ES's generation of it, exactly, under a perfect channel.
"""

import pytest
import torch

from meg_gym.ldm.stages import (
    SPATIAL_AREAS,
    STAGES,
    GenerationSettings,
    StageContext,
    StageError,
    centre_box,
    denoising_loop_steps,
    run_stage,
)
from meg_gym.protocols import ProtocolError, generation_split, get_protocol
from tests.ldm.test_split_equals_monolithic import SETTINGS
from tests.ldm.test_temporal_split import run, ue_class


def _inpaint_reference(comps, request, box, seed):
    """diffusers' inpainting pipeline on the request, generating everything outside ``box`` (latent pixels)."""
    from diffusers import StableDiffusionInpaintPipeline

    pipe = StableDiffusionInpaintPipeline(vae=comps.vae, text_encoder=comps.text_encoder, tokenizer=None,
                                          unet=comps.unet, scheduler=comps.scheduler, safety_checker=None,
                                          feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    with torch.no_grad():
        neg, pos = (comps.text_encoder(comps.tokenizer([t]))[0] for t in ("", request.prompt))
    f, (r0, r1, c0, c1) = comps.vae_scale_factor, box
    size = comps.image_size
    mask = torch.ones(1, 1, size, size)  # white: repaint
    mask[..., r0 * f:r1 * f, c0 * f:c1 * f] = 0.0
    return pipe(prompt_embeds=pos, negative_prompt_embeds=neg, image=request.image, mask_image=mask,
                strength=SETTINGS.strength, num_inference_steps=SETTINGS.steps, guidance_scale=SETTINGS.guidance_scale,
                generator=torch.Generator().manual_seed(seed), output_type="latent", height=size, width=size).images


@pytest.mark.parametrize("area", [0.25, 0.5])
def test_outpainting_equals_diffusers_inpainting(tiny, request_, area):
    gen = torch.Generator().manual_seed(11)
    ctx = StageContext(comps=tiny, settings=SETTINGS, generator=gen, prompt=request_.prompt)
    seed = run_stage(STAGES["encode_image"], ctx, {"image": request_.image}, {})["seed"]
    emb = run_stage(STAGES["encode_text"], ctx, {"text": request_.prompt}, {})["text_emb"]
    box = centre_box(tiny, tuple(seed.shape), area)
    r0, r1, c0, c1 = box
    assert (r1 - r0) * (c1 - c0) == area * seed.shape[-1] * seed.shape[-2]
    gen.manual_seed(11)  # the pipeline draws its noise first (the tiny VAE's encoding draws nothing)
    # the pipeline's known region is its own image's latent: give the stage the seed's centre as the "ES's"
    out = run_stage(STAGES["outpaint"], ctx, {"seed": seed, "centre": seed[..., r0:r1, c0:c1], "text_emb": emb},
                    {"area": area})["gen_seed"]
    assert torch.equal(out, _inpaint_reference(tiny, request_, box, 11))


def test_the_ue_keeps_the_es_centre_and_outpaints_around_it(tiny, request_):
    ue = ue_class(tiny)
    res = run(tiny, "ssplit:0.25", request_, ue_comps=ue)
    ue_store, es_store = res.stores["ue"], res.stores["es0"]
    r0, r1, c0, c1 = centre_box(tiny, tuple(ue_store["seed"].shape), 0.25)
    # perfect channel: the delivered latent's centre is the ES's generation, bit for bit
    assert torch.equal(ue_store["gen_seed"][..., r0:r1, c0:c1], es_store["gen_centre"])
    outside = torch.ones_like(ue_store["seed"], dtype=torch.bool)
    outside[..., r0:r1, c0:c1] = False
    assert not torch.equal(ue_store["gen_seed"][outside], ue_store["seed"][outside])  # the UE generated the rest
    sends = {c.name: c for c in res.costs if c.kind == "send"}
    # a quarter of the latent up, a quarter down: payloads from the real tensors
    assert sends["seed_centre"].values == sends["gen_centre"].values == 4 * 16 * 16 // 4
    runs = {(c.name, c.node): c.flops for c in res.costs if c.kind == "run"}
    full_ue = {c.name: c.flops for c in run(tiny, "full_ue", request_, ue_comps=ue).costs if c.kind == "run"}
    n = denoising_loop_steps(SETTINGS.steps, SETTINGS.strength)
    assert runs[("outpaint", "ue")] == full_ue["denoise"] * n // denoising_loop_steps(SETTINGS.ue_steps,
                                                                                       SETTINGS.strength)
    whole = {c.name: c.flops for c in run(tiny, "ciag", request_).costs if c.kind == "run"}["denoise"]
    assert 0.2 < runs[("denoise", "es0")] / whole < 0.3  # the ES's UNet ran on a quarter of the latent


def test_areas_budgets_and_refusals(tiny):
    s = GenerationSettings(steps=20, strength=0.6)
    assert generation_split("ssplit:0.5", s) == (12, 12, 0.5)
    assert generation_split("ssplit:0.75@10", s) == (6, 6, 0.75)
    assert get_protocol("ssplit:0.25").steps[-2].params == (("area", 0.25),)
    for bad in ("ssplit:0.3", "ssplit:1.0", "ssplit:.25", "ssplit:x"):
        with pytest.raises(ProtocolError, match=r"must be one of \[0.0625, .*\(got"):
            get_protocol(bad)
    assert 1.0 not in SPATIAL_AREAS and len(SPATIAL_AREAS) == 8
    with pytest.raises(StageError, match="divisible by 16"):
        centre_box(tiny, (1, 4, 12, 12), 0.25)
