"""Stages of the split LDM: pure definitions that a protocol places on a node.

Each :class:`Stage` declares the tensors it reads and writes and the components it needs,
and holds no weights (the diffusers modular-pipeline way). Running a stage is calling its
function with a :class:`StageContext` (the components, the generation settings and the
request's random generator) and its inputs. The math of ``encode_image``, ``denoise`` and
``decode`` is exactly diffusers' ``StableDiffusionImg2ImgPipeline`` (same ops, same order,
same generator draws), so a split run equals the monolithic one bit for bit.

Tensor names used by the protocols:
``image`` (input image, (1,3,H,W) in [0,1]), ``text`` (the prompt, a str),
``text_emb`` ([unconditional; conditional] embeddings), ``seed`` (the input's latent),
``gen_seed`` (the generated latent), ``output`` (the generated image),
``sketch`` (the output at 1/``sketch_scale`` resolution per side), tiles ``*_tile{k}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from meg_gym.ldm.settings import GenerationSettings

if TYPE_CHECKING:  # torch loads when a stage runs, not when the stage table is read
    import torch

    from meg_gym.ldm.components import Components

__all__ = [
    "GenerationSettings",
    "STAGES",
    "Stage",
    "StageContext",
    "StageError",
    "run_stage",
    "tile_layout",
]


class StageError(ValueError):
    """A stage called with missing inputs or impossible settings."""


@dataclass
class StageContext:
    """What a running stage may use besides its inputs."""

    comps: Components
    settings: GenerationSettings
    generator: torch.Generator | None
    judge: Callable[[list[torch.Tensor], str], int] | None = None  # picks a candidate (the user)
    prompt: str = ""


@dataclass(frozen=True)
class Stage:
    """A stage: named inputs -> named outputs, using some components."""

    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    components: tuple[str, ...]
    fn: Callable[..., dict[str, Any]] = field(repr=False)
    doc: str = ""


def _randn(shape: tuple[int, ...], ctx: StageContext, like: torch.Tensor) -> torch.Tensor:
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    if like.device.type == "meta":
        return torch.empty(shape, device="meta", dtype=like.dtype)
    return randn_tensor(shape, generator=ctx.generator, device=like.device, dtype=like.dtype)


def _encode_text(ctx: StageContext, text: str) -> dict[str, torch.Tensor]:
    tok, te = ctx.comps.tokenizer, ctx.comps.text_encoder
    ids = tok(["", text]).to(ctx.comps.device)
    emb = te(ids)[0]  # last_hidden_state; [unconditional; conditional] as the pipeline concatenates them
    return {"text_emb": emb}


def _encode_image(ctx: StageContext, image: torch.Tensor) -> dict[str, torch.Tensor]:
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents

    vae = ctx.comps.vae
    x = image.to(device=ctx.comps.device) * 2.0 - 1.0  # VaeImageProcessor.normalize
    latents = retrieve_latents(vae.encode(x), generator=ctx.generator)
    return {"seed": vae.config.scaling_factor * latents}


def _img2img_timesteps(scheduler: Any, steps: int, strength: float, device: torch.device) -> torch.Tensor:
    # StableDiffusionImg2ImgPipeline.get_timesteps
    scheduler.set_timesteps(steps, device=device if device.type != "meta" else "cpu")
    init_timestep = min(int(steps * strength), steps)
    t_start = max(steps - init_timestep, 0)
    timesteps = scheduler.timesteps[t_start * scheduler.order :]
    if hasattr(scheduler, "set_begin_index"):
        scheduler.set_begin_index(t_start * scheduler.order)
    return timesteps


def denoise_latents(
    ctx: StageContext, seed: torch.Tensor, text_emb: torch.Tensor, steps: int, strength: float
) -> torch.Tensor:
    """Img2img denoising of a latent, exactly as diffusers' img2img pipeline does it."""
    import torch
    comps = ctx.comps
    unet, scheduler = comps.unet, comps.scheduler
    guidance = ctx.settings.guidance_scale
    timesteps = _img2img_timesteps(scheduler, steps, strength, seed.device)
    if len(timesteps) == 0:
        raise StageError(f"'strength' x 'steps' leaves no denoising step (steps={steps}, strength={strength})")
    meta = seed.device.type == "meta"
    noise = _randn(tuple(seed.shape), ctx, seed)
    latent_t = timesteps[:1].repeat(seed.shape[0])
    latents = seed if meta else scheduler.add_noise(seed, noise, latent_t)
    cfg = guidance > 1.0
    emb = text_emb if cfg else text_emb[1:]
    extra = {"eta": 0.0, "generator": ctx.generator} if not meta else {"eta": 0.0}
    for t in timesteps:
        model_in = torch.cat([latents] * 2) if cfg else latents
        if not meta:
            model_in = scheduler.scale_model_input(model_in, t)
        t_in = t if not meta else t.to("meta")
        noise_pred = unet(model_in, t_in, encoder_hidden_states=emb, timestep_cond=None,
                          cross_attention_kwargs=None, added_cond_kwargs=None, return_dict=False)[0]
        if cfg:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance * (cond - uncond)
        if meta:
            latents = noise_pred
        else:
            latents = scheduler.step(noise_pred, t, latents, **_step_kwargs(scheduler, extra), return_dict=False)[0]
    return latents


