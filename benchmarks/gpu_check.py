"""Live mode on a torch device: a generation's time per protocol, split against monolithic, a calibration point.

Usage:
    python benchmarks/gpu_check.py --device cuda --dtype fp16 --model tiny --out gpu_check.json
    python benchmarks/gpu_check.py --device cuda --dtype fp16 --model sd15-random   # SD-1.5 size, random weights
    python benchmarks/gpu_check.py --device cuda --dtype fp16 --model /path/to/diffusers-folder

``--model``: ``tiny`` (the shipped model), ``sd15-random`` (configs/models/sd15.yaml's architecture with
seeded random weights: Stable Diffusion's cost at 512 x 512 with nothing downloaded) or a local diffusers
folder (SD 1.x / 2.x, SDXL, LCM, Turbo). What it measures, each the median of ``--repeats`` runs after a
warm-up (CUDA work is synchronised before a clock is read):

* ``protocols``: the wall time of one generation of each protocol (one executor pass over a perfect
  channel: stages on their nodes, payload counting, the channel), and whether its output equals the
  monolithic one (Full ES, UIEG, EIUG and CIAG should, bit for bit);
* ``monolithic_s``: diffusers' img2img pipeline over the same components, steps and generator, and
  ``split_over_monolithic`` = CIAG's time / the pipeline's;
* ``calibration_point_s``: ``meg_gym.quality.calibrate.calibrate`` of one point (CIAG at 10 dB up and down,
  ``--calib-requests`` requests over an AWGN channel: each request served and its perfect-channel
  reference generated);
* ``vs_cpu_fp32_max_abs``: on another device or dtype, CIAG's output against the same request run on
  the CPU in fp32 (randomness comes from CPU generators, so only rounding differs); for models of at
  most 128 px, or with ``--compare-cpu``.

The JSON goes to ``--out`` (written to a temporary file, then renamed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import meg_gym  # noqa: F401  (first: it quiets transformers' import-time warnings)

SINGLE = ("full_ue", "full_es", "uieg", "eiug", "ciag", "esuc")
MULTI = ("uidg", "diug", "dsuc", "uidcg", "dcsuc")
EQUAL_TO_MONOLITHIC = ("full_es", "uieg", "eiug", "ciag")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _median_s(fn: Any, repeats: int, device: torch.device) -> tuple[float, Any]:
    out = fn()  # warm-up: FLOP counting, kernel selection, allocator
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def _components(model: str, device: str, dtype: str) -> Any:
    from meg_gym.ldm.components import build_from_card, load_model, model_card

    if model == "sd15-random":
        comps = build_from_card(model_card("sd15"), seed=0)  # SD-1.5's architecture, seeded random weights
        comps.name = "sd15-random"
        return comps.to(device, dtype)
    return load_model(model, device, dtype)


def _monolithic(comps: Any, settings: Any, image: torch.Tensor, prompt: str, seed: int) -> Any:
    """diffusers' img2img pipeline over ``comps``, as a function of no arguments (prompt embeddings given
    where the model has no CLIP tokenizer: the tiny and the random model)."""
    from meg_gym.ldm.components import img2img_pipeline

    pipe = img2img_pipeline(comps)
    common = {"image": image, "strength": settings.strength, "num_inference_steps": settings.steps,
              "guidance_scale": settings.guidance_scale, "output_type": "pt"}
    if pipe.tokenizer is not None:
        return lambda: pipe(prompt=prompt, generator=torch.Generator().manual_seed(seed), **common).images

    def run() -> torch.Tensor:
        with torch.no_grad():  # one call per prompt, as the pipeline's encode_prompt
            neg, pos = (comps.text_encoder(comps.tokenizer([t]).to(comps.device))[0] for t in ("", prompt))
            return pipe(prompt_embeds=pos, negative_prompt_embeds=neg,
                        generator=torch.Generator().manual_seed(seed), **common).images
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N, mps")
    ap.add_argument("--dtype", default="fp32", help="fp32, fp16, bf16")
    ap.add_argument("--model", default="tiny", help="tiny, sd15-random or a local diffusers folder")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--calib-requests", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    ap.add_argument("--compare-cpu", action="store_true",
                    help="also run CIAG on the CPU in fp32 for vs_cpu_fp32_max_abs (default: only for models of "
                         "at most 128 px; an SD-size generation on a CPU takes minutes)")
    ap.add_argument("--out", default="gpu_check.json")
    args = ap.parse_args()

    from meg_gym.config import load_scenario
    from meg_gym.executor import execute
    from meg_gym.quality.calibrate import calibrate
    from meg_gym.system import MegSystem
    from meg_gym.workload import sample_request

    if args.threads:
        torch.set_num_threads(args.threads)
    model = "sd15" if args.model == "sd15-random" else args.model  # the scenario's name for the table and costs
    overrides = {"model": model, "torch_device": args.device, "torch_dtype": args.dtype, "num_es": 2,
                 "es": [{"load": 0.0}], "channel": {"kind": "perfect"}, "torch_threads": torch.get_num_threads()}
    t0 = time.perf_counter()
    comps = _components(args.model, args.device, args.dtype)
    device = comps.device
    _sync(device)
    load_s = time.perf_counter() - t0
    sc = load_scenario(None, **overrides)
    system = MegSystem(sc, components=comps, judge=None)
    settings = system.settings
    req = sample_request(np.random.default_rng(0), comps.image_size)
    links = system._links(sc.bandwidth_hz)
    compute = system._compute(False)

    def split(protocol: str, c: Any = comps) -> Any:
        plan = system.plan(protocol, (0, 1) if protocol in MULTI else (0,))
        return lambda: execute(plan, c, req.image, req.prompt, settings=settings, links=links, compute=compute,
                               generator=torch.Generator().manual_seed(req.seed)).output

    mono_s, mono_out = _median_s(_monolithic(comps, settings, req.image, req.prompt, req.seed), args.repeats, device)
    mono_out = mono_out.to("cpu", torch.float32)
    protocols: dict[str, Any] = {}
    for protocol in SINGLE + MULTI:
        wall_s, out = _median_s(split(protocol), args.repeats, device)
        row: dict[str, Any] = {"wall_s": wall_s}
        if protocol in EQUAL_TO_MONOLITHIC:
            out = out.to("cpu", torch.float32)
            row["equals_monolithic"] = bool(torch.equal(out, mono_out))
            row["max_abs_vs_monolithic"] = float((out - mono_out).abs().max())
        protocols[protocol] = row
    vs_cpu = None
    compare = args.compare_cpu or comps.image_size <= 128
    if (device.type, args.dtype) != ("cpu", "fp32") and args.model != "sd15-random" and compare:
        cpu_comps = _components(args.model, "cpu", "fp32")
        ref = split("ciag", cpu_comps)().to(torch.float32)
        vs_cpu = float((split("ciag")().to("cpu", torch.float32) - ref).abs().max())
    calib_sc = load_scenario(None, **{**overrides, "channel": {"kind": "awgn", "snr_db": 10.0}})
    calib_system = MegSystem(calib_sc, components=comps, judge=None)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        table = calibrate(calib_system, Path(tmp) / "point.json", snr_grid_db=[10.0], protocols=["ciag"],
                          requests=args.calib_requests, progress=False)
        _sync(device)
        calib_s = time.perf_counter() - t0
    result = {
        "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
        else platform.processor() or platform.machine(), "dtype": args.dtype, "model": args.model,
        "family": comps.family, "image_size": comps.image_size, "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(), "repeats": args.repeats,
        "load_average_1min": os.getloadavg()[0],  # other processes' load: CPU times stretch with it
        "settings": {"steps": settings.steps, "strength": settings.strength,
                     "guidance_scale": settings.guidance_scale, "ue_steps": settings.ue_steps},
        "load_s": load_s, "monolithic_s": mono_s, "protocols": protocols,
        "split_over_monolithic": protocols["ciag"]["wall_s"] / mono_s,
        "calibration_point_s": calib_s, "calibration_requests": args.calib_requests,
        "calibration_ciag_ssim_10db": table.tables["ciag"]["ssim"]["mean"][0][0][0],
        "vs_cpu_fp32_max_abs": vs_cpu,
        "command": "python benchmarks/gpu_check.py " + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v not in (None, False)),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=out.parent, suffix=".tmp", delete=False) as fh:
        json.dump(result, fh, indent=2)
        fh.write("\n")
    os.replace(fh.name, out)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
