"""LDM components: where the weights come from.

Three sources, one result (:class:`Components`):

* ``load_model("tiny")``: the shipped default model, trained by ``meg-gym train-ldm`` on the
  procedural scenes of :mod:`meg_gym.ldm.data`, loaded from safetensors files in the repo;
* ``load_model("/path/to/folder")``: a local diffusers folder (``vae/``, ``unet/``,
  ``text_encoder/``, ``tokenizer/``, ``scheduler/``; SDXL adds ``text_encoder_2/`` and
  ``tokenizer_2/``): SD 1.x / 2.x, SDXL and their few-step variants, safetensors only;
* ``load_model("sd15")``: a config-only model card: the real architecture built on the
  ``meta`` device, with no weights, so shapes and FLOP counts work with nothing on disk.

``load_model(model, device, dtype)`` places the weights (``Components.to``; ``docs/models.md``).
``build_tiny(seed)`` builds seeded random components with the tiny geometry, the way
diffusers' tests build ``get_dummy_components()``.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "Components",
    "FOLDER_PARTS",
    "MODEL_CARDS",
    "ModelError",
    "WordTokenizer",
    "build_from_card",
    "build_tiny",
    "img2img_pipeline",
    "load_model",
    "load_sd_folder",
    "load_shipped",
    "meta_copy",
    "model_card",
    "save_shipped",
    "SCHEDULERS",
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
    """The parts of a latent diffusion model, plus the geometry the stages need.

    SD 1.x / 2.x have one CLIP text encoder; SDXL adds ``text_encoder_2`` (a CLIP text model with
    a projection, whose pooled output conditions the UNet with the size ids) and ``tokenizer_2``.
    """

    name: str
    vae: Any
    text_encoder: Any
    tokenizer: Any
    unet: Any
    scheduler: Any
    image_size: int
    has_weights: bool = True
    card: dict[str, Any] = field(default_factory=dict)
    text_encoder_2: Any = None
    tokenizer_2: Any = None
    # SDXL: the unconditional embedding of an empty negative prompt is zeros (model_index.json's
    # force_zeros_for_empty_prompt, True in StableDiffusionXLPipeline unless the folder says otherwise)
    force_zeros_for_empty_prompt: bool = False

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The dtype the UNet and the text encoders run in (the VAE may be upcast: :meth:`to`)."""
        return next(self.unet.parameters()).dtype

    @property
    def family(self) -> str:
        """``sdxl`` (two text encoders, pooled embeddings and size ids) or ``sd`` (SD 1.x / 2.x, the tiny model)."""
        return "sdxl" if self.text_encoder_2 is not None else "sd"

    @property
    def modules(self) -> dict[str, Any]:
        """The parts with weights, by name."""
        parts = {"vae": self.vae, "unet": self.unet, "text_encoder": self.text_encoder,
                 "text_encoder_2": self.text_encoder_2}
        return {k: v for k, v in parts.items() if v is not None}

    def to(self, device: str | torch.device = "cpu", dtype: str | torch.dtype = "fp32") -> Components:
        """Move the modules to ``device`` and cast them to ``dtype`` (names as in :mod:`meg_gym.ldm.runtime`),
        in place (as ``nn.Module.to``), and return ``self``.

        In fp16 a VAE whose config sets ``force_upcast`` (AutoencoderKL's default; SDXL's VAE
        overflows in fp16) stays in fp32, as diffusers' SDXL pipelines upcast it for encoding and
        decoding; the stages cast latents to each module's own dtype.
        """
        import torch

        from meg_gym.ldm.runtime import resolve_device, resolve_dtype

        dev = resolve_device(device) if isinstance(device, str) else torch.device(device)
        dt = resolve_dtype(dtype) if isinstance(dtype, str) else dtype
        for name, module in self.modules.items():
            want = _runs_in(name, module.config, dt)
            current = next(module.parameters()).dtype
            # cast only when the dtype changes (diffusers warns on every dtype-casting .to())
            module.to(device=dev) if current == want else module.to(device=dev, dtype=want)
        return self

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


def _own_files(card: dict[str, Any]) -> dict[str, str]:
    """The weight files a model's own folder holds: all three, or the UNet's alone for a card that
    ``shares`` a base model (``configs/models/tiny_ue.yaml``)."""
    return {"unet": _WEIGHT_FILES["unet"]} if card.get("shares") else dict(_WEIGHT_FILES)


