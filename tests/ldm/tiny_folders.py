"""Tiny random diffusers folders of each model family, built in a test (diffusers' get_dummy_components
way: seeded tiny configs, ``save_pretrained`` to a folder) and loaded by the project's loader.

Families: ``sd1`` (one CLIP text encoder, epsilon prediction), ``sd2`` (linear-projection attention,
GELU text encoder, v-prediction), ``sdxl`` (two text encoders, pooled embeddings and size ids),
``lcm`` (an SD 1.x layout whose UNet takes the guidance embedding, LCMScheduler), ``sd_turbo`` and
``sdxl_turbo`` (Euler ancestral with trailing spacing, guidance 0, one to four steps). The tokenizer is
a CLIP BPE tokenizer over a 54-token vocabulary written here: nothing is downloaded.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import torch

SCHED_BASE = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012, "steps_offset": 1}
FAMILIES = ("sd1", "sd2", "sdxl", "lcm", "sd_turbo", "sdxl_turbo")
#: generation settings each family is run with (the few-step ones as their model cards advise)
FAMILY_SETTINGS = {
    "sd1": {"steps": 6, "strength": 0.6, "guidance_scale": 4.0},
    "sd2": {"steps": 6, "strength": 0.6, "guidance_scale": 4.0},
    "sdxl": {"steps": 6, "strength": 0.6, "guidance_scale": 4.0},
    "lcm": {"steps": 4, "strength": 0.6, "guidance_scale": 2.0},
    "sd_turbo": {"steps": 2, "strength": 0.5, "guidance_scale": 0.0},
    "sdxl_turbo": {"steps": 2, "strength": 0.5, "guidance_scale": 0.0},
}


def _tokenizer(path: Path) -> Any:
    from transformers import CLIPTokenizer

    vocab = {c: i for i, c in enumerate(string.ascii_lowercase)}
    vocab.update({c + "</w>": 26 + i for i, c in enumerate(string.ascii_lowercase)})
    vocab.update({"<|startoftext|>": 52, "<|endoftext|>": 53})
    path.mkdir(parents=True, exist_ok=True)
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=12)


def _text_encoder(projection: bool, act: str = "quick_gelu") -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cfg = CLIPTextConfig(vocab_size=54, hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=12, bos_token_id=52, eos_token_id=53,
                         pad_token_id=53, hidden_act=act, projection_dim=32)
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(cfg)


def _scheduler(family: str, name: str | None) -> Any:
    import diffusers

    default = {"sd1": "DDIMScheduler", "sd2": "DDIMScheduler", "sdxl": "EulerDiscreteScheduler",
               "lcm": "LCMScheduler", "sd_turbo": "EulerAncestralDiscreteScheduler",
               "sdxl_turbo": "EulerAncestralDiscreteScheduler"}[family]
    cls = getattr(diffusers, name or default)
    kwargs = dict(SCHED_BASE)
    if family == "sd2":
        kwargs["prediction_type"] = "v_prediction"
    if family.endswith("turbo"):
        kwargs["timestep_spacing"] = "trailing"
    if cls.__name__ in ("DDIMScheduler", "LCMScheduler"):
        kwargs.update(clip_sample=False, set_alpha_to_one=False)
    return cls(**kwargs)


def build_folder(root: Path, family: str, scheduler: str | None = None, *, fp16_exact_vae: bool = False,
                 unet_variant: str | None = None, seed: int = 0) -> Path:
    """Write a tiny random ``family`` folder under ``root`` and return its path.

    ``fp16_exact_vae``: VAE weights rounded to fp16 values (an fp16 pipeline casts its upcast VAE back
    to fp16 between encoding and decoding; with such weights the round trip is exact).
    ``unet_variant``: save the UNet as ``*.{variant}.safetensors`` only.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel

    xl = family.startswith("sdxl")
    torch.manual_seed(seed)
    unet_kwargs: dict[str, Any] = dict(
        sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D") if xl else ("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D") if xl else ("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64 if xl else 32, norm_num_groups=32)
    if family in ("sd2", "sd_turbo") or xl:
        unet_kwargs.update(attention_head_dim=(2, 4), use_linear_projection=True)
    if xl:  # 6 size ids x 8 + the 32-wide pooled projection
        unet_kwargs.update(addition_embed_type="text_time", addition_time_embed_dim=8,
                           projection_class_embeddings_input_dim=6 * 8 + 32, transformer_layers_per_block=(1, 2))
    if family == "lcm":
        unet_kwargs["time_cond_proj_dim"] = 32
    unet = UNet2DConditionModel(**unet_kwargs)
    vae = AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        norm_num_groups=32)
    if fp16_exact_vae:
        vae = vae.half().float()
    act = "gelu" if family in ("sd2", "sd_turbo") else "quick_gelu"
    folder = root / f"{family}-{scheduler or 'default'}"
    unet.save_pretrained(folder / "unet", safe_serialization=True, variant=unet_variant)
    vae.save_pretrained(folder / "vae", safe_serialization=True)
    _text_encoder(False, act).save_pretrained(folder / "text_encoder", safe_serialization=True)
    _tokenizer(root / "vocab").save_pretrained(folder / "tokenizer")
    if xl:
        _text_encoder(True, act).save_pretrained(folder / "text_encoder_2", safe_serialization=True)
        _tokenizer(root / "vocab").save_pretrained(folder / "tokenizer_2")
    _scheduler(family, scheduler).save_pretrained(folder / "scheduler")
    index = {"_class_name": "StableDiffusionXLPipeline" if xl else "StableDiffusionPipeline"}
    if xl:
        index["force_zeros_for_empty_prompt"] = True
    (folder / "model_index.json").write_text(json.dumps(index))
    return folder
