"""Multi-ES protocols as the MEG paper means them, measured live on the shipped tiny model.

Usage: python benchmarks/multi_es_quality.py tiles [--requests 20] [--es 2,3] [--variants 2:0,2:1] [--json FILE]
       python benchmarks/multi_es_quality.py selection [--requests 30] [--es 3] [--json FILE]
       python benchmarks/multi_es_quality.py models [--requests 12] [--sets same,guidance,models] [--json FILE]

``tiles``: cooperative tiles against one image. UIDCG's prompt fidelity and SSIM beside CIAG's under a
perfect channel, with and without border exchange, for several halos (``generation.tile_overlap``),
exchange periods (``generation.exchange_every``) and what is exchanged (``generation.exchange``: a
variant ``2:1:activations`` exchanges activations at every layer), and what the exchange costs on the
backhaul.
Every variant serves the same requests (the same seeds), each ES idle; fidelity is the shipped
attribute classifier's, SSIM is against CIAG's output of the same request. Backhaul bits are the
exchange's, counted from the tensors; backhaul seconds at the scenario's default backhaul
(``meg_gym.config.BackhaulConfig``) with the tiny model's own sizes.

``selection``: the user's pick among parallel candidates, with and without the scoring classifier.
UIDG serves each request on ``--es`` ESs over a perfect channel (the same model on each ES: the
candidates differ in their noise draws); every user model of ``meg_gym.quality.user`` then picks
among the same candidates. Reported: how often the glance user's pick is one the scoring classifier
rates best, the prompt fidelity (scored by the classifier) of the candidate each user keeps (the
oracle's bias), and, on clean rendered scenes, how often each judge reads each attribute right.

``models``: parallel candidates from distinct model variants (``es[i].model``, ``guidance_scale``,
``seed_offset``). UIDG serves each request on 3 ESs over a perfect channel, once per set of ES variants
(:data:`ES_SETS`: the same model on every ES, or ESs that differ in their noise, guidance scale or
model), and the glance user (``workload.selection: glance``) keeps one candidate. Reported per set: the
prompt fidelity (scored by the classifier) of the kept candidate, of the best and the mean candidate, the
SSIM between candidates (how alike they are), how often the glance pick is one the classifier rates
best, and the ESs' FLOPs per request (counted on the model each ES runs).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import meg_gym  # noqa: F401  (first: it quiets transformers' import-time warnings)

# halo:exchange period (0: the strips denoised alone and cross-faded), the tiles part's default
VARIANTS = "2:0,0:1,2:1,2:2,4:1"


def tiles(args: argparse.Namespace) -> dict:
    from meg_gym.quality.metrics import ssim
    from meg_gym.system import Decision, MegSystem
    from meg_gym.workload import sample_request

    rng = np.random.default_rng(0)
    requests = [sample_request(rng) for _ in range(args.requests)]
    base = {"channel": {"kind": "perfect"}, "es": [{"load": 0.0}]}
    ciag_sys = MegSystem({**base, "num_es": 1, "protocols": ["ciag"]})
    ciag = [ciag_sys.serve(r, Decision("ciag", (0,)), use_queues=False) for r in requests]
    rows = [{"protocol": "ciag", "es": 1, "halo": None, "exchange_every": None,
             "fidelity": statistics.fmean(o.fidelity for o in ciag), "ssim_vs_ciag": 1.0,
             "backhaul_bits": 0, "backhaul_s": 0.0, "downlink_bits": ciag[0].downlink_bits}]
    for k in (int(x) for x in args.es.split(",")):
        for variant in args.variants.split(","):
            halo, every, exchange = _tiles_variant(variant)
            system = MegSystem({**base, "num_es": k, "generation": {"tile_overlap": halo, "exchange_every": every,
                                                                    "exchange": exchange}}, judge=ciag_sys.judge)
            outs = [system.serve(r, Decision("uidcg", tuple(range(k))), use_queues=False) for r in requests]
            rows.append({"protocol": "uidcg", "es": k, "halo": halo, "exchange_every": every, "exchange": exchange,
                         "fidelity": statistics.fmean(o.fidelity for o in outs),
                         "ssim_vs_ciag": statistics.fmean(float(ssim(o.output, c.output)) for o, c in zip(outs, ciag)),
                         "backhaul_bits": outs[0].backhaul_bits, "backhaul_s": outs[0].latency_breakdown["backhaul_s"],
                         "downlink_bits": outs[0].downlink_bits,
                         "es_flops": [c.flops for c in outs[0].trace if c.name == "denoise_tiles"],
                         "exchanges": max((c.exchanges for c in system.costs("uidcg", tuple(range(k)))), default=0)})
            print(json.dumps(rows[-1]), flush=True)
    return {"requests": args.requests, "rows": rows,
            "command": f"python benchmarks/multi_es_quality.py tiles --requests {args.requests} --es {args.es} "
                       f"--variants {args.variants}"
            + (f" --json {args.json}" if args.json else "")}


def _tiles_variant(text: str) -> tuple[int, int, str]:
    """``halo:exchange_every[:exchange]`` (exchange: latent, the default, or activations)."""
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[:2]):
        raise SystemExit(f"'--variants' entries must be halo:exchange_every[:latent|activations] (got {text!r})")
    return int(parts[0]), int(parts[1]), parts[2] if len(parts) == 3 else "latent"


def selection(args: argparse.Namespace) -> dict:
    from meg_gym.ldm.data import ATTRIBUTES, render, sample_scenes
    from meg_gym.quality.user import SELECTIONS, make_user
    from meg_gym.system import Decision, MegSystem
    from meg_gym.workload import sample_request

    system = MegSystem({"num_es": args.es, "channel": {"kind": "perfect"}, "es": [{"load": 0.0}],
                        "workload": {"selection": "first"}})
    scorer = system.judge
    users = {s: make_user(s, scorer) for s in SELECTIONS}
    rng = np.random.default_rng(0)
    kept = {s: [] for s in SELECTIONS}
    agree = []
    for _ in range(args.requests):
        req = sample_request(rng)
        out = system.serve(req, Decision("uidg", tuple(range(args.es))), use_queues=False)
        cands = [c[0].float() for c in out.candidates]
        fid = [scorer.score(c, req.prompt) for c in cands]
        for s, user in users.items():
            kept[s].append(fid[user(cands, req.prompt)])
        agree.append(fid[users["glance"](cands, req.prompt)] == max(fid))
    scenes = sample_scenes(np.random.default_rng(5), 400)
    images = render(scenes)
    import torch

    pred = scorer.classifier.predict(torch.from_numpy(images))
    glance = [users["glance"].attributes(x) for x in images]
    accuracy = {name: {"scorer": float(np.mean([p[name] == getattr(sc, name) for p, sc in zip(pred, scenes)])),
                       "glance": float(np.mean([g.get(name) == getattr(sc, name) for g, sc in zip(glance, scenes)]))
                       if name != "shape" else None}
                for name in ATTRIBUTES}
    return {
        "requests": args.requests, "es": args.es,
        "glance_pick_rated_best_by_scorer": float(np.mean(agree)),
        "kept_fidelity": {s: statistics.fmean(v) for s, v in kept.items()},
        "attribute_accuracy_on_rendered_scenes": accuracy,
        "command": f"python benchmarks/multi_es_quality.py selection --requests {args.requests} --es {args.es}"
                   + (f" --json {args.json}" if args.json else ""),
    }


#: the models part's sets of ES variants (3 ESs each): the scenario's ``es`` entries
ES_SETS = {
    "same": [{}, {}, {}],  # the shipped behaviour: one model, the candidates differ in their noise draws alone
    "seeds": [{"seed_offset": 0}, {"seed_offset": 1}, {"seed_offset": 2}],
    "guidance": [{"guidance_scale": 2.0}, {"guidance_scale": 4.0}, {"guidance_scale": 7.0}],
    "models": [{}, {}, {"model": "tiny_ue"}],
    "mixed": [{"guidance_scale": 2.5}, {"guidance_scale": 7.0}, {"model": "tiny_ue"}],
}


def models(args: argparse.Namespace) -> dict:
    from meg_gym.quality.metrics import ssim
    from meg_gym.system import Decision, MegSystem
    from meg_gym.workload import sample_request

    rng = np.random.default_rng(0)
    requests = [sample_request(rng) for _ in range(args.requests)]
    judge = None
    rows = []
    for name in args.sets.split(","):
        es = [{**e, "load": 0.0} for e in ES_SETS[name]]
        system = MegSystem({"num_es": len(es), "channel": {"kind": "perfect"}, "es": es, "protocols": ["uidg"],
                            "workload": {"selection": "glance"}}, **({} if judge is None else {"judge": judge}))
        judge = system.judge
        kept, best, mean, alike, agree = [], [], [], [], []
        flops = 0
        for req in requests:
            out = system.serve(req, Decision("uidg", tuple(range(len(es)))), use_queues=False)
            cands = [c[0].float() for c in out.candidates]
            fid = [judge.score(c, req.prompt) for c in cands]
            kept.append(out.fidelity)
            best.append(max(fid))
            mean.append(statistics.fmean(fid))
            agree.append(fid[out.selected_index] == max(fid))
            alike.append(statistics.fmean(float(ssim(a, b)) for i, a in enumerate(cands) for b in cands[i + 1:]))
            flops = sum(c.flops for c in system.costs("uidg", tuple(range(len(es)))) if c.node != "ue")
        rows.append({"set": name, "es": ES_SETS[name], "kept_fidelity": statistics.fmean(kept),
                     "best_candidate_fidelity": statistics.fmean(best),
                     "mean_candidate_fidelity": statistics.fmean(mean),
                     "glance_pick_rated_best": float(np.mean(agree)),
                     "ssim_between_candidates": statistics.fmean(alike), "es_flops_per_request": flops})
        print(json.dumps(rows[-1]), flush=True)
    return {"requests": args.requests, "rows": rows,
            "command": f"python benchmarks/multi_es_quality.py models --requests {args.requests} --sets {args.sets}"
            + (f" --json {args.json}" if args.json else "")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("tiles", "selection", "models"))
    ap.add_argument("--requests", type=int, default=None, help="requests (default: tiles 20, selection 30, "
                                                                 "models 12)")
    ap.add_argument("--sets", default=",".join(ES_SETS), help="models: sets of ES variants (default %(default)s)")
    ap.add_argument("--es", default=None, help="ESs (tiles: counts, comma-separated, default 2,3; selection: 3)")
    ap.add_argument("--variants", default=VARIANTS, help="tiles: halo:exchange_every pairs (default %(default)s)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here (atomically)")
    args = ap.parse_args()
    tiles_part = args.part == "tiles"
    bad = [s for s in args.sets.split(",") if s not in ES_SETS]
    if bad:
        ap.error(f"'--sets' must name sets of {list(ES_SETS)} (got {bad})")
    args.requests = args.requests or {"tiles": 20, "selection": 30, "models": 12}[args.part]
    args.es = args.es or ("2,3" if tiles_part else "3")
    if not tiles_part:
        args.es = int(args.es)
    from meg_gym.files import atomic_write

    t0 = time.time()
    result = {"tiles": tiles, "selection": selection, "models": models}[args.part](args)
    result["seconds"] = round(time.time() - t0, 1)
    text = json.dumps(result, indent=1)
    if args.json:
        atomic_write(args.json, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