def _step_kwargs(scheduler: Any, extra: dict[str, Any]) -> dict[str, Any]:
    # StableDiffusionPipeline.prepare_extra_step_kwargs: pass only what the scheduler accepts
    import inspect

    params = inspect.signature(scheduler.step).parameters
    return {k: v for k, v in extra.items() if k in params}


def _denoise(ctx: StageContext, seed: torch.Tensor, text_emb: torch.Tensor, weak: bool = False) -> dict[str, Any]:
    s = ctx.settings
    steps = s.ue_steps if weak else s.steps
    return {"gen_seed": denoise_latents(ctx, seed, text_emb, steps, s.strength)}


def _decode_latents(ctx: StageContext, latents: torch.Tensor) -> torch.Tensor:
    vae = ctx.comps.vae
    image = vae.decode(latents / vae.config.scaling_factor, return_dict=False, generator=ctx.generator)[0]
    if image.device.type == "meta":
        return image
    return (image / 2 + 0.5).clamp(0, 1)  # VaeImageProcessor.postprocess(output_type="pt")


def _decode(ctx: StageContext, gen_seed: torch.Tensor) -> dict[str, Any]:
    return {"output": _decode_latents(ctx, gen_seed)}


def _downsample(image: torch.Tensor, scale: int) -> torch.Tensor:
    import torch.nn.functional as F
    return F.avg_pool2d(image, kernel_size=scale) if scale > 1 else image


def _sketch(ctx: StageContext, gen_seed: torch.Tensor) -> dict[str, Any]:
    return {"sketch": _downsample(_decode_latents(ctx, gen_seed), ctx.settings.sketch_scale)}


def _complete(ctx: StageContext, sketch: torch.Tensor, text_emb: torch.Tensor) -> dict[str, Any]:
    """Sketch -> full resolution on the UE: bicubic upsampling, then a short img2img pass."""
    import torch.nn.functional as F
    s = ctx.settings
    up = F.interpolate(sketch, scale_factor=s.sketch_scale, mode="bicubic", align_corners=False)
    if up.device.type != "meta":
        up = up.clamp(0, 1)
    seed = _encode_image(ctx, up)["seed"]
    latents = denoise_latents(ctx, seed, text_emb, s.complete_steps, s.complete_strength)
    return {"output": _decode_latents(ctx, latents)}


