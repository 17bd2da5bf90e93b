"""LDM components: where the weights come from.

Three sources, one result (:class:`Components`):

* ``load_model("tiny")``: the shipped default model, trained by ``meg-gym train-ldm`` on the
  procedural scenes of :mod:`meg_gym.ldm.data`, loaded from safetensors files in the repo;
* ``load_model("/path/to/sd-folder")``: a local diffusers Stable Diffusion folder
  (``vae/``, ``unet/``, ``text_encoder/``, ``tokenizer/``, ``scheduler/``), safetensors only;
* ``load_model("sd15")``: a config-only model card: the real architecture built on the
  ``meta`` device, with no weights, so shapes and FLOP counts work with nothing on disk.

``build_tiny(seed)`` builds seeded random components with the tiny geometry, the way
diffusers' tests build ``get_dummy_components()``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "Components",
    "MODEL_CARDS",
    "ModelError",
    "WordTokenizer",
    "build_from_card",
    "build_tiny",
    "load_model",
    "load_sd_folder",
    "load_shipped",
    "meta_copy",
    "model_card",
    "save_shipped",
]

from meg_gym.errors import show  # noqa: E402
from meg_gym.ldm.cards import MODEL_CARDS, MODELS_DIR, REPO_ROOT, ModelError, model_card  # noqa: E402,F401

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"


class WordTokenizer:
    """Word-level tokenizer over a closed vocabulary (the caption grammar).

    Id 0 pads, 1 starts, 2 ends, 3 stands for an unknown word. Every sequence has the same
    length, like CLIP's ``padding="max_length"``, so text embeddings have a fixed shape.
    """

    SPECIAL = ("<pad>", "<bos>", "<eos>", "<unk>")

    def __init__(self, words: list[str], max_length: int = 16) -> None:
        self.vocab = list(self.SPECIAL) + [w for w in words if w not in self.SPECIAL]
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.max_length = max_length

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        ids = torch.zeros((len(texts), self.max_length), dtype=torch.long)
        for row, text in enumerate(texts):
            tokens = [1] + [self.index.get(w, 3) for w in text.lower().replace(",", " ").split()]
            tokens = tokens[: self.max_length - 1] + [2]
            ids[row, : len(tokens)] = torch.tensor(tokens)
        return ids

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "word", "vocab": self.vocab[len(self.SPECIAL):], "max_length": self.max_length}


class ClipTokenizerAdapter:
    """Wraps a transformers ``CLIPTokenizer`` to the ``tokenizer(texts) -> ids`` call we use."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.max_length = int(tokenizer.model_max_length)

    def __call__(self, texts: list[str]) -> torch.Tensor:
        out = self.tokenizer(
            texts, padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        )
        return out.input_ids


class GeometryTokenizer:
    """Token ids of the right shape (all padding) for config-only model cards without a vocabulary.

    Used only on the ``meta`` device, where no value is ever computed: it fixes the text
    embedding's shape, which is all that sizes and FLOP counts need.
    """

    def __init__(self, max_length: int) -> None:
        self.max_length = max_length

    def __call__(self, texts: list[str]) -> torch.Tensor:
        return torch.zeros((len(texts), self.max_length), dtype=torch.long)


@dataclass
class Components:
    """The parts of a latent diffusion model, plus the geometry the stages need."""

    name: str
    vae: Any
    text_encoder: Any
    tokenizer: Any
    unet: Any
    scheduler: Any
    image_size: int
    has_weights: bool = True
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def vae_scale_factor(self) -> int:
        """Pixels per latent pixel along one side (8 for Stable Diffusion)."""
        cfg = self.vae.config
        blocks = cfg.get("block_out_channels") or cfg.get("encoder_block_out_channels")
        return 2 ** (len(blocks) - 1)

    @property
    def latent_channels(self) -> int:
        return int(self.vae.config.latent_channels)

    @property
    def latent_size(self) -> int:
        return self.image_size // self.vae_scale_factor

    @property
    def scaling_factor(self) -> float:
        return float(self.vae.config.scaling_factor)


def _classes() -> dict[str, Any]:
    # imported lazily: diffusers/transformers take a second to import
    from diffusers import AutoencoderKL, AutoencoderTiny, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    return {
        "AutoencoderKL": AutoencoderKL,
        "AutoencoderTiny": AutoencoderTiny,
        "UNet2DConditionModel": UNet2DConditionModel,
        "DDIMScheduler": DDIMScheduler,
        "CLIPTextModel": CLIPTextModel,
        "CLIPTextConfig": CLIPTextConfig,
    }