def save_shipped(comps: Components, folder: Path, extra: dict[str, Any] | None = None,
                 dtype: torch.dtype = torch.float16) -> None:
    """Write the three weight files (safetensors, fp16 by default) and ``meta.json`` into ``folder``.

    fp16 halves what the repo ships; the weights are cast back to fp32 when loaded. A model whose card
    ``shares`` a base model's parts writes its UNet only (the rest are the base's files).
    """
    from safetensors.torch import save_file

    from meg_gym.files import atomic_write, record_sha256

    folder.mkdir(parents=True, exist_ok=True)
    for part, filename in _own_files(comps.card).items():
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
    files = {part: (folder / filename, folder == SHIPPED_DIR / name) for part, filename in _own_files(card).items()}
    if card.get("shares"):  # the other parts are the base model's shipped files, checked as shipped
        base = card["shares"]
        base_meta = read_meta(SHIPPED_DIR / base / "meta.json")
        if base_meta["scaling_factor"] != meta["scaling_factor"]:
            raise ModelError(f"model {name!r}: {meta_path} has scaling_factor {meta['scaling_factor']} but the "
                             f"{base!r} VAE it shares has {base_meta['scaling_factor']}: it was trained against "
                             f"another VAE (re-run 'meg-gym train-ldm --model {name}')")
        files.update({part: (SHIPPED_DIR / base / filename, True) for part, filename in _WEIGHT_FILES.items()
                      if part not in files})
    for part, (path, shipped) in files.items():
        if not path.is_file():
            raise ModelError(f"model {name!r}: weight file {path} is missing")
        check_weights(path, shipped=shipped)
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


# The parts of a diffusers folder the stages run: subfolder -> (library, the classes accepted).
# SDXL's first text encoder is a plain CLIPTextModel, its second one has the projection (pooled embeds).
FOLDER_PARTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "unet": ("diffusers", ("UNet2DConditionModel",)),
    "vae": ("diffusers", ("AutoencoderKL", "AutoencoderTiny")),
    "text_encoder": ("transformers", ("CLIPTextModel",)),
    "text_encoder_2": ("transformers", ("CLIPTextModelWithProjection",)),
}
#: schedulers whose img2img loop the denoise stage runs as diffusers' pipelines do; each is tested
#: split == monolithic on a tiny folder (tests/ldm/test_model_families.py). LCM and Euler ancestral
#: (with ``timestep_spacing: trailing``) are the few-step ones of LCM and SD/SDXL-Turbo.
SCHEDULERS = ("DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "EulerAncestralDiscreteScheduler",
              "EulerDiscreteScheduler", "LCMScheduler", "PNDMScheduler", "UniPCMultistepScheduler")
_REQUIRED = ("vae", "unet", "text_encoder", "tokenizer", "scheduler")
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_VARIANT_RE = re.compile(r"\.(fp16|bf16|fp32)(?=[.-])")  # diffusion_pytorch_model.fp16.safetensors


def _runs_in(part: str, config: Any, dtype: torch.dtype) -> torch.dtype:
    """The dtype a part runs in: ``dtype``, except a VAE that asks for fp32 in fp16 (``force_upcast``)."""
    import torch

    upcast = part == "vae" and dtype == torch.float16 and bool(config.get("force_upcast", False))
    return torch.float32 if upcast else dtype


def _read_json(path: Path, shown: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"'model' folder {shown}: {path.name} could not be read ({str(exc).splitlines()[0]})") \
            from exc
    return data if isinstance(data, dict) else {}


def _part_class(folder: Path, part: str, shown: str) -> tuple[str, dict[str, Any]]:
    """The class a part's ``config.json`` names (diffusers: ``_class_name``; transformers: ``architectures``)."""
    library, accepted = FOLDER_PARTS[part]
    config = _read_json(folder / part / "config.json", shown)
    name = config.get("_class_name") if library == "diffusers" else (config.get("architectures") or [None])[0]
    if name not in accepted:
        raise ModelError(f"'model' folder {shown}: {part}/ holds a {name!r}; the stages run {list(accepted)}")
    if name == "AutoencoderKL":  # the class default when the config predates the key (SD 1.x)
        config.setdefault("force_upcast", True)
    if config.get("latents_mean") is not None:  # a per-channel latent normalisation the stages do not apply
        raise ModelError(f"'model' folder {shown}: vae/ normalises latents by latents_mean/latents_std, "
                         f"which the stages do not run (they scale by scaling_factor only)")
    return name, config