def tile_layout(width: int, k: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """(start, width) of ``k`` vertical strips covering ``width`` columns with overlap.

    Each strip is ``ceil(width/k) + 2*overlap`` wide, rounded up to ``multiple`` (so the
    UNet's down-sampling divides it), and strips are spread evenly from 0 to the far edge.
    """
    if k < 1:
        raise StageError(f"'num_tiles' must be >= 1 (got {k})")
    if k == 1:
        return [(0, width)]
    w = min(width, multiple * math.ceil((math.ceil(width / k) + 2 * overlap) / multiple))
    starts = [round(i * (width - w) / (k - 1)) for i in range(k)]
    return [(s, w) for s in starts]


def _blend(tiles: list[torch.Tensor], layout: list[tuple[int, int]], width: int) -> torch.Tensor:
    """Merge strips into one tensor, with linear cross-fades where strips overlap."""
    import torch
    first = tiles[0]
    shape = (*first.shape[:-1], width)
    if first.device.type == "meta":
        return torch.empty(shape, device="meta", dtype=first.dtype)
    acc = torch.zeros(shape, dtype=first.dtype, device=first.device)
    wsum = torch.zeros(width, dtype=first.dtype, device=first.device)
    for i, (tile, (start, w)) in enumerate(zip(tiles, layout)):
        weight = torch.ones(w, dtype=first.dtype)
        if i > 0:  # ramp up over the overlap with the previous strip
            prev_end = layout[i - 1][0] + layout[i - 1][1]
            ov = max(0, prev_end - start)
            if ov:
                weight[:ov] = torch.linspace(0, 1, ov + 2)[1:-1]
        if i < len(tiles) - 1:
            ov = max(0, start + w - layout[i + 1][0])
            if ov:
                weight[w - ov:] = torch.minimum(weight[w - ov:], torch.linspace(1, 0, ov + 2)[1:-1])
        acc[..., start:start + w] += tile * weight
        wsum[start:start + w] += weight
    return acc / wsum


def _unet_multiple(comps: Components) -> int:
    return 2 ** (len(comps.unet.config.block_out_channels) - 1)


def _split(ctx: StageContext, name: str, x: torch.Tensor, k: int, pixel_scale: int) -> dict[str, Any]:
    comps = ctx.comps
    layout = tile_layout(comps.latent_size, k, ctx.settings.tile_overlap, _unet_multiple(comps))
    return {f"{name}_tile{i}": x[..., s * pixel_scale:(s + w) * pixel_scale] for i, (s, w) in enumerate(layout)}


def _merge(ctx: StageContext, tiles: list[torch.Tensor], pixel_scale: float) -> torch.Tensor:
    comps = ctx.comps
    layout = tile_layout(comps.latent_size, len(tiles), ctx.settings.tile_overlap, _unet_multiple(comps))
    scaled = [(int(s * pixel_scale), int(w * pixel_scale)) for s, w in layout]
    return _blend(tiles, scaled, int(comps.latent_size * pixel_scale))


def _gather(inputs: dict[str, Any], prefix: str) -> list[Any]:
    keys = sorted((k for k in inputs if k.startswith(prefix)), key=lambda k: int(k[len(prefix):]))
    return [inputs[k] for k in keys]


def _select(ctx: StageContext, **candidates: torch.Tensor) -> dict[str, Any]:
    """The user picks one of several candidates (by the judge, else the first)."""
    items = _gather(candidates, "candidate")
    pick = 0 if ctx.judge is None or items[0].device.type == "meta" else int(ctx.judge(items, ctx.prompt))
    return {"selected": items[pick], "selected_index": pick}


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("encode_text", ("text",), ("text_emb",), ("tokenizer", "text_encoder"),
              lambda ctx, text: _encode_text(ctx, text), "prompt -> [unconditional; conditional] embeddings"),
        Stage("encode_image", ("image",), ("seed",), ("vae",),
              lambda ctx, image: _encode_image(ctx, image), "image -> seed latent (VAE encoder)"),
        Stage("denoise", ("seed", "text_emb"), ("gen_seed",), ("unet", "scheduler"),
              lambda ctx, seed, text_emb, weak=False: _denoise(ctx, seed, text_emb, weak),
              "img2img denoising: seed -> generated seed (strength, steps; weak=True uses the UE's steps)"),
        Stage("decode", ("gen_seed",), ("output",), ("vae",),
              lambda ctx, gen_seed: _decode(ctx, gen_seed), "generated seed -> image (VAE decoder)"),
        Stage("sketch", ("gen_seed",), ("sketch",), ("vae",),
              lambda ctx, gen_seed: _sketch(ctx, gen_seed), "generated seed -> low-resolution sketch"),
        Stage("complete", ("sketch", "text_emb"), ("output",), ("vae", "unet", "scheduler"),
              lambda ctx, sketch, text_emb: _complete(ctx, sketch, text_emb),
              "sketch -> full resolution: upsample, then a short img2img pass"),
        Stage("split_seed", ("seed",), ("seed_tile{k}",), (),
              lambda ctx, seed, k: _split(ctx, "seed", seed, k, 1), "latent -> K overlapping strips"),
        Stage("merge_seed", ("gen_tile{k}",), ("gen_seed",), (),
              lambda ctx, k, **tiles: {"gen_seed": _merge(ctx, _gather(tiles, "gen_tile"), 1)},
              "K generated strips -> one latent, cross-faded"),
        Stage("split_image", ("image",), ("image_tile{k}",), (),
              lambda ctx, image, k: _split(ctx, "image", image, k, ctx.comps.vae_scale_factor),
              "image -> K overlapping strips (aligned with latent strips)"),
        Stage("merge_sketch", ("sketch_tile{k}",), ("sketch",), (),
              lambda ctx, k, **tiles: {"sketch": _merge(
                  ctx, _gather(tiles, "sketch_tile"), ctx.comps.vae_scale_factor / ctx.settings.sketch_scale)},
              "K sketch strips -> one sketch, cross-faded"),
        Stage("select", ("candidate{k}",), ("selected",), (),
              lambda ctx, k, **c: _select(ctx, **c), "the user picks one of K candidates"),
    )
}


def run_stage(stage: Stage, ctx: StageContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Run a stage; a missing input raises ``Required input 'x' is missing``."""
    import torch
    k = params.get("k")
    needed = [n.format(k=i) for n in stage.inputs for i in (range(k) if "{k}" in n else [None])]
    for name in needed:
        if name not in inputs:
            raise StageError(f"stage {stage.name!r}: Required input {name!r} is missing")
    with torch.no_grad():
        return stage.fn(ctx, **{n: inputs[n] for n in needed}, **params)