def _build_modules(card: dict[str, Any]) -> tuple[Any, Any, Any, Any]:
    c = _classes()
    arch = card["architecture"]
    vae = c[arch["vae"]["class"]](**arch["vae"]["config"])
    unet = c["UNet2DConditionModel"](**arch["unet"]["config"])
    text_encoder = c["CLIPTextModel"](c["CLIPTextConfig"](**arch["text_encoder"]["config"]))
    scheduler = c["DDIMScheduler"](**arch["scheduler"]["config"])
    return vae, unet, text_encoder, scheduler


def _tokenizer_from_card(card: dict[str, Any]) -> Any:
    tok = card["architecture"]["tokenizer"]
    if tok["kind"] == "word":
        from meg_gym.ldm.data import vocabulary

        return WordTokenizer(vocabulary(), max_length=int(tok["max_length"]))
    return GeometryTokenizer(int(tok["max_length"]))


def build_from_card(card: dict[str, Any], *, seed: int | None = 0, meta: bool = False) -> Components:
    """Components with a card's architecture: seeded random weights, or none (``meta=True``)."""
    if meta:
        with torch.device("meta"):
            vae, unet, text_encoder, scheduler = _build_modules(card)
    else:
        if seed is not None:
            torch.manual_seed(seed)
        vae, unet, text_encoder, scheduler = _build_modules(card)
    for m in (vae, unet, text_encoder):
        m.eval().requires_grad_(False)
    return Components(
        name=card["name"],
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=_tokenizer_from_card(card),
        unet=unet,
        scheduler=scheduler,
        image_size=int(card["image_size"]),
        has_weights=False,
        card=card,
    )


def build_tiny(seed: int = 0) -> Components:
    """Seeded random components with the shipped model's geometry (for tests)."""
    comps = build_from_card(model_card("tiny"), seed=seed)
    comps.name = f"tiny-random-{seed}"
    return comps


_WEIGHT_FILES = {"vae": "vae.safetensors", "unet": "unet.safetensors", "text_encoder": "text_encoder.safetensors"}


def save_shipped(comps: Components, folder: Path, extra: dict[str, Any] | None = None,
                 dtype: torch.dtype = torch.float16) -> None:
    """Write the three weight files (safetensors, fp16 by default) and ``meta.json`` into ``folder``.

    fp16 halves what the repo ships; the weights are cast back to fp32 when loaded.
    """
    from safetensors.torch import save_file

    from meg_gym.files import atomic_write, record_sha256

    folder.mkdir(parents=True, exist_ok=True)
    for part, filename in _WEIGHT_FILES.items():
        state = {k: v.detach().to(dtype).contiguous().cpu() for k, v in getattr(comps, part).state_dict().items()}
        tmp = folder / f".{filename}.tmp"
        save_file(state, str(tmp))
        os.replace(tmp, folder / filename)
        record_sha256(folder, filename)
    meta = {"name": comps.name, "scaling_factor": comps.scaling_factor, **(extra or {})}
    atomic_write(folder / "meta.json", json.dumps(meta, indent=2) + "\n")


def load_shipped(name: str = "tiny", folder: Path | None = None) -> Components:
    """Load the shipped model ``name`` (card in ``configs/models/``, weights in the package)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    card = model_card(name)
    folder = Path(folder) if folder is not None else SHIPPED_DIR / name
    comps = build_from_card(card, seed=None)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        raise ModelError(f"model {name!r}: no trained weights in {folder} (run 'meg-gym train-ldm')")
    meta = read_meta(meta_path)
    comps.vae.register_to_config(scaling_factor=meta["scaling_factor"])
    for part, filename in _WEIGHT_FILES.items():
        path = folder / filename
        if not path.is_file():
            raise ModelError(f"model {name!r}: weight file {path} is missing")
        check_weights(path, shipped=folder == SHIPPED_DIR / name)
        try:
            state = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelError(f"model {name!r}: weight file {path} is not a valid safetensors file ({exc})") from exc
        module = getattr(comps, part)
        try:
            module.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ModelError(f"model {name!r}: weight file {path} does not match the card ({first})") from exc
    comps.has_weights = True
    comps.name = name
    comps.card = {**card, "trained": meta}
    return comps


def read_meta(path: Path) -> dict[str, Any]:
    """A weights folder's ``meta.json``: a JSON object with the model's ``name`` and a finite
    ``scaling_factor`` > 0 (the VAE latents' scale); anything else is a :class:`ModelError`."""
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelError(f"{path} is not readable JSON ({str(exc).splitlines()[0]}): restore it or re-run "
                         f"'meg-gym train-ldm'") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str):
        raise ModelError(f"{path} must be a JSON object with the model's 'name' (got {show(meta)})")
    factor = meta.get("scaling_factor")
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (math.isfinite(factor) and factor > 0):
        raise ModelError(f"{path}: 'scaling_factor' must be a finite number > 0 (got {show(factor)})")
    meta["scaling_factor"] = float(factor)
    return meta


