"""Per-ES model variants (issue #23): each ES of a parallel protocol runs its own model, guidance scale
or noise draw (``es[i].model``, ``guidance_scale``, ``seed_offset``), so the candidates differ for a reason;
cooperative tiles need one variant on every ES; FLOPs and step-cost keys follow the model each ES runs."""

import json

import numpy as np
import pytest
import torch

from meg_gym import costs
from meg_gym.config import ConfigError, load_scenario
from meg_gym.system import Decision, MegSystem

# a short schedule (4 denoising steps) over a perfect channel: the candidates are the ESs' own outputs
BASE = {"channel": {"kind": "perfect"}, "generation": {"steps": 6, "strength": 0.7},
        "workload": {"selection": "first"}}


def _system(es, protocols=("uidg",)):
    return MegSystem({**BASE, "num_es": len(es), "protocols": list(protocols),
                      "es": [{**e, "load": 0.0} for e in es]}, judge=None)


@pytest.fixture(scope="module")
def req():
    from meg_gym.workload import sample_request

    return sample_request(np.random.default_rng(3), 64)


def _candidates(system, req, protocol="uidg"):
    out = system.serve(req, Decision(protocol, tuple(range(system.scenario.num_es))), use_queues=False)
    return [c[0] for c in out.candidates]


def _single(es, req):
    """The same request served by one ES with ``es``'s settings (UIEG: the UIDG path of one ES)."""
    out = _system([es], ("uieg",)).serve(req, Decision("uieg", (0,)), use_queues=False)
    return out.output


@pytest.mark.parametrize("variants", [
    [{"guidance_scale": 2.0}, {"guidance_scale": 7.0}],
    [{}, {"model": "tiny_ue"}],
    [{"seed_offset": 0}, {"seed_offset": 1}],
], ids=["guidance", "model", "seed"])
def test_each_candidate_is_its_es_run_alone(req, variants):
    """UIDG with differing ESs: every candidate equals, bit for bit, a single-ES run of the same request
    with that ES's settings, and the candidates differ from each other and from the all-same run (whose
    candidates, one model and one noise draw, are one image)."""
    es = [{**v, "seed_offset": v.get("seed_offset", 0)} for v in variants]
    cands = _candidates(_system(es), req)
    same = _candidates(_system([{"seed_offset": 0}] * 2), req)
    assert torch.equal(same[0], same[1])
    for e, c in zip(es, cands):
        assert torch.equal(c, _single(e, req))
    assert not torch.equal(cands[0], cands[1])
    assert any(not torch.equal(c, s) for c, s in zip(cands, same))


def test_without_seed_offset_the_ess_share_the_request_generator(req):
    """An ES with no ``seed_offset`` draws from the request's one generator in plan order (the shipped
    behaviour): UIDG's first candidate is UIEG's on the same request, the second another draw."""
    cands = _candidates(_system([{}, {}]), req)
    assert torch.equal(cands[0], _single({}, req))
    assert not torch.equal(cands[1], cands[0])


def test_an_es_running_tiny_ue_counts_tiny_ue_flops(tmp_path, monkeypatch):
    """The step costs count each ES's UNet: an ES running tiny_ue is counted on tiny_ue's meta copy,
    the other on tiny's, and they follow the ES when the placement swaps them."""
    monkeypatch.setenv("MEG_GYM_CACHE", str(tmp_path))  # counted here, not read from an earlier count
    from meg_gym.compute import count_flops
    from meg_gym.ldm.components import load_model, meta_copy
    from meg_gym.ldm.stages import STAGES, StageContext, run_stage
    from meg_gym.workload import TYPICAL_PROMPT  # the prompt the step costs are counted with

    system = _system([{}, {"model": "tiny_ue"}])
    seed = torch.empty((1, 4, 16, 16), device="meta")
    expected = {}
    for name in ("tiny", "tiny_ue"):
        comps = meta_copy(load_model(name))
        ctx = StageContext(comps=comps, settings=system.settings, generator=None)
        emb = run_stage(STAGES["encode_text"], ctx, {"text": TYPICAL_PROMPT}, {})["text_emb"]
        _, expected[name] = count_flops(run_stage, STAGES["denoise"], ctx, {"seed": seed, "text_emb": emb}, {})
    assert expected["tiny"] > 3 * expected["tiny_ue"]
    for es_ids in ((0, 1), (1, 0)):
        flops = {c.node: c.flops for c in system.costs("uidg", es_ids) if c.name == "denoise"}
        assert flops == {"es0": expected["tiny"], "es1": expected["tiny_ue"]}


def test_a_guidance_scale_of_one_halves_the_es_unet_work(tmp_path, monkeypatch):
    """Guidance <= 1 runs the UNet once per step instead of twice (classifier-free guidance off)."""
    monkeypatch.setenv("MEG_GYM_CACHE", str(tmp_path))
    system = _system([{}, {"guidance_scale": 1.0}])
    flops = {c.node: c.flops for c in system.costs("uidg", (0, 1)) if c.name == "denoise"}
    assert flops["es0"] == 2 * flops["es1"]


