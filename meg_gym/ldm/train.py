"""Training of the shipped tiny LDM: ``meg-gym train-ldm``.

Three phases, each resumable from its checkpoint and exported to safetensors when done
(and every ``--export-every`` steps for the long UNet phase, so a stopped run loses little):

1. ``vae``: AutoencoderTiny on procedural scenes (L1 + MSE)
then the latent scaling
   factor is set to 1/std of the latents, as Stable Diffusion did (Rombach et al. 2022, Sec. 4.3).
2. ``unet``: the CLIP-style text encoder and the UNet together, epsilon prediction on VAE
   latents, 10% caption dropout for classifier-free guidance, EMA of the weights.
3. ``classifier``: the attribute classifier of prompt fidelity, on clean images and on
   their VAE reconstructions (so it judges decoded outputs fairly).
"""

from __future__ import annotations

import copy
import io
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from meg_gym.ldm.components import (
    SHIPPED_DIR,
    Components,
    ModelError,
    build_from_card,
    build_tiny,
    load_shipped,
    model_card,
    save_shipped,
)
from meg_gym.ldm.data import ATTRIBUTES, caption, render, sample_scenes
from meg_gym.quality.classifier import AttributeClassifier

__all__ = ["TrainSettings", "train"]

PHASES = ("vae", "unet", "classifier")
#: models train-ldm trains: the shipped default, and the UE-class model that shares its other parts
TRAINABLE = ("tiny", "tiny_ue")
DEFAULT_CKPT = Path.home() / ".cache" / "meg_gym" / "train-ldm"


@dataclass(frozen=True)
class TrainSettings:
    phase: str
    steps: int
    batch_size: int = 32
    lr: float = 5e-4
    seed: int = 0
    checkpoint_dir: Path = DEFAULT_CKPT
    out_dir: Path = Path("out") / "tiny"  # the shipped folder only when asked (meg-gym train-ldm --install)
    export_every: int = 1000
    checkpoint_every: int = 200
    threads: int = 2
    model: str = "tiny"  # tiny_ue: the UE-class UNet alone, against tiny's frozen text encoder and VAE
    # UNet phase: 0 draws fresh scenes every batch (how tiny was trained); N > 0 encodes N scenes once with
    # the frozen VAE and draws batches from their latents (the VAE encoder costs ~2x a small UNet's training
    # step per image, so a frozen-VAE phase spends its CPU on the UNet; the noise and t are fresh every draw)
    latent_pool: int = 0

    def __post_init__(self) -> None:
        from meg_gym.channel._validate import check_choice, check_int, check_number

        check_choice("phase", self.phase, ("vae", "unet", "classifier"))
        check_choice("model", self.model, TRAINABLE)
        if self.latent_pool and self.model == "tiny":
            raise ValueError(f"'latent_pool' must be 0 for model 'tiny': its VAE is not frozen in the UNet phase "
                             f"(got {self.latent_pool})")
        if self.model != "tiny" and self.phase != "unet":
            raise ValueError(f"'phase' must be 'unet' for model {self.model!r}: it shares tiny's VAE, text encoder "
                             f"and classifier (got {self.phase!r})")
        for name, lo, hi in (("steps", 1, 10**7), ("batch_size", 1, 4096), ("export_every", 1, 10**7),
                             ("checkpoint_every", 1, 10**7), ("threads", 1, 1024), ("seed", 0, 2**63 - 1),
                             ("latent_pool", 0, 10**6)):
            check_int(name, getattr(self, name), lo=lo, hi=hi)
        check_number("lr", self.lr, lo=0.0, hi=1.0, lo_open=True)


def _batch(rng: np.random.Generator, n: int) -> tuple[torch.Tensor, list[str], list]:
    scenes = sample_scenes(rng, n)
    return torch.from_numpy(render(scenes)), [caption(s) for s in scenes], scenes


