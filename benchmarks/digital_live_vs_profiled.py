"""Digital mode, live against profiled: the same requests, links and HARQ draws through both backends.

Usage: python benchmarks/digital_live_vs_profiled.py [--snrs -20,-10,0,10,20] [--requests 4]
       [--channel awgn|umi] [--json benchmarks/results/digital_live_vs_profiled.json]

For every SNR (awgn: the link's SNR; umi / uma: the channel's own path loss and fading, the
SNR list ignored) a live and a profiled world core are built from one scenario
(``configs/scenarios/digital.yaml`` at that SNR) and stepped with the same seed and the same
actions (each protocol in turn), so both see the same requests, SNRs, fading blocks and HARQ uniforms. The link outcome
(latency, retransmissions, outage) must agree exactly; the quality differs only by the
calibration table's spread (profiled draws around the measured mean, live measures the
request). Prints per SNR the mean absolute quality error and the outage share.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np

import meg_gym  # noqa: F401  (first: it quiets transformers' import-time warnings)


def run(snr_db: float | None, requests: int, channel: str, seed: int) -> dict:
    from meg_gym.config import load_scenario
    from meg_gym.core import Core

    over = {"channel": {"kind": "awgn", "snr_db": snr_db}} if channel == "awgn" else {"channel": {"kind": channel}}
    sc = {b: load_scenario("digital", backend=b, **over) for b in ("live", "profiled")}
    cores = {b: Core(s) for b, s in sc.items()}
    for c in cores.values():
        c.reset(seed)
    n = len(cores["live"].placements)
    rows = []
    for t in range(requests * n):
        action = np.array([[t % n]])
        res = {b: c.step(action, np.ones((1, 1))) for b, c in cores.items()}
        live, prof = res["live"], res["profiled"]
        p = cores["live"].placements[t % n]
        rows.append({"protocol": p.protocol, "live_quality": float(live.quality[0, 0]),
                     "profiled_quality": float(prof.quality[0, 0]),
                     "same_link": bool(live.latency_s[0, 0] == prof.latency_s[0, 0]
                                       and live.retransmissions[0, 0] == prof.retransmissions[0, 0]
                                       and live.outage[0, 0] == prof.outage[0, 0]),
                     "outage": bool(live.outage[0, 0]), "latency_s": float(live.latency_s[0, 0])})
    err = float(np.mean([abs(r["live_quality"] - r["profiled_quality"]) for r in rows]))
    return {"snr_db": snr_db, "channel": channel, "requests": len(rows), "quality_mae": err,
            "same_link_outcome": all(r["same_link"] for r in rows),
            "outage_share": float(np.mean([r["outage"] for r in rows])), "rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snrs", default="-20,-10,0,10,20")
    ap.add_argument("--requests", type=int, default=4, help="requests per protocol and SNR")
    ap.add_argument("--channel", default="awgn", choices=["awgn", "umi", "uma"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="write the results here (atomically)")
    args = ap.parse_args()
    snrs = [float(x) for x in args.snrs.split(",")] if args.channel == "awgn" else [None]
    results = []
    for snr in snrs:
        r = run(snr, args.requests, args.channel, args.seed)
        print(f"{args.channel} {snr} dB: quality MAE {r['quality_mae']:.4f} over {r['requests']} requests, "
              f"outage {r['outage_share']:.2f}, same link outcome: {r['same_link_outcome']}", flush=True)
        results.append(r)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump({"command": "python benchmarks/digital_live_vs_profiled.py " + " ".join(
                f"--{k} {v}" for k, v in vars(args).items() if v is not None and k != "json"), "results": results},
                f, indent=1)
        os.replace(tmp, path)


if __name__ == "__main__":
    main()
