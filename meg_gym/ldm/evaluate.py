"""``meg-gym evaluate-ldm``: the shipped model's measured numbers (written to its meta.json).

* VAE reconstruction PSNR on held-out scenes;
* the attribute classifier's held-out accuracy, per attribute;
* prompt fidelity of text-guided img2img on held-out requests (one attribute of the scene
  changed in the prompt), with the ES's full setting and with Full UE's weaker setting,
  and Full UE's SSIM against the full setting's output (same request, same generator).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from meg_gym.ldm.components import SHIPPED_DIR, Components, load_shipped
from meg_gym.ldm.data import ATTRIBUTES, caption, edit_scene, parse_caption, render, sample_scenes
from meg_gym.ldm.stages import STAGES, GenerationSettings, StageContext, run_stage
from meg_gym.quality.metrics import psnr_db, ssim

__all__ = ["evaluate_ldm", "evaluate_ue_model", "img2img"]


def img2img(comps: Components, image: torch.Tensor, prompt: str, settings: GenerationSettings, seed: int,
            weak: bool = False) -> torch.Tensor:
    """One monolithic generation through the stages (the Full ES chain, or Full UE's with ``weak``)."""
    ctx = StageContext(comps, settings, torch.Generator().manual_seed(seed))
    store: dict[str, Any] = {"image": image, "text": prompt}
    for name in ("encode_text", "encode_image", "denoise", "decode"):
        stage = STAGES[name]
        params = {"weak": True} if weak and name == "denoise" else {}
        store.update(run_stage(stage, ctx, {k: store[k] for k in stage.inputs}, params))
    return store["output"]


def evaluate_ldm(requests: int = 200, seed: int = 30_000, settings: GenerationSettings | None = None,
                 progress: bool = True, write: bool = False, grid: Path | None = None) -> dict[str, Any]:
    """Measure the shipped tiny model; returns the numbers (``write``: also stores them in its meta.json).

    ``grid``: also save the first 8 requests as a PNG (input, Full ES output, Full UE output).
    """
    from meg_gym.quality.fidelity import load_judge

    comps = load_shipped("tiny")
    judge = load_judge()
    s = settings or GenerationSettings()
    rng = np.random.default_rng(seed)
    # VAE reconstruction and classifier accuracy on held-out scenes
    scenes = sample_scenes(rng, 256)
    x = torch.from_numpy(render(scenes))
    with torch.no_grad():
        rec = (comps.vae.decode(comps.vae.encode(x * 2 - 1).latents).sample + 1) / 2
    preds = judge.classifier.predict(x)
    acc = {n: float(np.mean([p[n] == getattr(sc, n) for p, sc in zip(preds, scenes)])) for n in ATTRIBUTES}
    # img2img prompt fidelity: full setting vs Full UE's weaker one
    fid_full, fid_weak, edit_full, edit_weak, ssim_weak = [], [], [], [], []
    tiles: list = []
    for i in tqdm(range(requests), desc="img2img", disable=not progress):
        scene = sample_scenes(rng, 1)[0]
        attr = ("color", "shape", "background")[i % 3]
        target = edit_scene(rng, scene, attr)
        image = torch.from_numpy(render([scene]))
        prompt = caption(target)
        full = img2img(comps, image, prompt, s, seed + i)[0]
        weak = img2img(comps, image, prompt, s, seed + i, weak=True)[0]
        want = parse_caption(prompt)
        for out, fids, edits in ((full, fid_full, edit_full), (weak, fid_weak, edit_weak)):
            fids.append(judge.score(out, prompt))
            edits.append(float(judge.classifier.predict(out[None])[0][attr] == want[attr]))
        ssim_weak.append(ssim(weak, full))
        if grid is not None and i < 8:
            tiles += [(image[0], ["input", caption(scene)]), (full, [f"Full ES ({s.steps} steps)", prompt]),
                      (weak, [f"Full UE ({s.ue_steps} steps)", f"fidelity {fid_weak[-1]:.2f}"])]
    result = {
        "vae_heldout_psnr_db": psnr_db(rec, x),
        "classifier_heldout_accuracy": acc,
        "img2img": {
            "requests": requests, "steps": s.steps, "ue_steps": s.ue_steps, "strength": s.strength,
            "guidance_scale": s.guidance_scale,
            "fidelity_full_es": float(np.mean(fid_full)), "fidelity_full_ue": float(np.mean(fid_weak)),
            "edit_success_full_es": float(np.mean(edit_full)), "edit_success_full_ue": float(np.mean(edit_weak)),
            "ssim_full_ue_vs_full_es": float(np.mean(ssim_weak)),
        },
    }
    if grid is not None:
        from meg_gym.demo import save_grid

        save_grid(Path(grid), tiles, cell=128, columns=6)
    if write:
        path = SHIPPED_DIR / "tiny" / "meta.json"
        meta = json.loads(path.read_text())
        meta["evaluation"] = result
        path.write_text(json.dumps(meta, indent=2) + "\n")
    return result


def evaluate_ue_model(ue_model: str = "tiny_ue", requests: int = 100, seed: int = 30_000,
                      splits: tuple[int, ...] = (3, 6, 9), areas: tuple[float, ...] = (0.25, 0.5, 0.75),
                      settings: GenerationSettings | None = None,
                      progress: bool = True, write: bool = False) -> dict[str, Any]:
    """Measure a UE-class model (a card that ``shares`` the default model's parts) against the default model.

    On held-out img2img requests, through the live stages over a perfect channel: prompt fidelity of
    Full ES (the default model), of Full UE with the UE-class model, and of the temporal splits
    ``tsplit:<k>`` (the ES's first k steps, the UE model's rest) and the spatial splits ``ssplit:<area>``
    (the ES's centre, outpainted by the UE model); the SSIM of each against Full ES's
    output for the same request and generator; and both UNets' FLOPs per classifier-free-guided step.
    ``write``: also store the numbers in the UE model's shipped meta.json (``evaluation``).
    """
    from meg_gym.compute.flops import measure_ldm_flops
    from meg_gym.executor import LinkConditions, NodeCompute, execute
    from meg_gym.ldm.components import load_model, model_card
    from meg_gym.protocols import place
    from meg_gym.quality.fidelity import load_judge

    base = model_card(ue_model).get("shares")
    if not base:
        raise ValueError(f"'ue_model' must be a card that shares a default model's parts (got {ue_model!r})")
    es, ue = load_model(base), load_model(ue_model)
    judge = load_judge()
    s = settings or GenerationSettings()
    links = LinkConditions(snr_db={(0, "ul"): 30.0, (0, "dl"): 30.0}, bandwidth_hz=1e6, noiseless=True)
    compute = NodeCompute(ue_flops_per_s=1e12, es_flops_per_s={0: 1e13})
    runs = {"full_es": ("full_es", None), "full_ue_default": ("full_ue", None), "full_ue": ("full_ue", ue),
            **{f"tsplit:{k}": (f"tsplit:{k}", ue) for k in splits},
            **{f"ssplit:{a}": (f"ssplit:{a}", ue) for a in areas}}
    fid: dict[str, list[float]] = {k: [] for k in runs}
    sim: dict[str, list[float]] = {k: [] for k in runs}
    rng = np.random.default_rng(seed)
    for i in tqdm(range(requests), desc=f"{ue_model} img2img", disable=not progress):
        scene = sample_scenes(rng, 1)[0]
        target = edit_scene(rng, scene, ("color", "shape", "background")[i % 3])
        image, prompt = torch.from_numpy(render([scene])), caption(target)
        outs = {}
        for name, (protocol, ue_comps) in runs.items():
            res = execute(place(protocol, (0,)), es, image, prompt, settings=s, links=links, compute=compute,
                          generator=torch.Generator().manual_seed(seed + i), ue_comps=ue_comps)
            outs[name] = res.output[0]
            fid[name].append(judge.score(outs[name], prompt))
            sim[name].append(ssim(outs[name], outs["full_es"]))
    flops = {m.name: measure_ldm_flops(m).unet_cfg_step_flops for m in (es, ue)}
    result = {
        "requests": requests, "steps": s.steps, "strength": s.strength, "guidance_scale": s.guidance_scale,
        "model": base, "ue_model": ue_model,
        "unet_cfg_step_flops": {base: flops[es.name], ue_model: flops[ue.name]},
        "fidelity": {k: float(np.mean(v)) for k, v in fid.items()},
        "ssim_vs_full_es": {k: float(np.mean(v)) for k, v in sim.items()},
    }
    if write:
        path = SHIPPED_DIR / ue_model / "meta.json"
        meta = json.loads(path.read_text())
        meta["evaluation"] = result
        from meg_gym.files import atomic_write

        atomic_write(path, json.dumps(meta, indent=2) + "\n")
    return result