def test_variants_are_keyed_only_when_set(tmp_path, monkeypatch):
    """The step-cost key names the ESs' variants when there are some, so the shipped entries keep theirs."""
    monkeypatch.setenv("MEG_GYM_CACHE", str(tmp_path))
    plain, varied = _system([{}, {}]), _system([{}, {"guidance_scale": 1.0}])
    assert plain.cost_variants((0, 1)) is None
    assert varied.cost_variants((0, 1)) == ((None, None), (None, 1.0))
    varied.costs("uidg", (0, 1))
    keys = [json.loads(k) for k in json.loads((tmp_path / "costs" / "tiny.json").read_text())]
    assert {"protocol": "uidg", "es_variants": [{"model": None, "guidance_scale": None},
                                                {"model": None, "guidance_scale": 1.0}]}.items() <= \
        next(k for k in keys if k["protocol"] == "uidg").items()
    key = costs.entry_key(plain.cost_comps, "uidg", 2, plain.settings, costs.transmission_key(plain.scenario))
    assert "es_variants" not in json.loads(key)


def test_cooperative_tiles_run_a_variant_shared_by_every_es(req):
    """UIDCG with one variant on every ES: the tiles run it, so tiles as wide as the latent give CIAG's
    output with that ES setting exactly."""
    wide = {"tile_overlap": 16}
    es = {"guidance_scale": 2.0, "seed_offset": 3}
    coop = MegSystem({**BASE, "generation": {**BASE["generation"], **wide}, "num_es": 2, "protocols": ["uidcg"],
                      "es": [es]}, judge=None)
    one = MegSystem({**BASE, "generation": {**BASE["generation"], **wide}, "num_es": 1, "protocols": ["ciag"],
                     "es": [es]}, judge=None)
    default = MegSystem({**BASE, "generation": {**BASE["generation"], **wide}, "num_es": 1, "protocols": ["ciag"]},
                        judge=None)
    a = coop.serve(req, Decision("uidcg", (0, 1)), use_queues=False).output
    b = one.serve(req, Decision("ciag", (0,)), use_queues=False).output
    c = default.serve(req, Decision("ciag", (0,)), use_queues=False).output
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_a_joint_stage_over_differing_nodes_is_refused(tiny, request_):
    """Below the config's check, the executor itself refuses tiles whose ESs run different settings."""
    from meg_gym.executor import LinkConditions, NodeCompute, NodeModel, execute
    from meg_gym.ldm.stages import GenerationSettings, StageError
    from meg_gym.protocols import place

    links = LinkConditions(snr_db={(i, d): 10.0 for i in range(2) for d in ("ul", "dl")}, bandwidth_hz=5e6,
                           noiseless=True)
    with pytest.raises(StageError, match="must run one model, settings and noise draw"):
        execute(place("uidcg", (0, 1)), tiny, request_.image, request_.prompt,
                settings=GenerationSettings(steps=4, strength=0.5), links=links,
                compute=NodeCompute(2e12, {0: 3e13, 1: 3e13}), generator=torch.Generator().manual_seed(0),
                node_models={"es1": NodeModel(guidance_scale=1.5)})


@pytest.mark.parametrize("overrides, message", [
    ({"es": [{"guidance_scale": "high"}, {}]}, "'es[0].guidance_scale' must be a number"),
    ({"es": [{"guidance_scale": 60.0}, {}]}, "'es[0].guidance_scale' must be in [0, 50] (got 60.0)"),
    ({"es": [{}, {"seed_offset": -1}]}, "'es[1].seed_offset' must be in [0, 2147483647] (got -1)"),
    ({"es": [{"model": "nope"}, {}]}, "'es[0].model' must be a model card name ['sd15', 'tiny', 'tiny_ue']"),
    ({"es": [{"model": "sd15"}, {}]}, "'es[0].model' must be 'model' ('tiny') or a model card that shares"),
    ({"es": [{}, {"guidance_scale": 2.0}], "protocols": ["uidg", "uidcg"]},
     "'es[1].guidance_scale' must equal 'es[0].guidance_scale' (None) when 'protocols' holds cooperative ['uidcg']"),
    ({"es": [{}, {"model": "tiny_ue"}]}, "'es[1].model' must equal 'es[0].model' (None) when 'protocols' holds "
                                         "cooperative ['uidcg', 'dcsuc']"),
    ({"es": [{"seed_offset": 1}, {}], "protocols": ["uidg"], "backend": "profiled"},
     "'es[0].seed_offset' needs backend 'live'"),
    ({"es": [{"model": "tiny_ue"}, {}], "protocols": ["uidg"], "cost_model": "sd15"},
     "'es[0].model' must be unset (or 'model') with 'cost_model' 'sd15'"),
])
def test_bad_per_es_fields_give_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        load_scenario(None, **overrides)
    text = str(err.value)
    assert message in text and "\n" not in text


def test_calibrating_per_es_variants_is_refused():
    from meg_gym.quality.calibrate import settings_key

    with pytest.raises(ValueError, match=r"'es\[1\].guidance_scale' must be unset to calibrate"):
        settings_key(_system([{}, {"guidance_scale": 2.0}]))