def _variant(folder: Path, part: str, shown: str, dtype: torch.dtype) -> str | None:
    """The weight files' variant (``fp16`` in ``*.fp16.safetensors``), or None for plain files.

    Only safetensors are loaded: a part with pickled weights alone (``.bin``, ``.ckpt``...) is
    refused, since unpickling can run arbitrary code (https://huggingface.co/docs/safetensors).
    """
    import torch

    files = [p.name for p in (folder / part).iterdir() if p.is_file()]
    tensors = [n for n in files if n.endswith(".safetensors")]
    if not tensors:
        pickled = [n for n in files if n.endswith(_PICKLE_SUFFIXES)]
        found = f" (found {pickled}: pickle files are refused, unpickling can run code)" if pickled else ""
        raise ModelError(f"'model' folder {shown}: {part}/ holds no .safetensors weights{found}; "
                         f"convert them to safetensors")
    if any(not _VARIANT_RE.search(n) for n in tensors):
        return None
    variants = sorted({m.group(1) for n in tensors if (m := _VARIANT_RE.search(n))})
    wanted = {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(dtype, "fp32")
    return wanted if wanted in variants else variants[0]


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


def load_sd_folder(path: str | Path, device: str = "cpu", dtype: str = "fp32") -> Components:
    """Load a local diffusers folder (SD 1.x / 2.x, SDXL, their few-step variants), through safetensors only.

    The parts and their classes: :data:`FOLDER_PARTS` (``text_encoder_2`` and ``tokenizer_2``
    make it SDXL); the scheduler is the folder's own, one of :data:`SCHEDULERS`. Weights load
    in ``dtype`` and move to ``device`` (:meth:`Components.to`); nothing is downloaded.
    """
    import diffusers
    import transformers

    from meg_gym.ldm.runtime import resolve_device, resolve_dtype

    folder = Path(path)
    shown = repr(str(folder))
    if not folder.is_dir():
        raise ModelError(f"'model' folder {shown} does not exist")
    sdxl = (folder / "text_encoder_2").is_dir()
    needed = _REQUIRED + (("text_encoder_2", "tokenizer_2") if sdxl else ())
    missing = [sub for sub in needed if not (folder / sub).is_dir()]
    if missing:
        raise ModelError(f"'model' folder {shown} lacks the diffusers subfolders {missing}")
    resolve_device(device)  # an unavailable device fails before gigabytes load
    dt = resolve_dtype(dtype)
    index = _read_json(folder / "model_index.json", shown) if (folder / "model_index.json").is_file() else {}
    sched_name = _read_json(folder / "scheduler" / "scheduler_config.json", shown).get("_class_name")
    if sched_name not in SCHEDULERS:
        raise ModelError(f"'model' folder {shown}: scheduler/ holds a {sched_name!r}; "
                         f"the stages run {list(SCHEDULERS)}")
    modules: dict[str, Any] = {}
    try:
        for part in FOLDER_PARTS:
            if part == "text_encoder_2" and not sdxl:
                continue
            cls_name, config = _part_class(folder, part, shown)
            library = diffusers if FOLDER_PARTS[part][0] == "diffusers" else transformers
            common = {"use_safetensors": True, "local_files_only": True,
                      "variant": _variant(folder, part, shown, dt)}
            part_dtype = _runs_in(part, config, dt)
            if library is diffusers:
                modules[part] = getattr(diffusers, cls_name).from_pretrained(folder, subfolder=part,
                                                                             torch_dtype=part_dtype, **common)
            else:
                modules[part] = getattr(transformers, cls_name).from_pretrained(folder / part, dtype=part_dtype,
                                                                                **common)
        tokenizers = [transformers.CLIPTokenizer.from_pretrained(folder / sub, local_files_only=True)
                      for sub in (("tokenizer", "tokenizer_2") if sdxl else ("tokenizer",))]
        scheduler = getattr(diffusers, sched_name).from_pretrained(folder, subfolder="scheduler")
        if not sdxl:  # the fix-ups StableDiffusion(Img2Img)Pipeline.__init__ applies to outdated SD configs
            fixed = {k: v for k, v in (("steps_offset", 1), ("clip_sample", False))
                     if k in scheduler.config and scheduler.config[k] != v}
            if fixed:
                scheduler = type(scheduler).from_config({**scheduler.config, **fixed})
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"'model' folder {shown} could not be loaded: {str(exc).splitlines()[0]}") from exc
    for m in modules.values():
        m.eval().requires_grad_(False)
    comps = Components(
        name=str(folder), vae=modules["vae"], text_encoder=modules["text_encoder"],
        tokenizer=ClipTokenizerAdapter(tokenizers[0]), unet=modules["unet"], scheduler=scheduler, image_size=0,
        card={"name": str(folder), "source": "local diffusers folder", "family": "sdxl" if sdxl else "sd",
              "scheduler": sched_name},
        text_encoder_2=modules.get("text_encoder_2"),
        tokenizer_2=ClipTokenizerAdapter(tokenizers[1]) if sdxl else None,
        force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", True)) if sdxl else False,
    )
    comps.image_size = int(comps.unet.config.sample_size) * comps.vae_scale_factor
    return comps.to(device, dtype)


