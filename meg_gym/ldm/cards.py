"""Model cards (``configs/models/<name>.yaml``) and the geometry they give, torch-free: the
profiled worlds key their step-cost cache on it without loading the model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MODEL_CARDS", "MODELS_DIR", "ModelError", "ModelGeometry", "model_card", "model_geometry"]

REPO_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = REPO_ROOT / "configs" / "models"


class ModelError(ValueError):
    """A model that cannot be loaded: unknown name, missing folder, bad weight file."""


@dataclass(frozen=True)
class ModelGeometry:
    """What payload sizes and FLOP counts depend on: the model's name and its tensor shapes (the
    fields of :class:`~meg_gym.ldm.components.Components` of the same names)."""

    name: str
    image_size: int
    latent_channels: int
    latent_size: int


def model_geometry(model: str) -> ModelGeometry | None:
    """A model card's geometry, read from the card alone; None for a local folder (load it)."""
    if "/" in model or Path(model).is_dir():
        return None
    card = model_card(model)
    vae = card["architecture"]["vae"]["config"]
    blocks = vae.get("block_out_channels") or vae.get("encoder_block_out_channels")
    size = int(card["image_size"])
    # as Components.vae_scale_factor: one halving per VAE block after the first
    return ModelGeometry(str(card.get("name", model)), size, int(vae["latent_channels"]),
                         size // 2 ** (len(blocks) - 1))


def model_card(name: str, _seen: tuple[str, ...] = ()) -> dict[str, Any]:
    """The model card ``configs/models/<name>.yaml`` as a dict (a card that ``shares`` a base card
    completed from it: :func:`_with_shared`)."""
    path = MODELS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ModelError(f"'model' must be one of {MODEL_CARDS()} or a local folder (got {name!r})")
    try:
        from meg_gym.config import read_yaml  # here: meg_gym.config reads model cards

        card = read_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ModelError(f"model card {path} is not readable YAML ({str(exc).splitlines()[0]})") from None
    if isinstance(card, dict) and "shares" in card:
        card = _with_shared(card, path, _seen)
    _check_card(card, path)
    return card


def _with_shared(card: dict[str, Any], path: Path, seen: tuple[str, ...]) -> dict[str, Any]:
    """A card that ``shares: <base>`` takes every part but its UNet from the base card (the image size,
    the VAE, the text encoder, the tokenizer, the scheduler, the defaults): a UE-class model must read
    and write the base model's latents and text embeddings (the temporal split hands them over)."""
    base_name = card["shares"]
    if not isinstance(base_name, str) or base_name in seen:
        raise ModelError(f"model card {path}: 'shares' must name another model card, without a cycle "
                         f"(got {base_name!r:.40})")
    arch = card.get("architecture")
    if not isinstance(arch, dict) or set(arch) != {"unet"}:
        raise ModelError(f"model card {path}: a card that shares {base_name!r} defines architecture.unet only "
                         f"(got {sorted(arch) if isinstance(arch, dict) else arch!r:.60})")
    base = model_card(base_name, _seen=(*seen, str(card.get("name"))))
    if base.get("shares"):
        raise ModelError(f"model card {path}: 'shares' must name a card with its own parts "
                         f"({base_name!r} shares {base['shares']!r})")
    own = {k: v for k, v in base.items() if k not in ("training", "measured")}  # those are the base's numbers
    return {**own, **card, "architecture": {**base["architecture"], "unet": arch["unet"]},
            "defaults": {**base.get("defaults", {}), **card.get("defaults", {})}}


def _check_card(card: Any, path: Path) -> None:
    """The parts of a card the geometry and the model builder read: a mapping with an ``image_size``
    (a multiple of 8 in [8, 2048]: SD's VAE downsamples by 8; SDXL's largest is 1024) and the VAE's
    ``latent_channels`` (an integer in [1, 64]) and block widths."""
    def fail(what: str) -> None:
        raise ModelError(f"model card {path}: {what}")

    if not isinstance(card, dict):
        fail(f"must be a mapping (got {type(card).__name__})")
    size = card.get("image_size")
    if isinstance(size, bool) or not isinstance(size, int) or not 8 <= size <= 2048 or size % 8:
        fail(f"'image_size' must be a multiple of 8 in [8, 2048] (got {size!r:.40})")
    try:
        vae = card["architecture"]["vae"]["config"]
        channels = vae["latent_channels"]
        blocks = vae.get("block_out_channels") or vae.get("encoder_block_out_channels")
    except (KeyError, TypeError):
        fail("must hold architecture.vae.config with latent_channels and the block widths")
    if isinstance(channels, bool) or not isinstance(channels, int) or not 1 <= channels <= 64:
        fail(f"'architecture.vae.config.latent_channels' must be an integer in [1, 64] (got {channels!r:.40})")
    if not isinstance(blocks, list) or not 1 <= len(blocks) <= 8 or size >> (len(blocks) - 1) < 1:
        fail(f"'architecture.vae.config' block widths must be a list of 1 to 8 entries (got {blocks!r:.60})")


def MODEL_CARDS() -> list[str]:  # noqa: N802 - a table, read like a constant
    """Names of the model cards shipped in ``configs/models/``."""
    return sorted(p.stem for p in MODELS_DIR.glob("*.yaml"))
