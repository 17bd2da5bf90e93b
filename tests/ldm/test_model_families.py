"""Any local diffusers folder whose parts the stages run: per model family (SD 1.x, SD 2.x, SDXL, LCM,
SD/SDXL-Turbo) and per scheduler, a tiny random folder loads through safetensors only and the split
pipeline equals diffusers' monolithic img2img pipeline bit for bit under a perfect channel; in bf16 and
fp16 too; the torch device and dtype come from the scenario."""

import json

import pytest
import torch

from meg_gym.executor import LinkConditions, NodeCompute, execute
from meg_gym.ldm.components import SCHEDULERS, ModelError, img2img_pipeline, load_model, load_sd_folder
from meg_gym.ldm.stages import GenerationSettings
from meg_gym.protocols import place
from tests.ldm.tiny_folders import FAMILIES, FAMILY_SETTINGS, build_folder

PROMPT = "a red fish"


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _split(comps, protocol, settings, seed=3):
    links = LinkConditions(snr_db={(0, "ul"): 10.0, (0, "dl"): 10.0}, bandwidth_hz=1e6, noiseless=True)
    res = execute(place(protocol, (0,)), comps, _image(), PROMPT, settings=settings, links=links,
                  compute=NodeCompute(ue_flops_per_s=1e12, es_flops_per_s={0: 1e13}),
                  generator=torch.Generator().manual_seed(seed))
    return res.output


def _monolithic(comps, settings, seed=3):
    with torch.no_grad():
        return img2img_pipeline(comps)(prompt=PROMPT, image=_image(), strength=settings.strength,
                               num_inference_steps=settings.steps, guidance_scale=settings.guidance_scale,
                               generator=torch.Generator().manual_seed(seed), output_type="pt").images


@pytest.mark.parametrize("family", FAMILIES)
def test_family_split_equals_monolithic(tmp_path, family):
    comps = load_sd_folder(build_folder(tmp_path, family))
    assert comps.family == ("sdxl" if family.startswith("sdxl") else "sd")
    assert comps.image_size == 16 and comps.latent_size == 8
    settings = GenerationSettings(**FAMILY_SETTINGS[family])
    ref = _monolithic(comps, settings)
    for protocol in ("full_es", "ciag"):  # ciag: the seed up and the generated seed down cross the channel
        out = _split(comps, protocol, settings)
        assert out.shape == ref.shape == (1, 3, 16, 16)
        assert torch.equal(out, ref), (family, protocol, float((out - ref).abs().max()))
    assert not torch.equal(_split(comps, "ciag", settings, seed=4), ref)  # the generator matters


@pytest.mark.slow  # ~2-4 min for all eight under load; DDIM, Euler, Euler ancestral and LCM run in the families
@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_every_listed_scheduler_split_equals_monolithic(tmp_path, scheduler):
    comps = load_sd_folder(build_folder(tmp_path, "sd1", scheduler))
    assert type(comps.scheduler).__name__ == scheduler  # the folder's own scheduler, not a substitute
    settings = GenerationSettings(steps=4, strength=0.75, guidance_scale=3.0)
    assert torch.equal(_split(comps, "uieg", settings), _monolithic(comps, settings))


@pytest.mark.parametrize(("family", "dtype"), [("sd1", "bf16"), ("sdxl", "fp16")])
def test_half_precision_split_equals_monolithic(tmp_path, family, dtype):
    comps = load_sd_folder(build_folder(tmp_path, family, fp16_exact_vae=True), dtype=dtype)
    want = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
    assert comps.dtype == comps.text_encoder.dtype == want
    # fp16: the VAE stays fp32 (force_upcast), as the SDXL pipelines upcast it; bf16 has fp32's range
    assert comps.vae.dtype == (torch.float32 if dtype == "fp16" else want)
    settings = GenerationSettings(**FAMILY_SETTINGS[family])
    out = _split(comps, "ciag", settings)
    ref = _monolithic(comps, settings)
    assert torch.equal(out.float(), ref.float()), float((out.float() - ref.float()).abs().max())
    full = load_sd_folder(build_folder(tmp_path / "fp32", family, fp16_exact_vae=True))
    diff = (out.float() - _split(full, "ciag", settings)).abs().max()
    assert 0 < diff < 0.25  # rounded differently from fp32, but the same picture


def test_pickled_weights_are_refused(tmp_path):
    folder = build_folder(tmp_path, "sd1")
    for f in (folder / "unet").glob("*.safetensors"):
        f.unlink()
    (folder / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(ModelError, match=r"unet/ holds no \.safetensors weights .*pickle files are refused"):
        load_sd_folder(folder)


def test_fp16_variant_files_load(tmp_path):
    folder = build_folder(tmp_path, "sd1", unet_variant="fp16")
    assert [p.name for p in (folder / "unet").glob("*.safetensors")] == ["diffusion_pytorch_model.fp16.safetensors"]
    comps = load_sd_folder(folder)
    assert comps.unet.dtype == torch.float32  # variant weights loaded, then run in the dtype asked for


def test_unsupported_parts_name_the_part(tmp_path):
    folder = build_folder(tmp_path, "sd1")
    cfg = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps({**cfg, "_class_name": "KarrasVeScheduler"}))
    with pytest.raises(ModelError, match=r"scheduler/ holds a 'KarrasVeScheduler'; the stages run \["):
        load_sd_folder(folder)
    folder = build_folder(tmp_path / "b", "sdxl")
    (folder / "tokenizer_2").rename(folder / "tok2")
    with pytest.raises(ModelError, match=r"lacks the diffusers subfolders \['tokenizer_2'\]"):
        load_sd_folder(folder)


