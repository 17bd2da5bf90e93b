"""``render_mode="rgb_array"``: the topology with link qualities and queues (and, live, the image)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["render_topology"]

W, H = 480, 320


def _snr_colour(snr_db: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, (snr_db + 10.0) / 40.0))  # -10 dB red .. 30 dB green
    return int(255 * (1 - t)), int(200 * t), 40


def render_topology(env: Any) -> np.ndarray:
    """UE and ESs on a map; links coloured by SNR; ES queue backlogs as bars; last outcome."""
    from PIL import Image, ImageDraw

    sc = env.scenario
    world = env.world
    img = Image.new("RGB", (W, H), (245, 245, 245))
    draw = ImageDraw.Draw(img)
    n = sc.num_es
    es_xy = [(60 + i * (300 // max(1, n - 1 if n > 1 else 1)), 60) for i in range(n)] if n > 1 else [(180, 60)]
    ue_xy = (180, 230)
    last = env._last  # (decision, CoreStep) of the last step
    used = set(last[0].es_ids) if last is not None else set()
    snr_ul, _ = env.link_snrs_db()
    backlogs = world.backlog_s()[0]
    for i, (x, y) in enumerate(es_xy):
        snr = snr_ul[i]
        draw.line([ue_xy, (x, y)], fill=_snr_colour(snr), width=5 if i in used else 2)
        draw.rectangle([x - 18, y - 14, x + 18, y + 14], fill=(60, 90, 160) if i in used else (120, 130, 150))
        draw.text((x - 10, y - 6), f"ES{i}", fill="white")
        backlog = backlogs[i]
        bar = min(60, int(60 * backlog / max(1e-9, world.workload.latency_scale_s)))
        draw.rectangle([x + 22, y + 14 - bar, x + 30, y + 14], fill=(200, 80, 60))
        draw.text((x - 26, y + 18), f"{snr:.0f} dB", fill="black")
    draw.ellipse([ue_xy[0] - 12, ue_xy[1] - 12, ue_xy[0] + 12, ue_xy[1] + 12], fill=(40, 140, 60))
    draw.text((ue_xy[0] - 8, ue_xy[1] - 6), "UE", fill="white")
    if last is not None:
        decision, res = last
        bits = int(res.uplink_bits[0, 0] + res.downlink_bits[0, 0])
        lines = [f"{decision.protocol} on ES {list(decision.es_ids)}",
                 f"quality {res.quality[0, 0]:.2f}  latency {res.latency_s[0, 0] * 1e3:.0f} ms",
                 f"bits {bits / 1e3:.0f} k  reward {res.reward[0, 0]:.2f}"]
        for j, line in enumerate(lines):
            draw.text((10, 270 + 14 * j), line, fill="black")
        out = res.outcomes[0].output if res.outcomes else None
        if out is not None:
            arr = (out.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
            img.paste(Image.fromarray(arr).resize((128, 128), Image.NEAREST), (340, 180))
    draw.text((10, 8), f"t = {world.now_s[0]:.1f} s   request {world.served[0]}", fill="black")
    return np.asarray(img, dtype=np.uint8)
