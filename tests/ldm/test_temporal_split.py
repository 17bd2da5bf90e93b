"""The temporal split (``tsplit:<k>``), the step budget (``<protocol>@<steps>``) and the UE's own model.

Under a perfect channel and the same model on both nodes, the ES's first k denoising steps followed
by the UE's last n-k equal the unsplit n-step img2img (diffusers' pipeline) bit for bit.
"""

import copy

import pytest
import torch

from meg_gym.executor import LinkConditions, NodeCompute, execute
from meg_gym.ldm.stages import GenerationSettings, StageError, denoising_loop_steps
from meg_gym.protocols import PROTOCOLS, ProtocolError, get_protocol, place
from tests.ldm.test_split_equals_monolithic import SETTINGS, monolithic

LINKS = LinkConditions(snr_db={(0, "ul"): 10.0, (0, "dl"): 10.0}, bandwidth_hz=1e6, noiseless=True)
COMPUTE = NodeCompute(ue_flops_per_s=1e12, es_flops_per_s={0: 1e13})


def run(comps, protocol, req, seed=11, ue_comps=None, settings=SETTINGS):
    return execute(place(protocol, (0,)), comps, req.image, req.prompt, settings=settings, links=LINKS,
                   compute=COMPUTE, generator=torch.Generator().manual_seed(seed), ue_comps=ue_comps)


def ue_class(tiny):
    """A UE-class model as ``load_shipped('tiny_ue')`` builds it: tiny_ue's smaller (seeded) UNet beside tiny's
    VAE, text encoder and scheduler configuration."""
    from meg_gym.ldm.components import build_from_card, model_card

    small = build_from_card(model_card("tiny_ue"), seed=5)
    ue = copy.copy(tiny)
    ue.unet, ue.scheduler, ue.name = small.unet, small.scheduler, "tiny_ue-random-5"
    return ue


def test_split_equals_unsplit_bit_for_bit(tiny, request_):
    n = denoising_loop_steps(SETTINGS.steps, SETTINGS.strength)
    assert n == 3
    ref = monolithic(tiny, request_.image, request_.prompt, 11)
    twin = copy.deepcopy(tiny)  # the UE's own copy of the same weights: another module, same numbers
    for k in range(1, n):
        for ue in (None, twin):
            out = run(tiny, f"tsplit:{k}", request_, ue_comps=ue).output
            assert torch.equal(out, ref), k


def test_split_sends_a_seed_sized_latent_down(tiny, request_):
    res = run(tiny, "tsplit:1", request_)
    sends = {c.name: c for c in res.costs if c.kind == "send"}
    assert sends["mid_seed"].values == sends["seed"].values == 4 * 16 * 16  # the latent's values, from the tensor
    assert sends["mid_seed"].payload_bits == 16 * 4 * 16 * 16 and sends["mid_seed"].dst == "ue"


def test_the_ue_runs_its_own_model_and_pays_its_flops(tiny, request_):
    ue = ue_class(tiny)
    ref = run(tiny, "tsplit:2", request_).output
    out = run(tiny, "tsplit:2", request_, ue_comps=ue)
    assert not torch.equal(out.output, ref)  # the UE's last step ran the other UNet
    runs = {(c.name, c.node): c.flops for c in out.costs if c.kind == "run"}
    # per step the ES's UNet costs its own; the UE's smaller one about a quarter (configs/models/tiny_ue.yaml)
    es_per_step, ue_per_step = runs[("denoise_head", "es0")] / 2, runs[("denoise_tail", "ue")] / 1
    assert 3.5 < es_per_step / ue_per_step < 4.5
    full_ue = run(tiny, "full_ue", request_, ue_comps=ue)
    unet_only = {c.name: c.flops for c in full_ue.costs}["denoise"]
    assert unet_only == ue_per_step * denoising_loop_steps(SETTINGS.ue_steps, SETTINGS.strength)


def test_step_budget_equals_the_pipeline_at_that_budget(tiny, request_):
    four = GenerationSettings(steps=4, strength=SETTINGS.strength, guidance_scale=SETTINGS.guidance_scale)
    ref = run(tiny, "full_es", request_, settings=four).output
    assert torch.equal(run(tiny, "full_es@4", request_).output, ref)
    assert torch.equal(run(tiny, "tsplit:1@4", request_).output, ref)  # 4 x 0.6 -> 2 steps, split 1 + 1
    half = GenerationSettings(steps=6, strength=0.5, guidance_scale=SETTINGS.guidance_scale)
    assert torch.equal(run(tiny, "ciag@6/0.5", request_).output, run(tiny, "ciag", request_, settings=half).output)


def test_a_multistep_scheduler_is_refused(tiny, request_):
    from diffusers import DPMSolverMultistepScheduler

    other = copy.copy(tiny)
    other.scheduler = DPMSolverMultistepScheduler.from_config(tiny.scheduler.config)
    with pytest.raises(StageError, match="one-step scheduler"):
        run(other, "tsplit:1", request_)


def test_family_names():
    assert list(PROTOCOLS)[:2] == ["full_ue", "full_es"] and len(PROTOCOLS) == 11  # families are never listed
    assert "tsplit:3" in PROTOCOLS and "ciag@10/0.4" in PROTOCOLS and "tsplit" not in PROTOCOLS
    for bad, what in (("tsplit:0", "k must be"), ("tsplit:x", "k must be"), ("ciag@0", "step budget"),
                      ("ciag@10/1.5", "strength"), ("nope@10", "must be one of"),
                      ("tsplit:03", "leading zeros"), ("ciag@010", "leading zeros"), ("ciag@10/0.50", "strength"),
                      ("tsplit:3@10@5", "step budget")):
        with pytest.raises(ProtocolError, match=what):
            get_protocol(bad)


def test_scenario_checks_the_split_and_the_ue_model():
    from meg_gym.config import ConfigError, load_scenario

    sc = load_scenario({"num_es": 1, "protocols": ["tsplit:11", "tsplit:3@10"], "ue_model": "tiny_ue"})
    assert sc.ue_model == "tiny_ue"
    with pytest.raises(ConfigError, match=r"protocols.*k in \[1, 11\].*'tsplit:12'"):
        load_scenario({"num_es": 1, "protocols": ["tsplit:12"]})
    with pytest.raises(ConfigError, match=r"protocols.*k in \[1, 5\]"):
        load_scenario({"num_es": 1, "protocols": ["tsplit:6@10"]})
    with pytest.raises(ConfigError, match="ue_model.*shares"):
        load_scenario({"num_es": 1, "model": "sd15", "ue_model": "tiny_ue"})
    with pytest.raises(ConfigError, match="ue_model.*cost_model"):
        load_scenario({"num_es": 1, "cost_model": "sd15", "ue_model": "tiny_ue"})
