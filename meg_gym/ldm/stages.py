"""Stages of the split LDM: pure definitions that a protocol places on a node.

Each :class:`Stage` declares the tensors it reads and writes and the components it needs,
and holds no weights (the diffusers modular-pipeline way). Running a stage is calling its
function with a :class:`StageContext` (the components, the generation settings and the
request's random generator) and its inputs. The math of ``encode_image``, ``denoise`` and
``decode`` is exactly diffusers' ``StableDiffusionImg2ImgPipeline`` (same ops, same order,
same generator draws), so a split run equals the monolithic one bit for bit.

Tensor names used by the protocols:
``image`` (input image, (1,3,H,W) in [0,1]), ``text`` (the prompt, a str),
``text_emb`` ([unconditional; conditional] embeddings: ``{"hidden": ...}``, SDXL adds ``"pooled"``),
``seed`` (the input's latent),
``gen_seed`` (the generated latent), ``mid_seed`` (a partly denoised latent: the temporal split),
``seed_centre`` / ``gen_centre`` (a latent's centre rectangle, and the ES's generation of it: the
spatial split; it arrives on the UE as ``centre``),
``output`` (the generated image),
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
    "owned_columns",
    "run_joint_stage",
    "run_stage",
    "SPATIAL_AREAS",
    "centre_box",
    "centre_quarters",
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
    # a joint stage runs on K nodes at once: ``fn(ctx, members=[inputs of each node], ...)`` returns
    # one output dict per node (run_joint_stage)
    joint: bool = False


def _randn(shape: tuple[int, ...], ctx: StageContext, like: torch.Tensor) -> torch.Tensor:
    import torch
    from diffusers.utils.torch_utils import randn_tensor

    if like.device.type == "meta":
        return torch.empty(shape, device="meta", dtype=like.dtype)
    return randn_tensor(shape, generator=ctx.generator, device=like.device, dtype=like.dtype)


def _encode_prompt(ctx: StageContext, text: str, tokenizer: Any, text_encoder: Any,
                   penultimate: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(hidden states, pooled projection or None) of one prompt, as the pipelines' ``encode_prompt``:
    SD takes the last hidden state, SDXL the penultimate one and the projection's pooled output."""
    ids = tokenizer([text]).to(ctx.comps.device)
    out = text_encoder(ids, output_hidden_states=penultimate)
    pooled = out[0] if penultimate and out[0].ndim == 2 else None  # CLIPTextModelWithProjection's text_embeds
    return (out.hidden_states[-2] if penultimate else out[0]), pooled


def _encode_text(ctx: StageContext, text: str) -> dict[str, Any]:
    """The prompt's embeddings ``text_emb``: ``{"hidden": [unconditional; conditional]}``, plus SDXL's
    ``"pooled"`` ([unconditional; conditional] pooled projections).

    The prompt and the empty negative prompt are encoded in separate calls, as the pipelines do
    (``StableDiffusionImg2ImgPipeline`` / ``StableDiffusionXLImg2ImgPipeline.encode_prompt``); SDXL
    with ``force_zeros_for_empty_prompt`` takes zeros for the unconditional embeddings instead of
    encoding the empty prompt. ``text_emb`` never crosses the air (every protocol encodes the prompt
    on the node that denoises), so it may hold more than one tensor.
    """
    import torch

    comps = ctx.comps
    if comps.text_encoder_2 is None:
        pairs = [_encode_prompt(ctx, t, comps.tokenizer, comps.text_encoder, False) for t in ("", text)]
        return {"text_emb": {"hidden": torch.cat([h for h, _ in pairs])}}
    encoders = ((comps.tokenizer, comps.text_encoder), (comps.tokenizer_2, comps.text_encoder_2))

    def both(t: str) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [_encode_prompt(ctx, t, tok, te, True) for tok, te in encoders]
        return torch.cat([h for h, _ in parts], dim=-1), parts[-1][1]  # the last encoder's pooled output

    hidden, pooled = both(text)
    if comps.force_zeros_for_empty_prompt:
        neg_hidden, neg_pooled = torch.zeros_like(hidden), torch.zeros_like(pooled)
    else:
        neg_hidden, neg_pooled = both("")
    dtype = comps.text_encoder_2.dtype
    return {"text_emb": {"hidden": torch.cat([neg_hidden, hidden]).to(dtype),
                         "pooled": torch.cat([neg_pooled, pooled]).to(dtype)}}


def _encode_image(ctx: StageContext, image: torch.Tensor) -> dict[str, torch.Tensor]:
    from diffusers.pipelines.stable_diffusion.pipeline_stable_diffusion_img2img import retrieve_latents

    comps = ctx.comps
    vae = comps.vae
    # normalised in the image's own dtype (VaeImageProcessor.preprocess), cast to the model's dtype
    # (prepare_latents' image.to(device, dtype)), then to the VAE's: an upcast VAE (fp16) encodes in fp32
    x = (image * 2.0 - 1.0).to(device=comps.device, dtype=comps.dtype).to(vae.dtype)
    latents = retrieve_latents(vae.encode(x), generator=ctx.generator).to(comps.dtype)
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