def psnr_db(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = torch.mean((a.clamp(0, 1) - b.clamp(0, 1)) ** 2).item()
    return float(10 * math.log10(1.0 / max(mse, 1e-12)))


def _save_ckpt(path: Path, step: int, state: dict) -> None:
    """A training checkpoint as tensors, numbers and strings only (the NumPy generator as its state
    in JSON), so that :func:`_load_ckpt` reads it with ``torch.load(weights_only=True)``: a crafted
    checkpoint cannot run code. Written whole or not at all."""
    from meg_gym.files import atomic_write

    state = {**state, "rng": json.dumps(state["rng"].bit_generator.state)}
    buf = io.BytesIO()
    torch.save({"step": step, **state}, buf)
    atomic_write(path, buf.getvalue())


def _load_ckpt(path: Path) -> dict:
    """A checkpoint of :func:`_save_ckpt` (weights_only: no code runs), its generator rebuilt."""
    from meg_gym.state import BIT_GENERATORS

    try:
        st = torch.load(path, weights_only=True)
        rng_state = json.loads(st["rng"])
        name = rng_state["bit_generator"]
        if name not in BIT_GENERATORS or not isinstance(st["step"], int):
            raise ValueError(f"bit generator {name!r}")
        rng = np.random.Generator(getattr(np.random, name)())
        rng.bit_generator.state = rng_state
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same clear message
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelError(f"training checkpoint {path} cannot be resumed ({first[:200]}): delete it to start the "
                         f"phase again") from None
    return {**st, "rng": rng}


def _load_components(s: TrainSettings) -> Components:
    """The weights trained so far in ``out_dir``, else the shipped ones, else seeded random ones (for a
    model that shares tiny's parts: a seeded random UNet beside tiny's shipped VAE and text encoder)."""
    for folder in (s.out_dir, SHIPPED_DIR / s.model):
        try:
            return load_shipped(s.model, folder)
        except Exception:  # noqa: BLE001 - nothing trained there yet is the normal first case
            continue
    if s.model == "tiny":
        return build_tiny(s.seed)
    comps = copy.copy(load_shipped(model_card(s.model)["shares"]))
    comps.unet = build_from_card(model_card(s.model), seed=s.seed).unet
    comps.name, comps.card = s.model, model_card(s.model)
    return comps


def _lr_at(step: int, total: int, base: float, warmup: int = 200) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train_vae(s: TrainSettings) -> dict:
    comps = _load_components(s)
    vae = comps.vae.train().requires_grad_(True)
    opt = torch.optim.Adam(vae.parameters(), lr=s.lr)
    ckpt = s.checkpoint_dir / "vae.pt"
    step = 0
    rng_state = np.random.default_rng(s.seed)
    if ckpt.is_file():
        st = _load_ckpt(ckpt)
        vae.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        step = st["step"]
        rng_state = st["rng"]
    rng = rng_state
    bar = tqdm(total=s.steps, initial=step, desc="vae", unit="step")
    while step < s.steps:
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, s.steps, s.lr)
        x, _, _ = _batch(rng, s.batch_size)
        y = vae.decode(vae.encode(x * 2 - 1).latents).sample
        y = (y + 1) / 2
        loss = (y - x).abs().mean() + ((y - x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}", psnr=f"{psnr_db(y.detach(), x):.1f}")
        if step % s.checkpoint_every == 0 or step == s.steps:
            _save_ckpt(ckpt, step, {"model": vae.state_dict(), "opt": opt.state_dict(), "rng": rng})
    bar.close()
    vae.eval().requires_grad_(False)
    # held-out reconstruction PSNR and the latent scale, on scenes from another seed
    x, _, _ = _batch(np.random.default_rng(10_000 + s.seed), 256)
    with torch.no_grad():
        lat = vae.encode(x * 2 - 1).latents
        y = (vae.decode(lat).sample + 1) / 2
    result = {"vae_heldout_psnr_db": psnr_db(y, x), "vae_steps": step}
    vae.register_to_config(scaling_factor=float(1.0 / lat.std().item()))
    save_shipped(comps, s.out_dir, extra=_merge_meta(s.out_dir, result))
    return result


def _merge_meta(folder: Path, new: dict) -> dict:
    path = folder / "meta.json"
    old = json.loads(path.read_text()) if path.is_file() else {}
    old.pop("name", None)
    old.pop("scaling_factor", None)
    return {**old, **new}


def train_unet(s: TrainSettings) -> dict:
    comps = _load_components(s)
    vae, unet, te, sched, tok = comps.vae, comps.unet, comps.text_encoder, comps.scheduler, comps.tokenizer
    unet.train().requires_grad_(True)
    # the UE-class model learns against the frozen shipped text encoder: its text embedding must be the ES's
    own_te = s.model == "tiny"
    te.train(own_te).requires_grad_(own_te)
    params = list(unet.parameters()) + (list(te.parameters()) if own_te else [])
    opt = torch.optim.AdamW(params, lr=s.lr, weight_decay=1e-2)
    ema_unet, ema_te = copy.deepcopy(unet).eval(), copy.deepcopy(te).eval()
    ckpt = s.checkpoint_dir / ("unet.pt" if s.model == "tiny" else f"{s.model}-unet.pt")
    step = 0
    rng = np.random.default_rng(s.seed + 1)
    gen = torch.Generator().manual_seed(s.seed + 1)
    if ckpt.is_file():
        st = _load_ckpt(ckpt)
        unet.load_state_dict(st["unet"])
        te.load_state_dict(st["te"])
        opt.load_state_dict(st["opt"])
        ema_unet.load_state_dict(st["ema_unet"])
        ema_te.load_state_dict(st["ema_te"])
        step, rng = st["step"], st["rng"]
        gen.set_state(st["gen"])
    sf = comps.scaling_factor
    pool = _latent_pool(s, vae, sf) if s.latent_pool else None
    bar = tqdm(total=s.steps, initial=step, desc="unet", unit="step")
    t0 = time.time()
    while step < s.steps:
        for g in opt.param_groups:
            g["lr"] = _lr_at(step, s.steps, s.lr, warmup=500 if pool is None else 200)
        if pool is None:
            x, caps, _ = _batch(rng, s.batch_size)
            with torch.no_grad():
                lat = vae.encode(x * 2 - 1).latents * sf
        else:
            idx = rng.integers(0, len(pool[1]), s.batch_size)
            lat, caps = pool[0][torch.from_numpy(idx)], [pool[1][i] for i in idx]
        caps = ["" if rng.random() < 0.1 else c for c in caps]
        noise = torch.randn(lat.shape, generator=gen)
        t = torch.randint(0, sched.config.num_train_timesteps, (lat.shape[0],), generator=gen)
        noisy = sched.add_noise(lat, noise, t)
        with torch.set_grad_enabled(own_te):
            emb = te(tok(caps)).last_hidden_state
        pred = unet(noisy, t, emb).sample
        loss = ((pred - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        decay = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for ema, live in ((ema_unet, unet), (ema_te, te))[: 2 if own_te else 1]:
                for pe, pl in zip(ema.parameters(), live.parameters()):
                    pe.lerp_(pl, 1 - decay)
        step += 1
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.4f}")
        if step % s.checkpoint_every == 0 or step == s.steps:
            _save_ckpt(ckpt, step, {"unet": unet.state_dict(), "te": te.state_dict(), "opt": opt.state_dict(),
                                    "ema_unet": ema_unet.state_dict(), "ema_te": ema_te.state_dict(),
                                    "rng": rng, "gen": gen.get_state()})
        if step % s.export_every == 0 or step == s.steps:
            out = copy.copy(comps)
            out.unet, out.text_encoder = ema_unet, ema_te
            save_shipped(out, s.out_dir, extra=_merge_meta(s.out_dir, {"unet_steps": step, "unet_loss": loss.item()}))
    bar.close()
    return {"unet_steps": step, "seconds": time.time() - t0}


def _latent_pool(s: TrainSettings, vae: nn.Module, scale: float) -> tuple[torch.Tensor, list[str]]:
    """``latent_pool`` scenes (their own seed) encoded once by the frozen VAE: (scaled latents, captions).
    Kept beside the checkpoint as safetensors (the captions are redrawn from the seed), so a resumed run
    does not encode them again."""
    from safetensors.torch import load_file, save_file

    rng = np.random.default_rng(50_000 + s.seed)
    scenes = sample_scenes(rng, s.latent_pool)
    caps = [caption(sc) for sc in scenes]
    path = s.checkpoint_dir / f"{s.model}-latents-{s.latent_pool}-{s.seed}.safetensors"
    if path.is_file():
        lat = load_file(str(path))["latents"]
        if lat.shape[0] == s.latent_pool:
            return lat, caps
    chunks = []
    for i in tqdm(range(0, s.latent_pool, 64), desc="latent pool", unit="batch"):
        x = torch.from_numpy(render(scenes[i:i + 64]))
        with torch.no_grad():
            chunks.append(vae.encode(x * 2 - 1).latents * scale)
    lat = torch.cat(chunks).contiguous()
    s.checkpoint_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({"latents": lat}, str(tmp))
    os.replace(tmp, path)
    return lat, caps


def train_classifier(s: TrainSettings) -> dict:
    from safetensors.torch import save_file

    comps = _load_components(s)
    torch.manual_seed(s.seed)
    clf = AttributeClassifier()
    opt = torch.optim.Adam(clf.parameters(), lr=s.lr)
    rng = np.random.default_rng(s.seed + 2)
    names = list(ATTRIBUTES)
    bar = tqdm(total=s.steps, desc="classifier", unit="step")
    for step in range(s.steps):
        x, _, scenes = _batch(rng, s.batch_size)
        if step % 2 == 1:  # half the batches are VAE reconstructions, like real outputs
            with torch.no_grad():
                x = ((comps.vae.decode(comps.vae.encode(x * 2 - 1).latents).sample + 1) / 2).clamp(0, 1)
        x = (x + torch.randn_like(x) * float(rng.uniform(0, 0.08))).clamp(0, 1)
        logits = clf(x)
        loss = sum(
            nn.functional.cross_entropy(logits[n], torch.tensor([ATTRIBUTES[n].index(getattr(sc, n)) for sc in scenes]))
            for n in names
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        bar.update(1)
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    clf.eval()
    x, _, scenes = _batch(np.random.default_rng(20_000 + s.seed), 512)
    preds = clf.predict(x)
    acc = {n: float(np.mean([p[n] == getattr(sc, n) for p, sc in zip(preds, scenes)])) for n in names}
    s.out_dir.mkdir(parents=True, exist_ok=True)
    from meg_gym.files import record_sha256

    tmp = s.out_dir / ".classifier.safetensors.tmp"
    save_file({k: v.contiguous() for k, v in clf.state_dict().items()}, str(tmp))
    os.replace(tmp, s.out_dir / "classifier.safetensors")
    record_sha256(s.out_dir, "classifier.safetensors")
    result = {"classifier_heldout_accuracy": acc, "classifier_steps": s.steps}
    meta_path = s.out_dir / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta.update(result)
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")
    return result


def train(s: TrainSettings) -> dict:
    """Run one training phase; returns the measured numbers it wrote to ``meta.json``."""
    if s.phase not in PHASES:
        raise ValueError(f"'phase' must be one of {list(PHASES)} (got {s.phase!r})")
    torch.set_num_threads(s.threads)
    return {"vae": train_vae, "unet": train_unet, "classifier": train_classifier}[s.phase](s)
