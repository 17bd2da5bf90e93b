"""Live CIAG against diffusers' monolithic img2img, same components, steps and generator.

Usage: python benchmarks/ciag_vs_monolithic.py [--repeats 30] [--model tiny] [--json]

Both are timed in one run, interleaved, on the same request
the ratio of the median wall
times is what README reports (target <= 1.05). The split run includes everything live mode
does per step: stage dispatch, FLOP bookkeeping (cached after the first run), payload
counting and the (perfect) channel.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

import meg_gym  # noqa: F401  (first: it quiets transformers' import-time warnings)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--model", default="tiny")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from diffusers import StableDiffusionImg2ImgPipeline

    from meg_gym.config import load_scenario
    from meg_gym.system import MegSystem
    from meg_gym.workload import sample_request

    torch.set_num_threads(2)
    sc = load_scenario(None, model=args.model, num_es=1, channel={"kind": "perfect"}, es=[{"load": 0.0}])
    system = MegSystem(sc, judge=None)
    comps, s = system.comps, system.settings
    req = sample_request(np.random.default_rng(0), comps.image_size)
    pipe = StableDiffusionImg2ImgPipeline(
        vae=comps.vae, text_encoder=comps.text_encoder, tokenizer=None, unet=comps.unet, scheduler=comps.scheduler,
        safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)

    def mono() -> torch.Tensor:
        with torch.no_grad():
            ids = comps.tokenizer(["", req.prompt])
            emb = comps.text_encoder(ids)[0]
            return pipe(prompt_embeds=emb[1:], negative_prompt_embeds=emb[:1], image=req.image, strength=s.strength,
                        num_inference_steps=s.steps, guidance_scale=s.guidance_scale,
                        generator=torch.Generator().manual_seed(req.seed), output_type="pt").images

    plan = system.plan("ciag", (0,))
    links = system._links(sc.bandwidth_hz)

    def split() -> torch.Tensor:
        # one executor pass: stages on their nodes, payload counting, the channel, the timing model
        return system._run(plan, comps, req.image, req.prompt, req.seed, links, queues=True).output[0]

    assert torch.equal(mono()[0], split())  # also warms both paths up (FLOP counts cached)
    t_mono, t_split = [], []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        mono()
        t_mono.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        split()
        t_split.append(time.perf_counter() - t0)
    m, sp = statistics.median(t_mono), statistics.median(t_split)
    result = {"model": args.model, "steps": s.steps, "strength": s.strength, "repeats": args.repeats,
              "monolithic_median_s": m, "ciag_median_s": sp, "ratio": sp / m}
    if args.json:
        print(json.dumps(result))
    else:
        print(f"monolithic img2img {m * 1e3:.1f} ms, live CIAG {sp * 1e3:.1f} ms (medians of {args.repeats}); "
              f"ratio {sp / m:.3f}")


if __name__ == "__main__":
    main()
