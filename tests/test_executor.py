"""The executor: real stages on their nodes, payloads from real tensors, timing, determinism."""

import pytest
import torch

from meg_gym.executor import LinkConditions, NodeCompute, execute
from meg_gym.ldm.stages import GenerationSettings
from meg_gym.protocols import PROTOCOLS, Run, place

SETTINGS = GenerationSettings(steps=4, strength=0.5, guidance_scale=3.0, ue_steps=2, complete_steps=4,
                              complete_strength=0.5)


def links(noiseless=True, snr=10.0, bits=16, mode="analog", num_es=3):
    snrs = {(i, l): snr for i in range(num_es) for l in ("ul", "dl")}
    return LinkConditions(snr_db=snrs, bandwidth_hz=5e6, mode=mode, bits_per_value=bits, noiseless=noiseless)


def compute(num_es=3):
    return NodeCompute(ue_flops_per_s=2e12, es_flops_per_s={i: 3e13 for i in range(num_es)})


def run(tiny, request_, protocol, es_ids=None, seed=5, **kw):
    es_ids = es_ids or ((0, 1) if PROTOCOLS[protocol].multi_es else (0,))
    return execute(place(protocol, es_ids), tiny, request_.image, request_.prompt, settings=SETTINGS,
                   links=links(**kw), compute=compute(), generator=torch.Generator().manual_seed(seed),
                   channel_generator=torch.Generator().manual_seed(seed + 1))


@pytest.mark.parametrize("bits", [8, 16, 32])
def test_payload_bits_are_tensor_values_times_bits(tiny, request_, bits):
    text_bits = 8 * len(request_.prompt.encode("utf-8"))
    img = 3 * 64 * 64
    lat = tiny.latent_channels * tiny.latent_size**2
    sketch = 3 * 32 * 32
    expect = {  # (uplink, downlink), from the geometry of the real tensors
        "full_ue": (0, 0),
        "full_es": (img * bits + text_bits, img * bits),
        "uieg": (lat * bits + text_bits, img * bits),
        "eiug": (img * bits + text_bits, lat * bits),
        "ciag": (lat * bits + text_bits, lat * bits),
        "esuc": (img * bits + text_bits, sketch * bits),
    }
    for protocol, (ul, dl) in expect.items():
        res = run(tiny, request_, protocol, bits=bits)
        assert res.summary["uplink_bits"] == ul, protocol
        assert res.summary["downlink_bits"] == dl, protocol
        sent = [c for c in res.costs if c.kind == "send" and c.name != "text"]
        for c in sent:
            holder = res.stores[c.node][c.name]
            assert c.payload_bits == holder.numel() * bits


def test_multi_es_payloads(tiny, request_):
    bits, text_bits = 16, 8 * len(request_.prompt.encode("utf-8"))
    lat = tiny.latent_channels * tiny.latent_size**2
    img = 3 * 64 * 64
    uidg = run(tiny, request_, "uidg")  # seed broadcast once; two images down
    assert uidg.summary["uplink_bits"] == lat * bits + text_bits
    assert uidg.summary["downlink_bits"] == 2 * img * bits
    diug = run(tiny, request_, "diug")
    assert diug.summary["downlink_bits"] == 2 * lat * bits
    uidcg = run(tiny, request_, "uidcg")  # strips with overlap: more than one latent, less than two
    ul = uidcg.summary["uplink_bits"] - text_bits
    assert lat * bits < ul < 2 * lat * bits


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_every_protocol_runs_and_traces_each_stage_on_its_node(tiny, request_, protocol):
    res = run(tiny, request_, protocol, noiseless=False, snr=15.0)
    plan_runs = [(s.stage, s.on) for s in place(protocol, (0, 1) if PROTOCOLS[protocol].multi_es else (0,)).steps
                 if isinstance(s, Run)]
    trace_runs = [(r.name, r.node) for r in res.trace if r.kind == "run"]
    assert trace_runs == plan_runs
    assert res.output.shape == (1, 3, 64, 64)
    assert torch.isfinite(res.output).all()
    assert res.summary["latency_s"] > 0
    for r in res.trace:
        assert r.end_s >= r.start_s


def test_latency_adds_up_for_a_chain(tiny, request_):
    res = run(tiny, request_, "ciag")
    s = res.summary
    parts = s["ue_compute_s"] + s["es_compute_s"] + s["queue_s"] + s["uplink_s"] + s["downlink_s"]
    # CIAG's only parallelism: the text goes up while nothing else is on air
    assert s["latency_s"] == pytest.approx(parts, rel=1e-9)


def test_same_seed_same_outcome_different_seed_differs(tiny, request_):
    a = run(tiny, request_, "uidcg", noiseless=False, snr=5.0)
    b = run(tiny, request_, "uidcg", noiseless=False, snr=5.0)
    c = run(tiny, request_, "uidcg", noiseless=False, snr=5.0, seed=6)
    assert torch.equal(a.output, b.output)
    assert a.summary == b.summary
    assert not torch.equal(a.output, c.output)


def test_channel_noise_changes_output(tiny, request_):
    clean = run(tiny, request_, "ciag")
    noisy = run(tiny, request_, "ciag", noiseless=False, snr=0.0)
    assert not torch.equal(clean.output, noisy.output)
