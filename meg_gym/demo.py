"""``meg-gym demo``: every protocol live on one request, as a table and a labelled PNG grid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from meg_gym.protocols import PROTOCOLS
from meg_gym.system import Decision, MegSystem, Outcome
from meg_gym.workload import sample_request

__all__ = ["run_demo", "save_grid"]


def _to_pil(image: torch.Tensor, size: int) -> Any:
    from PIL import Image

    arr = (image.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr).resize((size, size), Image.NEAREST)


def save_grid(path: Path, tiles: list[tuple[torch.Tensor, list[str]]], cell: int = 160, columns: int = 5) -> None:
    """Images with caption lines under each, in a grid, as PNG."""
    from PIL import Image, ImageDraw

    text_h = 14 * max(len(lines) for _, lines in tiles) + 6
    rows = (len(tiles) + columns - 1) // columns
    grid = Image.new("RGB", (columns * cell, rows * (cell + text_h)), "white")
    draw = ImageDraw.Draw(grid)
    for i, (img, lines) in enumerate(tiles):
        x, y = (i % columns) * cell, (i // columns) * (cell + text_h)
        grid.paste(_to_pil(img, cell), (x, y))
        for j, line in enumerate(lines):
            draw.text((x + 4, y + cell + 3 + 14 * j), line, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)


def run_demo(scenario: Any, *, prompt: str | None, out_dir: Path, seed: int, rng: np.random.Generator,
             quiet: bool = False) -> list[dict[str, Any]]:
    """Serve one request with every offered protocol; write ``grid.png``; return one record each."""
    system = MegSystem(scenario)
    request = sample_request(rng, system.comps.image_size, prompt=prompt)
    k = system.scenario.num_es
    names = [p for p in system.scenario.protocols if PROTOCOLS[p].min_es <= k]
    outcomes: list[Outcome] = []
    for name in tqdm(names, desc="protocols", disable=quiet, leave=False):
        es_ids = tuple(range(k)) if PROTOCOLS[name].multi_es else (0,)
        outcomes.append(system.serve(request, Decision(name, es_ids)))
    reference = system.reference(request)
    records = [
        {"protocol": o.protocol, "es_ids": list(o.es_ids), "uplink_bits": o.uplink_bits,
         "downlink_bits": o.downlink_bits, "latency_s": o.latency_s, "ssim": o.ssim, "psnr_db": o.psnr_db,
         "fidelity": o.fidelity, "quality": o.quality, "energy_j": o.energy_j}
        for o in outcomes
    ]
    tiles = [(request.image[0], ["input", request.prompt[:22], request.prompt[22:44]]),
             (reference, ["monolithic img2img", "perfect channel", ""])]
    for o in outcomes:
        fid = "-" if o.fidelity is None else f"{o.fidelity:.2f}"
        tiles.append((o.output, [f"{o.protocol}  q={o.quality:.2f}", f"ssim={o.ssim:.2f} fid={fid}",
                                 f"{o.latency_s * 1e3:.0f} ms {o.total_bits / 1e3:.0f} kbit"]))
    out_dir = Path(out_dir)
    save_grid(out_dir / "grid.png", tiles)
    if not quiet:
        sc = system.scenario
        print(f"model {sc.model}, channel {sc.channel.kind} {getattr(sc.channel, 'snr_db', '')} dB, "
              f"{sc.transmission.mode} {sc.transmission.bits_per_value} bit/value, {k} ES(s)")
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