def check_weights(path: Path, shipped: bool) -> None:
    """``path`` must match the SHA-256 recorded beside it (``SHA256SUMS``): a flipped or randomised
    region of a weight file still loads and gives NaN or wrong images with exit 0. A folder with no
    record is refused when it is the shipped one, and loaded with a warning otherwise."""
    from meg_gym.files import SUMS_FILE, FileCheckError, verify_sha256

    try:
        verify_sha256(path, required=shipped)
    except FileCheckError as exc:
        raise ModelError(str(exc)) from None
    if not (path.parent / SUMS_FILE).is_file():
        import warnings

        warnings.warn(f"{path.parent} has no {SUMS_FILE}: its weights are loaded unchecked", stacklevel=3)


def load_sd_folder(path: str | Path) -> Components:
    """Load a local diffusers Stable Diffusion folder, through safetensors only."""
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    folder = Path(path)
    if not folder.is_dir():
        raise ModelError(f"'model' folder {str(folder)!r} does not exist")
    missing = [sub for sub in ("vae", "unet", "text_encoder", "tokenizer", "scheduler") if not (folder / sub).is_dir()]
    if missing:
        raise ModelError(f"'model' folder {str(folder)!r} lacks the diffusers subfolders {missing}")
    try:
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", use_safetensors=True)
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", use_safetensors=True)
        text_encoder = CLIPTextModel.from_pretrained(folder / "text_encoder", use_safetensors=True)
        tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler")
    except (OSError, ValueError) as exc:
        raise ModelError(f"'model' folder {str(folder)!r} could not be loaded: {str(exc).splitlines()[0]}") from exc
    for m in (vae, unet, text_encoder):
        m.eval().requires_grad_(False)
    image_size = int(unet.config.sample_size) * 2 ** (len(vae.config.block_out_channels) - 1)
    return Components(
        name=str(folder),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=ClipTokenizerAdapter(tokenizer),
        unet=unet,
        scheduler=scheduler,
        image_size=image_size,
        card={"name": str(folder), "source": "local diffusers folder"},
    )


_LOADED: dict[tuple, Components] = {}


def load_model(model: str) -> Components:
    """Components for a scenario's ``model`` value: a card name or a local folder.

    Loaded once per process and shared (the stages never modify a model's weights), so many
    environments in one process, e.g. a ``SyncVectorEnv``, hold one copy.
    """
    if "/" in model or Path(model).is_dir():
        folder = Path(model).resolve()
        stamp = max((f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()), default=0) \
            if folder.is_dir() else 0
        key = ("folder", str(folder), stamp)
        if key not in _LOADED:
            _LOADED[key] = load_sd_folder(model)
        return _LOADED[key]
    key = ("card", model)
    if key not in _LOADED:
        card = model_card(model)
        _LOADED[key] = load_shipped(model) if card.get("weights") == "shipped" else build_from_card(card, meta=True)
    return _LOADED[key]


def _init_kwargs(module: Any) -> dict[str, Any]:
    """A diffusers model's config restricted to its constructor's arguments.

    (AutoencoderTiny also records ``block_out_channels``, which its constructor rejects.)
    """
    import inspect

    names = inspect.signature(type(module).__init__).parameters
    return {k: v for k, v in module.config.items() if k in names}


def meta_copy(comps: Components) -> Components:
    """The same architecture on the ``meta`` device: shapes and FLOPs without computing values."""
    if comps.device.type == "meta":
        return comps
    with torch.device("meta"):
        vae = type(comps.vae).from_config(_init_kwargs(comps.vae))
        unet = type(comps.unet).from_config(_init_kwargs(comps.unet))
        text_encoder = type(comps.text_encoder)(comps.text_encoder.config)
    return Components(
        name=comps.name, vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=comps.tokenizer, unet=unet.eval(),
        scheduler=type(comps.scheduler).from_config(comps.scheduler.config), image_size=comps.image_size,
        has_weights=False, card=comps.card,
    )