_LOADED: dict[tuple, Components] = {}


def load_model(model: str, device: str = "cpu", dtype: str = "fp32") -> Components:
    """Components for a scenario's ``model`` value (a card name or a local folder) on ``device`` in ``dtype``
    (:mod:`meg_gym.ldm.runtime` names; config-only cards stay on the ``meta`` device).

    Loaded once per process and placement, and shared (the stages never modify a model's
    weights), so many environments in one process, e.g. a ``SyncVectorEnv``, hold one copy.
    """
    if "/" in model or Path(model).is_dir():
        folder = Path(model).resolve()
        stamp = max((f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()), default=0) \
            if folder.is_dir() else 0
        key = ("folder", str(folder), stamp, device, dtype)
        if key not in _LOADED:
            _LOADED[key] = load_sd_folder(model, device, dtype)
        return _LOADED[key]
    card = model_card(model)
    if card.get("weights") != "shipped":
        key = ("card", model)
        if key not in _LOADED:
            _LOADED[key] = build_from_card(card, meta=True)
        return _LOADED[key]
    key = ("card", model, device, dtype)
    if key not in _LOADED:
        _LOADED[key] = load_shipped(model).to(device, dtype)
    return _LOADED[key]


def img2img_pipeline(comps: Components) -> Any:
    """diffusers' monolithic img2img pipeline over these components (``StableDiffusionXLImg2ImgPipeline``
    for SDXL, ``StableDiffusionImg2ImgPipeline`` otherwise): the reference the split stages equal.

    A model without a CLIP tokenizer (the tiny one, a card with random weights) gets none: give the
    pipeline ``prompt_embeds``. It shares the modules (an fp16 SDXL pipeline casts its VAE while it runs).
    """
    from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

    tokenizer = getattr(comps.tokenizer, "tokenizer", None)  # the CLIPTokenizer inside ClipTokenizerAdapter
    if comps.family == "sdxl":
        pipe = StableDiffusionXLImg2ImgPipeline(
            vae=comps.vae, text_encoder=comps.text_encoder, text_encoder_2=comps.text_encoder_2,
            tokenizer=tokenizer, tokenizer_2=comps.tokenizer_2.tokenizer, unet=comps.unet,
            scheduler=comps.scheduler, force_zeros_for_empty_prompt=comps.force_zeros_for_empty_prompt,
            add_watermarker=False)
    else:
        pipe = StableDiffusionImg2ImgPipeline(
            vae=comps.vae, text_encoder=comps.text_encoder, tokenizer=tokenizer, unet=comps.unet,
            scheduler=comps.scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


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
        text_encoder_2 = None if comps.text_encoder_2 is None else type(comps.text_encoder_2)(
            comps.text_encoder_2.config).eval()
    # all in fp32: shapes and FLOPs do not depend on the dtype, and a text encoder built from the config
    # of one loaded in fp16 would otherwise be fp16 beside an fp32 UNet
    vae, unet, text_encoder = (m.to(torch.float32) for m in (vae, unet, text_encoder))
    if text_encoder_2 is not None:
        text_encoder_2 = text_encoder_2.to(torch.float32)
    return Components(
        name=comps.name, vae=vae.eval(), text_encoder=text_encoder.eval(), tokenizer=comps.tokenizer, unet=unet.eval(),
        scheduler=type(comps.scheduler).from_config(comps.scheduler.config), image_size=comps.image_size,
        has_weights=False, card=comps.card, text_encoder_2=text_encoder_2, tokenizer_2=comps.tokenizer_2,
        force_zeros_for_empty_prompt=comps.force_zeros_for_empty_prompt,
    )
