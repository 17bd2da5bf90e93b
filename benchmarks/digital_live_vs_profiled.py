"""Digital mode, live against profiled: the same requests, links and HARQ draws through both backends.

Usage: python benchmarks/digital_live_vs_profiled.py [--snrs=-20,-10,0,10,20] [--requests 4]
       [--channel awgn|umi] [--json benchmarks/results/digital_live_vs_profiled.json]

For every SNR (awgn: the link's SNR; umi / uma: the channel's own path loss and fading, the
SNR list ignored) a live and a profiled world core are built from one scenario
(``configs/scenarios/digital.yaml`` at that SNR) and stepped with the same seed and the same
actions (each protocol in turn), so both see the same requests, SNRs, fading blocks and HARQ
uniforms. The HARQ outcome (retransmissions, outage) should agree exactly. The latency agrees to
a small relative error only: live mode sends each request's own prompt (UTF-8, its length
varies) and counts the text encoder's FLOPs for it, profiled mode the mean prompt of the cost
table, so a send can differ by a few bytes. The quality differs by the calibration table's
spread (profiled draws around the measured mean, live measures the request). Prints per SNR the
mean absolute quality error, the share of requests with the same HARQ outcome, the largest
relative latency difference and the outage share.
"""

from __future__ import annotations

import argparse
import json
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
                     "same_harq": bool(live.retransmissions[0, 0] == prof.retransmissions[0, 0]
                                       and live.outage[0, 0] == prof.outage[0, 0]),
                     "latency_rel_diff": float(abs(live.latency_s[0, 0] - prof.latency_s[0, 0])
                                               / max(prof.latency_s[0, 0], 1e-12)),
                     "retransmissions": int(live.retransmissions[0, 0]),
                     "outage": bool(live.outage[0, 0]), "latency_s": float(live.latency_s[0, 0])})
    err = float(np.mean([abs(r["live_quality"] - r["profiled_quality"]) for r in rows]))
    return {"snr_db": snr_db, "channel": channel, "requests": len(rows), "quality_mae": err,
            "same_harq_share": float(np.mean([r["same_harq"] for r in rows])),
            "max_latency_rel_diff": max(r["latency_rel_diff"] for r in rows),
            "mean_retransmissions": float(np.mean([r["retransmissions"] for r in rows])),
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
              f"outage {r['outage_share']:.2f}, same HARQ outcome {r['same_harq_share']:.0%}, "
              f"latency within {r['max_latency_rel_diff']:.2%}", flush=True)
        results.append(r)
    if args.json:
        from meg_gym.files import atomic_write

        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, json.dumps({"command": "python benchmarks/digital_live_vs_profiled.py " + " ".join(
            f"--{k}={v}" for k, v in vars(args).items() if v is not None and k != "json"), "results": results},
            indent=1))


if __name__ == "__main__":
    main()