def test_unavailable_device_is_a_one_line_error(tmp_path):
    folder = build_folder(tmp_path, "sd1")
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"^'torch_device' is 'cuda' but torch .* sees no CUDA device"):
        load_sd_folder(folder, device="cuda")
    with pytest.raises(ValueError, match=r"^'torch_dtype' must be one of \['fp32', 'fp16', 'bf16'\] \(got 'fp8'\)$"):
        load_model(str(folder), dtype="fp8")


def test_scenario_places_the_model_and_outputs_reach_the_user_as_fp32_cpu(tmp_path):
    from meg_gym.config import load_scenario
    from meg_gym.system import Decision, MegSystem, Request

    folder = build_folder(tmp_path, "sd1")
    sc = load_scenario(model=str(folder), torch_dtype="bf16", num_es=1, channel={"kind": "perfect"})
    system = MegSystem(sc, judge=None)
    assert system.comps.dtype == torch.bfloat16 and system.comps.device.type == "cpu"
    o = system.serve(Request(_image(), PROMPT, seed=5), Decision("ciag", (0,)))
    assert o.output.dtype == torch.float32 and o.output.device.type == "cpu" and o.ssim == 1.0
    noisy = MegSystem(load_scenario(sc, channel={"kind": "awgn", "snr_db": 0.0}), judge=None)
    o = noisy.serve(Request(_image(), PROMPT, seed=5), Decision("ciag", (0,)))  # bf16 latents through the noise
    assert o.output.dtype == torch.float32 and torch.isfinite(o.output).all() and o.ssim < 0.99
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="^'torch_device' is 'cuda:1' but torch"):
            MegSystem(load_scenario(sc, torch_device="cuda:1"), judge=None)
    MegSystem(load_scenario(sc, torch_device="cuda:1", backend="profiled"), judge=None)  # no model runs there


@pytest.mark.slow  # the 64 x 64 shipped model in bf16 on the CPU (sd1-bf16 covers the dtype path by default)
def test_shipped_tiny_model_in_bf16_equals_its_monolithic_run():
    from tests.ldm.test_split_equals_monolithic import SETTINGS, monolithic, split

    tiny = load_model("tiny", "cpu", "bf16")
    assert tiny.dtype == tiny.vae.dtype == torch.bfloat16
    assert load_model("tiny") is not tiny and load_model("tiny").dtype == torch.float32  # one copy per placement
    image = _image().repeat(1, 1, 4, 4)  # 64 x 64
    assert torch.equal(split(tiny, "ciag", image, "a red circle", 2), monolithic(tiny, image, "a red circle", 2))
    assert SETTINGS.steps == 6


@pytest.mark.slow  # every protocol, the pipeline and a calibration point: ~100 s under load
def test_gpu_check_runs_and_writes_json(tmp_path, monkeypatch):
    """benchmarks/gpu_check.py end to end on a tiny SD folder (on the CPU: the device path is the same code)."""
    import runpy
    import sys
    from pathlib import Path

    folder = build_folder(tmp_path, "sd1")
    out = tmp_path / "check.json"
    script = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    monkeypatch.setattr(sys, "argv", ["gpu_check.py", "--model", str(folder), "--dtype", "bf16", "--repeats", "1",
                                      "--calib-requests", "1", "--out", str(out)])
    runpy.run_path(str(script), run_name="__main__")
    result = json.loads(out.read_text())
    assert result["device"] == "cpu" and result["dtype"] == "bf16" and result["family"] == "sd"
    assert all(result["protocols"][p]["equals_monolithic"] for p in ("full_es", "uieg", "eiug", "ciag"))
    assert len(result["protocols"]) == 11 and all(r["wall_s"] > 0 for r in result["protocols"].values())
    assert result["split_over_monolithic"] > 0 and result["calibration_point_s"] > 0
    assert 0 < result["vs_cpu_fp32_max_abs"] < 0.25  # bf16 against the CPU fp32 run: rounding only
    assert not list(tmp_path.glob("*.tmp"))  # written to a temporary file, then renamed


def test_costs_of_an_fp16_sdxl_folder_count_on_its_meta_copy(tmp_path):
    """Step costs come from a meta copy of the placed model: fp32 whatever the model's dtype (an fp16
    text encoder beside an fp32 meta UNet once made the attention's dtypes disagree)."""
    from meg_gym.config import load_scenario
    from meg_gym.system import MegSystem

    sc = load_scenario(model=str(build_folder(tmp_path, "sdxl")), torch_dtype="fp16", num_es=1,
                       channel={"kind": "perfect"})
    system = MegSystem(sc, judge=None)
    assert system.meta.device.type == "meta" and system.meta.text_encoder_2.dtype == torch.float32
    costs = system.costs("ciag", (0,))
    assert sum(c.flops for c in costs if c.kind == "run") > 0
    assert [c.name for c in costs if c.kind == "send"] == ["seed", "text", "gen_seed"]
