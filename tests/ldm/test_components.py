"""Where weights come from: a local diffusers SD folder, the shipped model, config-only cards."""

import json
import string

import numpy as np
import pytest
import torch

from meg_gym.ldm.components import ModelError, load_model, load_sd_folder, load_shipped, meta_copy, save_shipped


def _tiny_sd_folder(path):
    """A Stable Diffusion folder in the diffusers layout, with tiny seeded components."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(0)
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64),
                                layers_per_block=1, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                                norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=32)
    vocab = {c: i for i, c in enumerate(string.ascii_lowercase)}
    vocab.update({c + "</w>": 26 + i for i, c in enumerate(string.ascii_lowercase)})
    vocab.update({"<|startoftext|>": 52, "<|endoftext|>": 53})
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=12)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=54, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                      num_attention_heads=4, max_position_embeddings=12, bos_token_id=52,
                                      eos_token_id=53, pad_token_id=53))
    sched = DDIMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
                          set_alpha_to_one=False, steps_offset=1)
    folder = path / "sd"
    unet.save_pretrained(folder / "unet", safe_serialization=True)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    te.save_pretrained(folder / "text_encoder", safe_serialization=True)
    tok.save_pretrained(folder / "tokenizer")
    sched.save_pretrained(folder / "scheduler")
    return folder


def test_local_sd_folder_loads_and_split_equals_monolithic(tmp_path):
    from tests.ldm.test_split_equals_monolithic import monolithic, split

    folder = _tiny_sd_folder(tmp_path)
    comps = load_sd_folder(folder)
    assert comps.image_size == 16 and comps.vae_scale_factor == 2 and comps.latent_size == 8
    image = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    ref = monolithic(comps, image, "a red fish", 3)  # AutoencoderKL samples its latent: the generator matters
    out = split(comps, "ciag", image, "a red fish", 3)
    assert torch.equal(out, ref)
    assert load_model(str(folder)).name == str(folder)


def test_sd_folder_loads_only_safetensors(tmp_path):
    folder = _tiny_sd_folder(tmp_path)
    for f in (folder / "unet").glob("*.safetensors"):
        f.unlink()
    with pytest.raises(ModelError, match="could not be loaded"):
        load_sd_folder(folder)


def test_missing_folder_and_subfolders(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_sd_folder(tmp_path / "nope")
    (tmp_path / "half" / "vae").mkdir(parents=True)
    with pytest.raises(ModelError, match="lacks the diffusers subfolders"):
        load_sd_folder(tmp_path / "half")


def test_sd15_card_needs_no_weights():
    comps = load_model("sd15")
    assert comps.device.type == "meta" and not comps.has_weights
    assert comps.image_size == 512 and comps.latent_size == 64 and comps.latent_channels == 4
    n_unet = sum(p.numel() for p in comps.unet.parameters())
    assert 850e6 < n_unet < 870e6  # SD-1.5's UNet has 860M parameters


def test_unknown_model_name():
    with pytest.raises(ModelError, match="'model' must be one of"):
        load_model("sdxl-turbo")


def test_meta_copy_keeps_geometry(tiny):
    m = meta_copy(tiny)
    assert m.device.type == "meta" and m.latent_size == tiny.latent_size


def test_shipped_weights_round_trip_and_bad_files(tmp_path, tiny):
    save_shipped(tiny, tmp_path, extra={"note": "test"})
    loaded = load_shipped("tiny", tmp_path)
    for a, b in zip(loaded.unet.parameters(), tiny.unet.parameters()):
        assert torch.equal(a, b.half().float())
    (tmp_path / "vae.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ModelError, match="does not match its recorded SHA-256"):
        load_shipped("tiny", tmp_path)
    from meg_gym.files import record_sha256

    record_sha256(tmp_path, "vae.safetensors")  # the digest matches: the format check still refuses it
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        load_shipped("tiny", tmp_path)
    (tmp_path / "vae.safetensors").unlink()
    with pytest.raises(ModelError, match="is missing"):
        load_shipped("tiny", tmp_path)
    with pytest.raises(ModelError, match="no trained weights"):
        load_shipped("tiny", tmp_path / "empty")


def test_shipped_model_loads_and_generates_deterministically():
    from meg_gym.executor import LinkConditions, NodeCompute, execute
    from meg_gym.ldm.stages import GenerationSettings
    from meg_gym.protocols import place
    from meg_gym.workload import sample_request

    comps = load_shipped("tiny")
    req = sample_request(np.random.default_rng(0), 64)
    links = LinkConditions(snr_db={(0, "ul"): 10.0, (0, "dl"): 10.0}, bandwidth_hz=1e6, noiseless=True)
    outs = [execute(place("ciag", (0,)), comps, req.image, req.prompt, settings=GenerationSettings(steps=10),
                    links=links, compute=NodeCompute(1e12, {0: 1e13}),
                    generator=torch.Generator().manual_seed(1)).output for _ in range(2)]
    assert torch.equal(outs[0], outs[1])


def test_shipped_classifier_recognises_heldout_scenes():
    from meg_gym.ldm.data import ATTRIBUTES, render, sample_scenes
    from meg_gym.quality.fidelity import load_judge

    judge = load_judge()
    scenes = sample_scenes(np.random.default_rng(123_456), 128)
    preds = judge.classifier.predict(torch.from_numpy(render(scenes)))
    for name in ATTRIBUTES:
        acc = np.mean([p[name] == getattr(s, name) for p, s in zip(preds, scenes)])
        assert acc >= 0.9, (name, acc)


def test_shipped_vae_round_trip_within_measured_psnr():
    from meg_gym.ldm.data import render, sample_scenes
    from meg_gym.quality.metrics import psnr_db

    comps = load_shipped("tiny")
    measured = comps.card["trained"]["vae_heldout_psnr_db"]
    assert measured >= 25.0
    x = torch.from_numpy(render(sample_scenes(np.random.default_rng(654_321), 64)))
    with torch.no_grad():
        rec = (comps.vae.decode(comps.vae.encode(x * 2 - 1).latents).sample + 1) / 2
    assert psnr_db(rec, x) >= measured - 1.5
