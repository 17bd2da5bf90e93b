"""Quality and latency against SNR for every single-ES protocol, analog against digital transmission.

Usage: python benchmarks/snr_sweep.py [--config case_study] [--snrs -20,-15,...,30] [--requests 50]
       [--json benchmarks/results/snr_sweep.json] [--plot benchmarks/results/snr_sweep.png]

The MEG paper's case study claims that at -20 dB the seed protocols still deliver. Over an AWGN
link at each SNR, a profiled world core (the shipped calibration tables: analog and digital)
serves ``--requests`` requests per protocol, each on an idle ES, and reports the mean quality and
latency. Under analog transmission a low SNR degrades what arrives and costs no time; under
digital transmission (3GPP TR 36.942 rates with coverage repetitions below -10 dB) what
arrives is exact and the SNR costs airtime, more for the protocols that send more bits.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

PROTOCOLS = ["full_ue", "full_es", "uieg", "eiug", "ciag", "esuc"]


def sweep(config: str, mode: str, snrs: list[float], requests: int, seed: int) -> dict:
    from meg_gym.config import load_scenario
    from meg_gym.core import Core

    out: dict = {p: {"quality": [], "latency_s": [], "outage": []} for p in PROTOCOLS}
    for snr in snrs:
        # requests 10^4 s apart on an ES without other users: each meets an idle ES, so the latency is the
        # protocol's own (a minutes-long uplink would otherwise hold the ES for the requests behind it)
        sc = load_scenario(config, backend="profiled", transmission={"mode": mode}, protocols=PROTOCOLS,
                           channel={"kind": "awgn", "snr_db": snr, "snr_range_db": None}, es=[{"load": 0.0}],
                           workload={"arrival_rate_hz": 1e-4})
        core = Core(sc)
        for p in core.placements:
            core.reset(seed)
            res = [core.step(np.array([[p.index]]), np.ones((1, 1))) for _ in range(requests)]
            out[p.protocol]["quality"].append(float(np.mean([r.quality[0, 0] for r in res])))
            out[p.protocol]["latency_s"].append(float(np.mean([r.latency_s[0, 0] for r in res])))
            out[p.protocol]["outage"].append(float(np.mean([r.outage[0, 0] for r in res])))
    return out


def plot(results: dict, snrs: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for col, mode in enumerate(("analog", "digital")):
        for name in PROTOCOLS:
            axes[0, col].plot(snrs, results[mode][name]["quality"], marker="o", ms=3, label=name)
            axes[1, col].semilogy(snrs, results[mode][name]["latency_s"], marker="o", ms=3, label=name)
        axes[0, col].set_title(f"{mode} transmission")
        axes[0, col].set_ylabel("mean quality")
        axes[0, col].set_ylim(0.0, 1.02)
        axes[1, col].set_ylabel("mean latency (s)")
        axes[1, col].set_xlabel("SNR (dB)")
        axes[0, col].grid(alpha=0.3)
        axes[1, col].grid(alpha=0.3, which="both")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".png")
    os.close(fd)
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="case_study")
    ap.add_argument("--snrs", default="-20,-15,-10,-5,0,5,10,15,20,25,30")
    ap.add_argument("--requests", type=int, default=50, help="requests per protocol and SNR")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    ap.add_argument("--plot", default=None)
    args = ap.parse_args()
    snrs = [float(x) for x in args.snrs.split(",")]
    results = {mode: sweep(args.config, mode, snrs, args.requests, args.seed) for mode in ("analog", "digital")}
    for mode, table in results.items():
        print(f"{mode}: at {snrs[0]} dB / {snrs[-1]} dB")
        for name, r in table.items():
            print(f"  {name:8s} quality {r['quality'][0]:.3f} / {r['quality'][-1]:.3f}   "
                  f"latency {r['latency_s'][0]:9.3f} / {r['latency_s'][-1]:.3f} s   outage {r['outage'][0]:.2f}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"command": f"python benchmarks/snr_sweep.py --config {args.config} --snrs {args.snrs} "
                                  f"--requests {args.requests} --seed {args.seed}",
                       "snr_db": snrs, "results": results}, f, indent=1)
        os.replace(tmp, path)
    if args.plot:
        plot(results, snrs, Path(args.plot))


if __name__ == "__main__":
    main()
