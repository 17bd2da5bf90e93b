"""FLOPs of a model stage, counted on the real model with torch's ``FlopCounterMode``.

Compute latency in meg_gym is *stage FLOPs / device's effective FLOP/s*
(:mod:`meg_gym.compute.devices`). The FLOPs come from running the stage under
:class:`torch.utils.flop_counter.FlopCounterMode`, which counts the matrix products and
convolutions (``aten.mm``/``addmm``/``bmm``/``convolution`` and the attention kernels) as
2 FLOPs per multiply-accumulate. Element-wise ops (norms, activations, the scheduler's
arithmetic) are not counted; they are a small share of an LDM's work. The counter works
on ``meta`` tensors, so the FLOPs of Stable Diffusion need no weights and no compute:
``load_model("sd15")`` builds it on the meta device.

What it measures for Stable Diffusion 1.5 at 512x512 (torch 2.13, diffusers 0.42; checked
by ``tests/compute/test_flops.py``):

==================================  ========================  ================
stage                               inputs                    FLOPs
==================================  ========================  ================
VAE encoder ``vae.encode``          image (1, 3, 512, 512)    1.117e12
UNet, one classifier-free-guided    latents (2, 4, 64, 64),   1.607e12
step                                text (2, 77, 768)
VAE decoder ``vae.decode``          latent (1, 4, 64, 64)     2.515e12
CLIP text encoder                   ids (1, 77)               1.33e10
==================================  ========================  ================

:class:`FlopCache` keeps counted FLOPs per (model, stage, input shapes), so a stage that
runs again with the same shapes is not counted again.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    pass

__all__ = ["FlopCache", "LdmFlops", "count_flops", "measure_ldm_flops", "shape_signature"]

T = TypeVar("T")


def count_flops(fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> tuple[T, int]:
    """Run ``fn(*args, **kwargs)`` and return ``(its result, the FLOPs it took)``.

    The call runs under ``FlopCounterMode(display=False)`` and ``torch.no_grad()`` (stages
    are inference; no autograd graph is built). Works with ``meta`` tensors, where nothing
    is computed and only shapes flow. FLOPs are 2 per multiply-accumulate, as torch counts
    them.
    """
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    _count_cpu_attention()
    if not callable(fn):
        raise TypeError(f"'fn' must be callable (got {type(fn).__name__})")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        result = fn(*args, **kwargs)
    return result, int(counter.get_total_flops())


def _count_cpu_attention() -> None:
    """Teach the counter the CPU's fused attention kernel. On the CPU, ``scaled_dot_product_attention``
    dispatches to ``aten._scaled_dot_product_flash_attention_for_cpu``, which torch's flop registry
    (torch/utils/flop_counter.py, torch 2.13) lacks, so a live CPU run counted no attention FLOPs while the
    same stage on the meta device (decomposed to ``bmm``) counted them: the one FLOP cache then held
    whichever ran first. It gets the registry's own formula for the fused kernels (``sdpa_flop_count``:
    Q K^T and P V, 2 FLOPs per multiply-accumulate), so both devices count the same."""
    import torch
    from torch.utils import flop_counter

    op = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is None or op in flop_counter.flop_registry:
        return

    @flop_counter.register_flop_formula(op)
    def _cpu_flash(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kwargs: Any) -> int:
        return flop_counter.sdpa_flop_count(query_shape, key_shape, value_shape)


def shape_signature(value: Any) -> Hashable:
    """What of ``value`` can change a stage's FLOPs, as a hashable key.

    Tensors give their shape; numbers, booleans and ``None`` their value (a step count
    changes the work); sequences and mappings recurse. Strings give only their type: a
    prompt is tokenised to a fixed length, so its text does not change the FLOPs. Other
    objects (modules, generators, schedulers) give their type name.
    """
    import torch
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape))
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return ("str",)
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((str(k), shape_signature(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("seq", tuple(shape_signature(v) for v in value))
    return ("obj", type(value).__name__)


class FlopCache:
    """FLOPs per (model name, stage name, input shapes), counted once.

    >>> cache = FlopCache()
    >>> out, flops = cache.run("sd15", "decode", vae.decode, z)  # doctest: +SKIP
    >>> out, flops = cache.run("sd15", "decode", vae.decode, z)  # doctest: +SKIP  (not counted again)

    ``params`` is any extra hashable that changes the work (e.g. ``(("steps", 20),)``).
    The cache is mutable runtime state; it holds ints only and copies cheaply.
    """

    def __init__(self) -> None:
        self._flops: dict[Hashable, int] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(model: str, stage: str, params: Hashable = (), inputs: Any = ()) -> tuple[Hashable, ...]:
        """The cache key of a stage run: ``(model, stage, params, shape_signature(inputs))``."""
        return (model, stage, params, shape_signature(inputs))

    def get(self, key: Hashable) -> int | None:
        """The FLOPs stored under ``key``, or ``None``."""
        return self._flops.get(key)

    def put(self, key: Hashable, flops: int) -> None:
        """Store ``flops`` (an int >= 0) under ``key``."""
        if isinstance(flops, bool) or not isinstance(flops, int) or flops < 0:
            raise ValueError(f"'flops' must be an int >= 0 (got {flops!r})")
        self._flops[key] = flops

    def run(self, model: str, stage: str, fn: Callable[..., T], /, *args: Any,
            params: Hashable = (), **kwargs: Any) -> tuple[T, int]:
        """``fn(*args, **kwargs)`` and its FLOPs; counted only the first time for these shapes."""
        import torch
        key = self.key(model, stage, params, (args, kwargs))
        flops = self._flops.get(key)
        if flops is None:
            self.misses += 1
            result, flops = count_flops(fn, *args, **kwargs)
            self._flops[key] = flops
            return result, flops
        self.hits += 1
        with torch.no_grad():
            return fn(*args, **kwargs), flops

    def __len__(self) -> int:
        return len(self._flops)

    def __contains__(self, key: object) -> bool:
        return key in self._flops

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self._flops)

    def items(self) -> list[tuple[Hashable, int]]:
        return list(self._flops.items())

    def clear(self) -> None:
        self._flops.clear()
        self.hits = self.misses = 0


@dataclass(frozen=True)
class LdmFlops:
    """FLOPs of the stages of one latent diffusion model at its native resolution."""

    model: str
    image_size: int
    vae_encode_flops: int  # image (1, 3, H, W) -> latent
    unet_cfg_step_flops: int  # one classifier-free-guided step: UNet on a batch of 2 latents
    vae_decode_flops: int  # latent (1, c, H/f, W/f) -> image
    text_encode_flops: int  # one prompt's token ids -> embedding

    def generation_flops(self, steps: int, *, encode: bool = True, text_prompts: int = 2) -> int:
        """FLOPs of a whole image-to-image generation with ``steps`` denoising steps."""
        return ((self.vae_encode_flops if encode else 0) + steps * self.unet_cfg_step_flops
                + self.vae_decode_flops + text_prompts * self.text_encode_flops)


def measure_ldm_flops(comps: Any) -> LdmFlops:
    """Count the FLOPs of the stages of ``comps`` (a :class:`meg_gym.ldm.components.Components`).

    Inputs are built on the components' device: on ``meta`` (``load_model("sd15")``)
    nothing is computed; on CPU (the tiny model) the stages really run, once each. The
    UNet step uses the text sequence length of the tokenizer and the UNet's
    ``cross_attention_dim``.
    """
    import torch
    device = comps.device
    size, lat, ch = int(comps.image_size), int(comps.latent_size), int(comps.latent_channels)
    ids = comps.tokenizer([""]).to(device)
    seq_len = int(ids.shape[-1])
    ctx_dim = int(comps.unet.config.cross_attention_dim)
    with torch.device(device):
        image = torch.zeros(1, 3, size, size)
        latent = torch.zeros(1, ch, lat, lat)
        latents = torch.zeros(2, ch, lat, lat)
        context = torch.zeros(2, seq_len, ctx_dim)
        timestep = torch.tensor(500)
    _, enc = count_flops(comps.vae.encode, image)
    _, step = count_flops(comps.unet, latents, timestep, encoder_hidden_states=context)
    _, dec = count_flops(comps.vae.decode, latent)
    _, text = count_flops(comps.text_encoder, ids)
    return LdmFlops(model=str(comps.name), image_size=size, vae_encode_flops=enc, unet_cfg_step_flops=step,
                    vae_decode_flops=dec, text_encode_flops=text)
