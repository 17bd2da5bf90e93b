"""Under a perfect channel the split protocols equal diffusers' monolithic img2img, bit for bit."""

import pytest
import torch

from meg_gym.executor import LinkConditions, NodeCompute, execute
from meg_gym.ldm.stages import GenerationSettings
from meg_gym.protocols import place

SETTINGS = GenerationSettings(steps=6, strength=0.6, guidance_scale=4.0)


def monolithic(comps, image, prompt, seed):
    from meg_gym.ldm.components import img2img_pipeline

    pipe = img2img_pipeline(comps)
    with torch.no_grad():  # one call per prompt, as the pipeline's encode_prompt
        neg, pos = (comps.text_encoder(comps.tokenizer([t]))[0] for t in ("", prompt))
    return pipe(prompt_embeds=pos, negative_prompt_embeds=neg, image=image, strength=SETTINGS.strength,
                num_inference_steps=SETTINGS.steps, guidance_scale=SETTINGS.guidance_scale,
                generator=torch.Generator().manual_seed(seed), output_type="pt").images


def split(comps, protocol, image, prompt, seed):
    links = LinkConditions(snr_db={(0, "ul"): 10.0, (0, "dl"): 10.0}, bandwidth_hz=1e6, noiseless=True)
    compute = NodeCompute(ue_flops_per_s=1e12, es_flops_per_s={0: 1e13})
    res = execute(place(protocol, (0,)), comps, image, prompt, settings=SETTINGS, links=links, compute=compute,
                  generator=torch.Generator().manual_seed(seed))
    return res.output


@pytest.mark.parametrize("protocol", ["full_es", "uieg", "eiug", "ciag"])
def test_split_equals_monolithic(tiny, request_, protocol):
    ref = monolithic(tiny, request_.image, request_.prompt, 11)
    out = split(tiny, protocol, request_.image, request_.prompt, 11)
    assert out.shape == ref.shape == (1, 3, 64, 64)
    assert torch.equal(out, ref)


def test_different_seed_differs(tiny, request_):
    a = split(tiny, "ciag", request_.image, request_.prompt, 1)
    b = split(tiny, "ciag", request_.image, request_.prompt, 2)
    assert not torch.equal(a, b)
