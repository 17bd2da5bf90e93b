"""``meg-gym demo``: every protocol live on one request, as a table and a labelled PNG grid."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from meg_gym.drawing import font, line_height_px, to_pil, wrap
from meg_gym.protocols import PROTOCOLS
from meg_gym.system import Decision, MegSystem, Outcome
from meg_gym.workload import sample_request

__all__ = ["channel_text", "run_demo", "save_grid", "work_flops"]

CAPTION_PX = 11  # caption font size: three short lines under a 160 px tile


def save_grid(path: Path, tiles: list[tuple[Any, list[str]]], cell: int = 160, columns: int = 5) -> None:
    """Images with their captions under each, in a grid, as PNG.

    Each caption string is wrapped at word boundaries to the tile's width (measured in the
    drawing font), and the caption band is as tall as the longest tile's wrapped lines, so
    no caption is cut off or runs into its neighbour. Written to a temporary file, then renamed.
    """
    import os

    from PIL import Image, ImageDraw

    fnt = font(CAPTION_PX)
    pad = 4
    wrapped = [[ln for caption in lines for ln in wrap(caption, fnt, cell - 2 * pad)] for _, lines in tiles]
    line_h = line_height_px(fnt)
    text_h = line_h * max(len(w) for w in wrapped) + 2 * pad
    rows = (len(tiles) + columns - 1) // columns
    grid = Image.new("RGB", (columns * cell, rows * (cell + text_h)), "white")
    draw = ImageDraw.Draw(grid)
    for i, ((img, _), lines) in enumerate(zip(tiles, wrapped)):
        x, y = (i % columns) * cell, (i // columns) * (cell + text_h)
        grid.paste(to_pil(img, cell), (x, y))
        for j, line in enumerate(lines):
            draw.text((x + pad, y + cell + pad + line_h * j), line, fill="black", font=fnt)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    grid.save(tmp, format="PNG")
    os.replace(tmp, path)


def channel_text(scenario: Any) -> str:
    """The scenario's channel in words, as the demo's header prints it."""
    ch = scenario.channel
    if ch.kind == "perfect":  # noiseless; the nominal SNR only sets the link rate (channel.models.PerfectChannel)
        return f"perfect (noiseless links; the nominal {ch.snr_db:g} dB sets only the data rate)"
    if ch.kind == "awgn":
        if ch.snr_range_db is not None:
            low, high = ch.snr_range_db
            return f"awgn, SNR drawn per request in [{low:g}, {high:g}] dB"
        return f"awgn {ch.snr_db:g} dB"
    extras = ", ".join(f"{k} {v}" for k, v in ch.params().items() if k in ("fading", "shadowing"))
    return f"{ch.kind} (3GPP TR 38.901 link budget, {ch.carrier_hz / 1e9:g} GHz{', ' + extras if extras else ''})"


def _bits_text(bits: int) -> str:
    """Bits for a caption: kbit below 10 Mbit, Mbit with one decimal above (SD-scale images are ~25 Mbit)."""
    return f"{bits / 1e3:.0f} kbit" if bits < 1e7 else f"{bits / 1e6:.1f} Mbit"


def _es_ids(name: str, num_es: int) -> tuple[int, ...]:
    return tuple(range(num_es)) if PROTOCOLS[name].multi_es else (0,)


def work_flops(system: MegSystem, names: list[str]) -> tuple[dict[str, float], float]:
    """FLOPs that serving each protocol runs live, and one monolithic generation's (the reference).

    Counted on the running model itself (not a ``cost_model`` stand-in); a protocol's twice over
    a noisy channel, where ``serve`` also runs the plan's noiseless reference. The demo's time
    estimate and its progress bar weigh the protocols by these.
    """
    from meg_gym.config import load_scenario

    own = system if not system.scenario.cost_model else MegSystem(
        load_scenario(system.scenario, cost_model=None), components=system.comps, judge=None)

    def flops(name: str) -> float:
        return float(sum(c.flops for c in own.costs(name, _es_ids(name, system.scenario.num_es)) if c.kind == "run"))

    runs = 1 if system.channel.noiseless else 2
    return {n: runs * flops(n) for n in names}, flops("full_es")


def run_demo(scenario: Any, *, prompt: str | None, out_dir: Path, seed: int, rng: np.random.Generator,
             quiet: bool = False) -> list[dict[str, Any]]:
    """Serve one request with every offered protocol; write ``grid.png``; return one record each.

    Unless ``quiet``: the estimated wall time (a timed generation scaled by each protocol's FLOPs,
    :func:`work_flops`), a progress bar over the protocols weighed the same way, the measured
    time (these on stderr), then the table.
    """
    started = time.perf_counter()
    system = MegSystem(scenario)
    sc = system.scenario
    k = sc.num_es
    names = [p for p in sc.protocols if PROTOCOLS[p].min_es <= k]
    if not quiet:
        print(f"loading model {sc.model} ...", file=sys.stderr, flush=True)
    request = sample_request(rng, system.comps.image_size, prompt=prompt)
    # the first generation also counts each stage's FLOPs (FlopCounterMode, once per stage shape) and runs
    # several times slower; a second, timed one gives the seconds per FLOP that the estimate scales
    reference = system.reference(request)
    work = {n: 1.0 for n in names}
    if not quiet:
        work, reference_flops = work_flops(system, names)
        t = time.perf_counter()
        system.reference(request)
        s_per_flop = (time.perf_counter() - t) / reference_flops
        print(f"serving {len(names)} protocols live: about {s_per_flop * sum(work.values()):.0f} s (one "
              f"generation took {s_per_flop * reference_flops:.1f} s; each protocol scaled by its FLOPs)",
              file=sys.stderr, flush=True)
    outcomes: list[Outcome] = []
    t1 = time.perf_counter()
    # the bar advances by each protocol's FLOPs, so its remaining time is weighed by the work left
    bar = tqdm(total=sum(work.values()), desc="protocols", disable=quiet, leave=False, file=sys.stderr,
               bar_format="{desc} {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]")
    for i, name in enumerate(names):
        bar.set_description_str(f"protocol {i + 1}/{len(names)} {name:<6}")
        outcomes.append(system.serve(request, Decision(name, _es_ids(name, k))))
        bar.update(work[name])
    bar.close()
    serve_s = time.perf_counter() - t1
    records = [
        {"protocol": o.protocol, "es_ids": list(o.es_ids), "uplink_bits": o.uplink_bits,
         "downlink_bits": o.downlink_bits, "latency_s": o.latency_s, "ssim": o.ssim, "psnr_db": o.psnr_db,
         "fidelity": o.fidelity, "quality": o.quality, "energy_j": o.energy_j}
        for o in outcomes
    ]
    tiles = [(request.image[0], ["input", request.prompt]), (reference, ["monolithic img2img", "perfect channel"])]
    for o in outcomes:
        fid = "-" if o.fidelity is None else f"{o.fidelity:.2f}"
        tiles.append((o.output, [f"{o.protocol}  q = {o.quality:.2f}", f"SSIM {o.ssim:.2f}, fidelity {fid}",
                                 f"{o.latency_s * 1e3:.0f} ms, {_bits_text(o.total_bits)}"]))
    out_dir = Path(out_dir)
    save_grid(out_dir / "grid.png", tiles)
    if not quiet:
        scale = f"latency and bits at {sc.cost_model} scale" if sc.cost_model else "latency and bits of the model"
        print(f"served in {serve_s:.0f} s ({time.perf_counter() - started:.0f} s with loading the model and the "
              f"reference generations)", file=sys.stderr)
        print(f"model {sc.model} ({scale}), channel {channel_text(sc)}, "
              f"{sc.transmission.mode} {sc.transmission.bits_per_value} bit/value, {k} ES{'s' if k > 1 else ''}")
        print(f"prompt: {request.prompt}")
        print(f"{'protocol':<9} {'uplink':>11} {'downlink':>11} {'latency ms':>11} {'SSIM':>6} {'PSNR dB':>8} "
              f"{'fidelity':>9} {'energy J':>9}")
        for r in records:
            fid = "-" if r["fidelity"] is None else f"{r['fidelity']:.2f}"
            print(f"{r['protocol']:<9} {r['uplink_bits']:>11,} {r['downlink_bits']:>11,} "
                  f"{r['latency_s'] * 1e3:>11.1f} {r['ssim']:>6.3f} {r['psnr_db']:>8.1f} {fid:>9} "
                  f"{r['energy_j']:>9.3f}")
        print(f"grid: {out_dir / 'grid.png'}")
    return records