def guidance_embedding(w: torch.Tensor, dim: int, dtype: torch.dtype) -> torch.Tensor:
    """Sinusoidal embedding of guidance scales ``w`` (shape (n,)) -> (n, dim): the ``timestep_cond`` of
    guidance-distilled UNets (LCM; ``time_cond_proj_dim``), as diffusers' LCM pipelines'
    ``get_guidance_scale_embedding`` after VDM (Kingma et al. 2021, google-research/vdm model_vdm.py)."""
    import torch

    w = w * 1000.0
    half = dim // 2
    freq = torch.exp(torch.arange(half, dtype=dtype) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    emb = w.to(dtype)[:, None] * freq[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    return torch.nn.functional.pad(emb, (0, 1)) if dim % 2 == 1 else emb


def _add_time_ids(comps: Components, latents: torch.Tensor, pooled: torch.Tensor, cfg: bool) -> torch.Tensor:
    """SDXL's size conditioning: original size, crop corner (0, 0), target size, each the latent's size in
    pixels (``StableDiffusionXLImg2ImgPipeline._get_add_time_ids`` with its defaults); one row per UNet input."""
    import torch

    unet = comps.unet
    size = (int(latents.shape[-2]) * comps.vae_scale_factor, int(latents.shape[-1]) * comps.vae_scale_factor)
    ids = [*size, 0, 0, *size]
    passed = int(unet.config.addition_time_embed_dim) * len(ids) + int(pooled.shape[-1])
    expected = int(unet.add_embedding.linear_1.in_features)
    if passed != expected:  # an SDXL refiner (aesthetic-score ids) or a broken config
        raise StageError(f"the UNet expects {expected} added-embedding values but the size ids and the pooled "
                         f"prompt give {passed} (aesthetic-score conditioning is not run by the stages)")
    rows = 2 * latents.shape[0] if cfg else latents.shape[0]
    return torch.tensor([ids], dtype=pooled.dtype).repeat(rows, 1).to(latents.device)


#: schedulers whose step reads only the current latent and timestep (no multistep history), so a
#: denoising loop stopped after k steps and resumed by another node (the temporal split) equals the
#: unstopped loop bit for bit (tests/ldm/test_temporal_split.py)
SPLITTABLE_SCHEDULERS = ("DDIMScheduler", "DDPMScheduler", "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler")


def denoising_loop_steps(steps: int, strength: float) -> int:
    """How many UNet steps img2img runs at ``steps`` and ``strength`` (``get_timesteps``: int(steps x
    strength), at most ``steps``): the steps a temporal split divides between the ES and the UE."""
    return min(int(steps * strength), steps)


def _denoiser(ctx: StageContext, scheduler: Any, seed: torch.Tensor, text_emb: dict[str, torch.Tensor], steps: int,
              strength: float) -> tuple[torch.Tensor, Callable[[torch.Tensor, Any], torch.Tensor]]:
    """(timesteps, step) of one latent's img2img loop on ``scheduler``: ``step(latents, t)`` is one
    denoising step, exactly as diffusers' img2img pipelines take it (SD; SDXL with its pooled
    embeddings and size ids; guidance-distilled LCM UNets with the guidance embedding). Split from
    :func:`denoise_latents` so that cooperative tiles can step in lockstep (:func:`_denoise_tiles`)."""
    import torch
    comps = ctx.comps
    unet = comps.unet
    guidance = ctx.settings.guidance_scale
    timesteps = _img2img_timesteps(scheduler, steps, strength, seed.device)
    if len(timesteps) == 0:
        raise StageError(f"'strength' x 'steps' leaves no denoising step (steps={steps}, strength={strength})")
    meta = seed.device.type == "meta"
    # a guidance-distilled UNet takes the scale as an embedding instead of a second, unconditional pass
    cond_dim = unet.config.get("time_cond_proj_dim")
    cfg = guidance > 1.0 and cond_dim is None
    # in the UNet's dtype (the text encoders run in it too; a meta copy's may differ)
    emb = (text_emb["hidden"] if cfg else text_emb["hidden"][1:]).to(unet.dtype)
    timestep_cond = None
    if cond_dim is not None:
        w = torch.tensor(guidance - 1).repeat(seed.shape[0])
        timestep_cond = guidance_embedding(w, int(cond_dim), torch.float32).to(device=seed.device, dtype=seed.dtype)
    added = None
    if "pooled" in text_emb:
        pooled = (text_emb["pooled"] if cfg else text_emb["pooled"][1:]).to(unet.dtype)
        added = {"text_embeds": pooled, "time_ids": _add_time_ids(comps, seed, pooled, cfg)}
    extra = _step_kwargs(scheduler, {"eta": 0.0, "generator": ctx.generator} if not meta else {"eta": 0.0})

    def step(latents: torch.Tensor, t: Any) -> torch.Tensor:
        model_in = torch.cat([latents] * 2) if cfg else latents
        if not meta:
            model_in = scheduler.scale_model_input(model_in, t)
        t_in = t if not meta else t.to("meta")
        noise_pred = unet(model_in, t_in, encoder_hidden_states=emb, timestep_cond=timestep_cond,
                          cross_attention_kwargs=None, added_cond_kwargs=added, return_dict=False)[0]
        if cfg:
            uncond, cond = noise_pred.chunk(2)
            noise_pred = uncond + guidance * (cond - uncond)
        if meta:
            return noise_pred
        return scheduler.step(noise_pred, t, latents, **extra, return_dict=False)[0]

    return timesteps, step


def _noised(scheduler: Any, seed: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
    """The seed noised to the first timestep (img2img's start)."""
    if seed.device.type == "meta":
        return seed
    return scheduler.add_noise(seed, noise, timesteps[:1].repeat(seed.shape[0]))


def denoise_latents(
    ctx: StageContext, seed: torch.Tensor, text_emb: dict[str, torch.Tensor], steps: int, strength: float,
    first: int = 0, last: int | None = None,
) -> torch.Tensor:
    """Img2img denoising of a latent, exactly as diffusers' img2img pipelines do it (SD; SDXL with its
    pooled embeddings and size ids; guidance-distilled LCM UNets with the guidance embedding).

    ``first``/``last``: run only the loop's steps ``first..last-1`` (the temporal split). ``first`` 0
    noises ``seed`` to the schedule's start, as the pipeline; a later ``first`` takes ``seed`` as the
    partly denoised latent the steps before it left (no noise is drawn)."""
    scheduler = ctx.comps.scheduler
    timesteps, step = _denoiser(ctx, scheduler, seed, text_emb, steps, strength)
    if first > 0 or last is not None:
        if type(scheduler).__name__ not in SPLITTABLE_SCHEDULERS or scheduler.order != 1:
            raise StageError(f"the temporal split needs a one-step scheduler {list(SPLITTABLE_SCHEDULERS)} (a "
                             f"multistep one keeps a history the other node lacks; got {type(scheduler).__name__})")
        stop = len(timesteps) if last is None else last
        if not 0 <= first < stop <= len(timesteps):
            raise StageError(f"the temporal split must run steps in [0, {len(timesteps)}] with first < last "
                             f"(got {first}..{stop} of {steps} steps at strength {strength})")
        if first > 0 and hasattr(scheduler, "set_begin_index"):  # the stepping index resumes where the ES stopped
            scheduler.set_begin_index(int(scheduler.begin_index or 0) + first)
        timesteps = timesteps[first:stop]
    latents = _noised(scheduler, seed, _randn(tuple(seed.shape), ctx, seed), timesteps) if first == 0 else seed
    for t in timesteps:
        latents = step(latents, t)
    return latents


def _step_kwargs(scheduler: Any, extra: dict[str, Any]) -> dict[str, Any]:
    # StableDiffusionPipeline.prepare_extra_step_kwargs: pass only what the scheduler accepts
    import inspect

    params = inspect.signature(scheduler.step).parameters
    return {k: v for k, v in extra.items() if k in params}


def _budget(ctx: StageContext, weak: bool, steps: int | None, strength: float | None) -> tuple[int, float]:
    """The (steps, strength) a denoising stage runs: a placement's step budget (``steps``/``strength``
    stage parameters, ``<protocol>@<steps>``), else the settings' (the UE's ``ue_steps`` when ``weak``)."""
    s = ctx.settings
    return (int(steps) if steps is not None else s.ue_steps if weak else s.steps,
            float(strength) if strength is not None else s.strength)


def _denoise(ctx: StageContext, seed: torch.Tensor, text_emb: dict[str, torch.Tensor], weak: bool = False,
             steps: int | None = None, strength: float | None = None) -> dict[str, Any]:
    n, st = _budget(ctx, weak, steps, strength)
    return {"gen_seed": denoise_latents(ctx, seed, text_emb, n, st)}


def _denoise_head(ctx: StageContext, seed: torch.Tensor, text_emb: dict[str, torch.Tensor], split: int,
                  steps: int | None = None, strength: float | None = None) -> dict[str, Any]:
    n, st = _budget(ctx, False, steps, strength)
    return {"mid_seed": denoise_latents(ctx, seed, text_emb, n, st, first=0, last=int(split))}


def _denoise_tail(ctx: StageContext, mid_seed: torch.Tensor, text_emb: dict[str, torch.Tensor], split: int,
                  steps: int | None = None, strength: float | None = None) -> dict[str, Any]:
    n, st = _budget(ctx, False, steps, strength)
    return {"gen_seed": denoise_latents(ctx, mid_seed, text_emb, n, st, first=int(split))}


#: the image shares a spatial split may give the ES (``ssplit:<area>``): centred rectangles of whole
#: quarters of the latent's sides, h x w quarters for h, w in 1..4 (not the whole latent: that is CIAG).
#: Quarters, so that an area names the same region on every model (a latent side divisible by four
#: times the UNet's down-sampling factor: tiny's 16, SD-1.5's 64, SDXL's 128).
SPATIAL_AREAS: tuple[float, ...] = tuple(sorted({h * w / 16 for h in range(1, 5) for w in range(1, 5)} - {1.0}))


def centre_quarters(area: float) -> tuple[int, int]:
    """(rows, columns) in quarters of the centre rectangle of ``area`` (one of :data:`SPATIAL_AREAS`):
    the squarest one, and of two as square the taller (a band of whole columns, like the tiles')."""
    if area not in SPATIAL_AREAS:
        raise StageError(f"'area' of a spatial split must be one of {list(SPATIAL_AREAS)} (got {area!r})")
    shapes = [(h, w) for h in range(4, 0, -1) for w in range(1, 5) if h * w == round(area * 16)]
    return min(shapes, key=lambda hw: abs(hw[0] - hw[1]))


def centre_box(comps: Components, shape: tuple[int, ...], area: float) -> tuple[int, int, int, int]:
    """(row0, row1, col0, col1) of the centre rectangle of ``area`` in a latent of ``shape``."""
    hq, wq = centre_quarters(area)
    rows, cols = int(shape[-2]), int(shape[-1])
    quantum = 4 * _unet_multiple(comps)
    if rows % quantum or cols % quantum:
        raise StageError(f"a spatial split needs latent sides divisible by {quantum} (four times the UNet's "
                         f"down-sampling) but model {comps.name!r} has {rows}x{cols}")
    h, w = hq * rows // 4, wq * cols // 4
    r0, c0 = (rows - h) // 2, (cols - w) // 2
    return r0, r0 + h, c0, c0 + w


def _crop_centre(ctx: StageContext, seed: torch.Tensor, area: float) -> dict[str, Any]:
    r0, r1, c0, c1 = centre_box(ctx.comps, tuple(seed.shape), area)
    return {"seed_centre": seed[..., r0:r1, c0:c1]}


def _outpaint(ctx: StageContext, seed: torch.Tensor, centre: torch.Tensor, text_emb: dict[str, torch.Tensor],
              area: float, steps: int | None = None, strength: float | None = None) -> dict[str, Any]:
    """The spatial split's UE part: img2img of the whole ``seed`` in which the ES's generated ``centre``
    is the known region, re-noised to each step's timestep and pasted in after every step, so that
    any diffusion model outpaints without inpainting training (RePaint, Lugmayr et al. CVPR 2022,
    without its resampling jumps). The blend and its order are those of diffusers'
    ``StableDiffusionInpaintPipeline`` with a 4-channel UNet (tests/ldm/test_spatial_split.py checks
    it against that pipeline): one noise draw, the start noised from ``seed`` as img2img, after step
    i the known latents noised to timestep i+1 (after the last, the clean centre)."""
    import torch

    n, st = _budget(ctx, False, steps, strength)
    scheduler = ctx.comps.scheduler
    timesteps, step = _denoiser(ctx, scheduler, seed, text_emb, n, st)
    r0, r1, c0, c1 = centre_box(ctx.comps, tuple(seed.shape), area)
    if tuple(centre.shape[-2:]) != (r1 - r0, c1 - c0):
        raise StageError(f"stage 'outpaint': the centre must be {r1 - r0}x{c1 - c0} latent pixels for area {area} "
                         f"(got {tuple(centre.shape[-2:])})")
    noise = _randn(tuple(seed.shape), ctx, seed)
    latents = _noised(scheduler, seed, noise, timesteps)
    known = seed.clone()
    known[..., r0:r1, c0:c1] = centre.to(seed.dtype)
    keep = torch.ones_like(seed[:, :1])  # 1 where the UE generates (diffusers' init_mask), 0 on the centre
    keep[..., r0:r1, c0:c1] = 0.0

    def paste(x: torch.Tensor, i: int) -> torch.Tensor:
        if x.device.type == "meta":  # shapes only
            return x
        proper = known if i >= len(timesteps) else scheduler.add_noise(known, noise, timesteps[i:i + 1])
        return (1 - keep) * proper + keep * x

    latents = paste(latents, 0)
    for i, t in enumerate(timesteps):
        latents = paste(step(latents, t), i + 1)
    return {"gen_seed": latents}


def _decode_latents(ctx: StageContext, latents: torch.Tensor) -> torch.Tensor:
    vae = ctx.comps.vae
    z = latents.to(vae.dtype) / vae.config.scaling_factor  # an upcast VAE decodes in fp32 (the SDXL pipelines)
    image = vae.decode(z, return_dict=False, generator=ctx.generator)[0]
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


def _complete(ctx: StageContext, sketch: torch.Tensor, text_emb: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Sketch -> full resolution on the UE: bicubic upsampling, then a short img2img pass."""
    import torch
    import torch.nn.functional as F
    s = ctx.settings
    # upsampled in fp32 (an image's values; not every device has bicubic kernels for half types)
    up = F.interpolate(sketch.to(torch.float32), scale_factor=s.sketch_scale, mode="bicubic", align_corners=False)
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
    dev = first.device
    shape = (*first.shape[:-1], width)
    if first.device.type == "meta":
        return torch.empty(shape, device="meta", dtype=first.dtype)
    acc = torch.zeros(shape, dtype=first.dtype, device=first.device)
    wsum = torch.zeros(width, dtype=first.dtype, device=first.device)
    for i, (tile, (start, w)) in enumerate(zip(tiles, layout)):
        weight = torch.ones(w, dtype=first.dtype, device=dev)
        if i > 0:  # ramp up over the overlap with the previous strip
            prev_end = layout[i - 1][0] + layout[i - 1][1]
            ov = max(0, prev_end - start)
            if ov:
                weight[:ov] = torch.linspace(0, 1, ov + 2, device=dev)[1:-1]
        if i < len(tiles) - 1:
            ov = max(0, start + w - layout[i + 1][0])
            if ov:
                weight[w - ov:] = torch.minimum(weight[w - ov:], torch.linspace(1, 0, ov + 2, device=dev)[1:-1])
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
    """The UE's merge: strips denoised alone (``exchange_every`` 0) are cross-faded where they
    overlap; tiles that exchanged their borders are already one image, and each ES sent only the
    columns it owns, which are put side by side."""
    import torch
    comps = ctx.comps
    layout = tile_layout(comps.latent_size, len(tiles), ctx.settings.tile_overlap, _unet_multiple(comps))
    if ctx.settings.exchange_every > 0:
        return torch.cat(tiles, dim=-1)
    scaled = [(int(s * pixel_scale), int(w * pixel_scale)) for s, w in layout]
    return _blend(tiles, scaled, int(comps.latent_size * pixel_scale))


def owned_columns(layout: list[tuple[int, int]], width: int) -> list[tuple[int, int]]:
    """[start, end) of the latent columns each tile owns: a partition of ``width`` that cuts
    each overlap in the middle, so that every column belongs to the tile in which it lies
    farthest from a tile edge (where the UNet's truncated context hurts it least)."""
    cuts = [(layout[i][0] + layout[i - 1][0] + layout[i - 1][1]) // 2 for i in range(1, len(layout))]
    bounds = [0, *cuts, width]
    return [(bounds[i], bounds[i + 1]) for i in range(len(layout))]


def _exchange(latents: list[torch.Tensor], layout: list[tuple[int, int]], owned: list[tuple[int, int]],
              sent: list[int]) -> int:
    """One border exchange: every tile's columns owned by another tile are overwritten with the
    owner's current values (sent over the backhaul); ``sent[k]`` grows by the values tile ``k`` sent.
    Returns the values sent in all (0: tiles that do not overlap have nothing to exchange)."""
    total = 0
    for j, (sj, wj) in enumerate(layout):
        for k, (c0, c1) in enumerate(owned):
            a, b = max(c0, sj), min(c1, sj + wj)
            if k == j or a >= b:
                continue
            piece = latents[k][..., a - layout[k][0]:b - layout[k][0]]
            latents[j][..., a - sj:b - sj] = piece
            sent[k] += piece.numel()
            total += piece.numel()
    return total


class _ActivationTraffic:
    """What cooperating tiles would send each other, at every layer of the real UNet, for their UNet to be
    the monolithic one (DistriFusion's synchronous patch parallelism: Li et al., "DistriFusion: Distributed
    Parallel Inference for High-Resolution Diffusion Models", CVPR 2024, Sec. 4; there the exchange is one
    step stale and overlapped with compute, here it is exact). Counted with forward pre-hooks on the UNet's
    modules from the shapes that really flow through them (meta tensors too), each tile owning the latent
    columns ``bounds[k]..bounds[k+1]`` (at a coarser resolution, the same share: ``bounds x w // width``):

    * ``Conv2d`` (and ``AvgPool2d``): the input columns its owned output columns read (kernel, stride,
      padding, dilation) that another tile owns, x batch x channels x rows (a kernel of 1 reads none);
    * ``Upsample2D`` (nearest interpolation): the input column each owned output column copies, when
      another tile owns it;
    * self-attention (``Attention`` that is not cross-attention): every other tile's keys and values of
      the tokens it owns (2 x batch x the key width x its tokens, to each other tile);
    * ``GroupNorm``: the per-group sum and sum of squares of the tile's part (2 x batch x groups, to each
      other tile), from which every tile gets the whole feature map's mean and variance.

    Cross-attention reads the prompt, which every ES has; linear layers, LayerNorm and the time embedding
    are per token or global. ``sent[k]``: values tile ``k`` sent; ``exchanges``: the synchronous rounds
    (layer calls at which anything was sent: each waits for the backhaul's latency)."""

    def __init__(self, unet: Any, bounds: list[int], width: int, height: int) -> None:
        import torch.nn as nn
        from diffusers.models.attention_processor import Attention
        from diffusers.models.upsampling import Upsample2D

        self.bounds, self.width, self.height = bounds, width, height
        self.sent = [0] * (len(bounds) - 1)
        self.exchanges = 0
        self.handles = []
        for m in unet.modules():
            if isinstance(m, (nn.Conv2d, nn.AvgPool2d)):
                self.handles.append(m.register_forward_pre_hook(self._window))
            elif isinstance(m, Upsample2D):
                if m.use_conv_transpose or not m.interpolate:
                    raise StageError("exchange 'activations' needs nearest-interpolation up-sampling (got a "
                                     "transposed convolution)")
                self.handles.append(m.register_forward_pre_hook(self._upsample, with_kwargs=True))
            elif isinstance(m, Attention) and not m.is_cross_attention:
                self.handles.append(m.register_forward_pre_hook(self._attention, with_kwargs=True))
            elif isinstance(m, nn.GroupNorm):
                self.handles.append(m.register_forward_pre_hook(self._group_norm))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()

    def _owned(self, w: int) -> list[tuple[int, int]]:
        b = [c * w // self.width for c in self.bounds]
        return list(zip(b[:-1], b[1:]))

    def _send(self, values: list[int]) -> None:
        if any(values):
            self.exchanges += 1
        self.sent = [a + b for a, b in zip(self.sent, values)]

    def _gather(self, w_in: int, needs: list[tuple[int, int]], per_column: int) -> None:
        """Tile k needs input columns ``needs[k]``; the owners of those it lacks send them."""
        own = self._owned(w_in)
        values = [0] * len(own)
        for k, (lo, hi) in enumerate(needs):
            lo, hi = max(lo, 0), min(hi, w_in)
            for j, (a, b) in enumerate(own):
                if j != k:
                    values[j] += max(0, min(hi, b) - max(lo, a)) * per_column
        self._send(values)

    def _window(self, m: Any, args: tuple) -> None:
        x = args[0]
        kernel, stride, pad, dil = (_width_part(v) for v in (m.kernel_size, m.stride, m.padding,
                                                            getattr(m, "dilation", 1)))
        if isinstance(pad, str):
            raise StageError(f"exchange 'activations': padding {pad!r} is not counted")
        w_in = int(x.shape[-1])
        w_out = (w_in + 2 * pad - dil * (kernel - 1) - 1) // stride + 1
        needs = [(a * stride - pad, (b - 1) * stride - pad + dil * (kernel - 1) + 1) if b > a else (0, 0)
                 for a, b in self._owned(w_out)]
        self._gather(w_in, needs, int(x.shape[0] * x.shape[1] * x.shape[2]))

    def _upsample(self, m: Any, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else kwargs["hidden_states"]
        size = kwargs.get("output_size") or (args[1] if len(args) > 1 else None)
        w_in = int(x.shape[-1])
        w_out = int(size[-1]) if size is not None else 2 * w_in
        needs = [((a * w_in) // w_out, ((b - 1) * w_in) // w_out + 1) if b > a else (0, 0)
                 for a, b in self._owned(w_out)]
        self._gather(w_in, needs, int(x.shape[0] * x.shape[1] * x.shape[2]))

    def _attention(self, m: Any, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else kwargs["hidden_states"]
        if x.ndim == 4:  # an attention block fed the feature map itself
            w = int(x.shape[-1])
            rows = int(x.shape[-2])
        else:  # (batch, tokens, channels): the map flattened row by row, at the latent's aspect ratio
            tokens = int(x.shape[1])
            w = round(math.sqrt(tokens * self.width / self.height))
            rows = tokens // w
        kv = 2 * int(x.shape[0]) * int(m.to_k.out_features)
        others = len(self.sent) - 1
        self._send([kv * rows * (b - a) * others for a, b in self._owned(w)])

    def _group_norm(self, m: Any, args: tuple) -> None:
        x = args[0]
        others = len(self.sent) - 1
        self._send([2 * int(x.shape[0]) * int(m.num_groups) * others if b > a else 0
                    for a, b in self._owned(int(x.shape[-1]))])


def _width_part(v: Any) -> Any:
    """A module's (rows, columns) setting (kernel, stride, padding), or one for both: its columns' part."""
    return v[-1] if isinstance(v, tuple) else v


def _denoise_synchronous(ctx: StageContext, members: list[dict[str, Any]], layout: list[tuple[int, int]],
                         owned: list[tuple[int, int]], n: int, st: float, final: bool) -> list[dict]:
    """Cooperative denoising that exchanges activations (``exchange: activations``): DistriFusion's
    synchronous patch parallelism (:class:`_ActivationTraffic`), under which the tiles' UNets compute
    exactly the monolithic UNet's function. So the stage runs the UNet on the whole latent, once, with
    :func:`denoise_latents` (CIAG's own denoising: the same noise draw, the same steps), and reports for
    each ES what that exactness costs it: the values it sends at every layer (counted by the hooks on the
    real modules, meta tensors too), the synchronous rounds, and as its FLOPs share the latent columns it
    owns. The latent is put together from the columns each ES owns of its strip of the seed (UIDCG: the
    UE's seed, so the result is CIAG's denoising exactly). Each ES gets its strip of the result; with
    ``final`` (DCSUC decodes whole strips) the strips' borders are exchanged once more, as latents."""
    import torch

    comps = ctx.comps
    width = comps.latent_size
    seed = torch.cat([m["seed"][..., c0 - a:c1 - a] for m, (a, _), (c0, c1) in zip(members, layout, owned)], dim=-1)
    traffic = _ActivationTraffic(comps.unet, [0, *(c1 for _, c1 in owned)], width, int(seed.shape[-2]))
    try:
        latents = denoise_latents(ctx, seed, members[0]["text_emb"], n, st)
    finally:
        traffic.remove()
    strips = [latents[..., a:a + w] for a, w in layout]
    sent, exchanges = traffic.sent, traffic.exchanges
    if final and _exchange([x.clone() for x in strips], layout, owned, sent):
        exchanges += 1
    return [{"gen_seed": x, "exchange_values": v, "exchanges": exchanges, "flops_share": (c1 - c0, width)}
            for x, v, (c0, c1) in zip(strips, sent, owned)]


def _denoise_tiles(ctx: StageContext, members: list[dict[str, Any]], k: int, final: bool = False,
                   steps: int | None = None, strength: float | None = None) -> list[dict]:
    """Cooperative denoising of ``k`` tiles of one latent, one tile per ES (a joint stage: it
    reads every ES's ``seed`` tile and ``text_emb`` and gives each its ``gen_seed`` tile).

    ``exchange_every`` 0: each ES denoises its strip alone (draws in ES order, as K separate
    ``denoise`` stages would). Otherwise the tiles step in lockstep and, every ``exchange_every``
    steps (not after the last, unless ``final``: DCSUC decodes whole tiles), exchange their borders:
    patch-parallel diffusion as MultiDiffusion (Bar-Tal et al. 2023) and DistriFusion (Li et al.
    2024) run it, here by latent columns. The noise is one draw for the whole latent, sliced (the
    ESs share the request's noise seed, a few bytes), so a column has the same noise on every ES,
    and tiles as wide as the latent give CIAG's result exactly. Each output also holds
    ``exchange_values`` (the values that ES sent over the backhaul) and ``exchanges``.
    ``steps``/``strength``: a placement's step budget (``uidcg@<steps>``), as :func:`_budget`.
    ``flops_share`` (owned, of): the share of the stage's FLOPs each ES's cost carries (here 1 of ``k``:
    strips of one width).

    ``exchange`` 'activations': the tiles exchange, at every layer, what each needs of the others' activations,
    and denoise as the monolithic UNet does (:func:`_denoise_synchronous`).
    """
    import copy

    s = ctx.settings
    n, st = _budget(ctx, False, steps, strength)
    if len(members) != k:
        raise StageError(f"stage 'denoise_tiles': {k} tiles expected (got {len(members)})")
    if s.exchange_every == 0:
        return [{"gen_seed": denoise_latents(ctx, m["seed"], m["text_emb"], n, st),
                 "exchange_values": 0, "exchanges": 0, "flops_share": (1, k)} for m in members]
    comps = ctx.comps
    layout = tile_layout(comps.latent_size, k, s.tile_overlap, _unet_multiple(comps))
    owned = owned_columns(layout, comps.latent_size)
    if s.exchange == "activations":
        return _denoise_synchronous(ctx, members, layout, owned, n, st, final)
    first = members[0]["seed"]
    noise = _randn((*first.shape[:-1], comps.latent_size), ctx, first)
    # every ES runs its own scheduler (a multistep scheduler keeps per-latent history)
    scheds = [copy.deepcopy(comps.scheduler) for _ in members]
    loops = [_denoiser(ctx, sch, m["seed"], m["text_emb"], n, st) for sch, m in zip(scheds, members)]
    timesteps = loops[0][0]
    latents = [_noised(sch, m["seed"], noise[..., a:a + w], timesteps)
               for sch, m, (a, w) in zip(scheds, members, layout)]
    sent, exchanges = [0] * k, 0
    for i, t in enumerate(timesteps):
        latents = [step(x, t) for (_, step), x in zip(loops, latents)]
        last = i == len(timesteps) - 1
        if (not last and (i + 1) % s.exchange_every == 0) or (last and final):
            if _exchange(latents, layout, owned, sent):  # nothing to send, nothing to wait for
                exchanges += 1
    return [{"gen_seed": x, "exchange_values": v, "exchanges": exchanges, "flops_share": (1, k)}
            for x, v in zip(latents, sent)]


def _crop_tile(ctx: StageContext, tile: torch.Tensor, k: int, index: int, pixel_scale: float) -> dict[str, Any]:
    """What an ES sends of its tile: the columns it owns when the tiles exchanged borders (the rest
    is its neighbours'), the whole strip when they did not (the UE cross-fades the overlaps)."""
    s = ctx.settings
    if s.exchange_every == 0:
        return {"tile": tile}
    comps = ctx.comps
    layout = tile_layout(comps.latent_size, k, s.tile_overlap, _unet_multiple(comps))
    c0, c1 = owned_columns(layout, comps.latent_size)[index]
    start = layout[index][0]
    return {"tile": tile[..., int((c0 - start) * pixel_scale):int((c1 - start) * pixel_scale)]}


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
              lambda ctx, seed, text_emb, **p: _denoise(ctx, seed, text_emb, **p),
              "img2img denoising: seed -> generated seed (strength, steps; weak=True uses the UE's steps)"),
        Stage("denoise_head", ("seed", "text_emb"), ("mid_seed",), ("unet", "scheduler"),
              lambda ctx, seed, text_emb, **p: _denoise_head(ctx, seed, text_emb, **p),
              "the temporal split's ES part: noise the seed, run the first `split` denoising steps"),
        Stage("denoise_tail", ("mid_seed", "text_emb"), ("gen_seed",), ("unet", "scheduler"),
              lambda ctx, mid_seed, text_emb, **p: _denoise_tail(ctx, mid_seed, text_emb, **p),
              "the temporal split's UE part: the denoising steps after `split`, on a partly denoised latent"),
        Stage("crop_centre", ("seed",), ("seed_centre",), (),
              lambda ctx, seed, area: _crop_centre(ctx, seed, area),
              "the spatial split's request: the seed's centre rectangle covering `area` of the image"),
        Stage("outpaint", ("seed", "centre", "text_emb"), ("gen_seed",), ("unet", "scheduler"),
              lambda ctx, seed, centre, text_emb, **p: _outpaint(ctx, seed, centre, text_emb, **p),
              "the spatial split's UE part: outpaint around the ES's generated centre (RePaint-style paste)"),
        Stage("decode", ("gen_seed",), ("output",), ("vae",),
              lambda ctx, gen_seed: _decode(ctx, gen_seed), "generated seed -> image (VAE decoder)"),
        Stage("sketch", ("gen_seed",), ("sketch",), ("vae",),
              lambda ctx, gen_seed: _sketch(ctx, gen_seed), "generated seed -> low-resolution sketch"),
        Stage("complete", ("sketch", "text_emb"), ("output",), ("vae", "unet", "scheduler"),
              lambda ctx, sketch, text_emb: _complete(ctx, sketch, text_emb),
              "sketch -> full resolution: upsample, then a short img2img pass"),
        Stage("split_seed", ("seed",), ("seed_tile{k}",), (),
              lambda ctx, seed, k: _split(ctx, "seed", seed, k, 1), "latent -> K overlapping strips"),
        Stage("denoise_tiles", ("seed", "text_emb"), ("gen_seed",), ("unet", "scheduler"),
              lambda ctx, members, k, final=False: _denoise_tiles(ctx, members, k, final),
              "K ESs denoise the strips of one latent together, exchanging borders every exchange_every steps",
              joint=True),
        Stage("crop_seed", ("tile",), ("tile",), (),
              lambda ctx, tile, k, index: _crop_tile(ctx, tile, k, index, 1),
              "a latent strip -> the columns its ES owns (exchanged borders) or the whole strip"),
        Stage("crop_sketch", ("tile",), ("tile",), (),
              lambda ctx, tile, k, index: _crop_tile(
                  ctx, tile, k, index, ctx.comps.vae_scale_factor / ctx.settings.sketch_scale),
              "a sketch strip -> the columns its ES owns (exchanged borders) or the whole strip"),
        Stage("merge_seed", ("gen_tile{k}",), ("gen_seed",), (),
              lambda ctx, k, **tiles: {"gen_seed": _merge(ctx, _gather(tiles, "gen_tile"), 1)},
              "K generated strips -> one latent: cross-faded, or side by side after exchanged borders"),
        Stage("split_image", ("image",), ("image_tile{k}",), (),
              lambda ctx, image, k: _split(ctx, "image", image, k, ctx.comps.vae_scale_factor),
              "image -> K overlapping strips (aligned with latent strips)"),
        Stage("merge_sketch", ("sketch_tile{k}",), ("sketch",), (),
              lambda ctx, k, **tiles: {"sketch": _merge(
                  ctx, _gather(tiles, "sketch_tile"), ctx.comps.vae_scale_factor / ctx.settings.sketch_scale)},
              "K sketch strips -> one sketch: cross-faded, or side by side after exchanged borders"),
        Stage("select", ("candidate{k}",), ("selected",), (),
              lambda ctx, k, **c: _select(ctx, **c), "the user picks one of K candidates"),
    )
}


def _inputs(stage: Stage, inputs: dict[str, Any], k: int | None) -> dict[str, Any]:
    needed = [n.format(k=i) for n in stage.inputs for i in (range(k) if "{k}" in n else [None])]
    for name in needed:
        if name not in inputs:
            raise StageError(f"stage {stage.name!r}: Required input {name!r} is missing")
    return {n: inputs[n] for n in needed}


def run_stage(stage: Stage, ctx: StageContext, inputs: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """Run a stage; a missing input raises ``Required input 'x' is missing``."""
    import torch
    with torch.no_grad():
        return stage.fn(ctx, **_inputs(stage, inputs, params.get("k")), **params)


def run_joint_stage(stage: Stage, ctx: StageContext, members: list[dict[str, Any]],
                    params: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a joint stage on its nodes' inputs (one dict per node); one output dict per node."""
    import torch
    with torch.no_grad():
        return stage.fn(ctx, members=[_inputs(stage, m, None) for m in members], **params)
