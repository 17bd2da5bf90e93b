"""One request under every temporal split point and spatial area ratio, at a few SNRs (generation_split, live).

Usage: python benchmarks/generation_split_grid.py [--snrs -10,0,10] [--out benchmarks/results/generation_split_grid.png]
    [--json benchmarks/results/generation_split_grid.json]

Rows: the SNR of both links (AWGN, analog), the last row a perfect channel. Columns: Full UE (k = 0, the
UE-class model tiny_ue alone), tsplit:3/6/9 (the ES's first k of the 12 UNet steps with tiny, the rest on
the UE with tiny_ue), CIAG (k = 12) and the spatial splits ssplit:0.25/0.5/0.75 (the ES generates that
centre share of the image with tiny, the UE outpaints the rest with tiny_ue). Each tile: the delivered
image, its quality and SSIM against the same placement's perfect-channel output, and its prompt fidelity.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from meg_gym.config import load_scenario
from meg_gym.system import Decision, MegSystem
from meg_gym.workload import sample_request

COLUMNS = ("full_ue", "tsplit:3", "tsplit:6", "tsplit:9", "ciag", "ssplit:0.25", "ssplit:0.5", "ssplit:0.75")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snrs", default="-10,0,10")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/results/generation_split_grid.png")
    ap.add_argument("--json")
    args = ap.parse_args()
    from meg_gym.demo import save_grid
    from meg_gym.files import atomic_write

    system = MegSystem(load_scenario("generation_split", backend="live"))
    req = sample_request(np.random.default_rng(args.seed), system.comps.image_size)
    tiles, rows = [], []
    for snr in [float(x) for x in args.snrs.split(",")] + [None]:
        links = None if snr is None else {(0, "ul"): snr, (0, "dl"): snr}
        for protocol in COLUMNS:
            # a perfect channel: the placement's own perfect-channel output (serve's reference)
            o = system.serve(req, Decision(protocol, (0,)), snr_db=links or {(0, "ul"): 60.0, (0, "dl"): 60.0},
                             use_queues=False)
            image = o.reference if snr is None else o.output
            where = "perfect" if snr is None else f"{snr:g} dB"
            tiles.append((image, [f"{protocol} {where}", f"q {o.quality:.2f} fid {o.fidelity:.2f}"]))
            rows.append({"protocol": protocol, "snr_db": snr, "quality": o.quality, "ssim": o.ssim,
                         "fidelity": o.fidelity, "latency_s": o.latency_s, "energy_j": o.energy_j})
    save_grid(Path(args.out), tiles, cell=128, columns=len(COLUMNS))
    if args.json:
        atomic_write(Path(args.json), json.dumps({"prompt": req.prompt, "seed": args.seed, "rows": rows},
                                                 indent=1) + "\n")
    for r in rows:
        print(r)


if __name__ == "__main__":
    main()
