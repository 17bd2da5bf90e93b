"""``render_mode="rgb_array"``: the topology with link qualities and queues, a legend (and, live, the image).

The frame is laid out in fixed regions so that nothing is drawn outside it or over a label:
the header on top; the map on the left (ESs in a row with their uplink SNR above each box and
their queue backlog as a bar beside it, the UE below, links meeting the boxes from below);
the legend in the right column, and under it the last generated image in live mode; the last
request's outcome in the bottom left. Every text's box is recorded (:func:`frame`), and the
tests check they all lie inside the frame and none overlaps another.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meg_gym.drawing import font, line_height_px, to_pil, wrap

__all__ = ["frame", "frame_multi", "render_multi", "render_topology"]

W, H = 480, 320
MAP_RIGHT = 320  # the map's right edge; the legend and the image sit right of it
LEGEND_X = 330
IMAGE_XY, IMAGE_PX = (342, 184), 128  # live mode's last output, bottom right
SNR_LOW_DB, SNR_HIGH_DB = -10.0, 30.0  # the colour scale's ends: red .. green
BOX_W, BOX_H, BAR_W = 36, 26, 6
BACKGROUND = (245, 245, 245)
USED, IDLE, QUEUE, UE = (60, 90, 160), (120, 130, 150), (200, 80, 60), (40, 140, 60)


def _snr_colour(snr_db: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, (snr_db - SNR_LOW_DB) / (SNR_HIGH_DB - SNR_LOW_DB)))  # a colour scale: ends saturate
    return int(255 * (1 - t)), int(200 * t), 40


class _Canvas:
    """A PIL drawing that records the box of every text it draws (for the layout tests)."""

    def __init__(self, size: tuple[int, int] = (W, H)) -> None:
        from PIL import Image, ImageDraw

        self.img = Image.new("RGB", size, BACKGROUND)
        self.draw = ImageDraw.Draw(self.img)
        self.text_boxes: list[tuple[str, tuple[int, int, int, int]]] = []

    def text(self, xy: tuple[float, float], s: str, size_px: int = 11, fill: Any = "black",
             anchor: str = "la") -> tuple[int, int, int, int]:
        fnt = font(size_px)
        box = tuple(int(v) for v in self.draw.textbbox(xy, s, font=fnt, anchor=anchor))
        self.draw.text(xy, s, font=fnt, fill=fill, anchor=anchor)
        self.text_boxes.append((s, box))  # type: ignore[arg-type]
        return box  # type: ignore[return-value]


def _legend(c: _Canvas, x: int, queue_scale_s: float, max_y: int, single: bool = True) -> None:
    """Colour scale, link widths, ES box colours, the queue bar and the UE, in a column from ``x`` to the
    right edge. ``single``: the single-UE frame's items (the last request's link and ESs); else the multi-UE
    frame's (every link of the last step)."""
    y, size = 8, 10
    width = c.img.width - 6 - x
    line_h = line_height_px(font(size))
    c.text((x, y), "legend", size_px=size, fill=(80, 80, 80))
    y += line_h + 2
    for i in range(100):  # the SNR colour scale
        snr = SNR_LOW_DB + (SNR_HIGH_DB - SNR_LOW_DB) * i / 99
        c.draw.line([(x + i, y), (x + i, y + 6)], fill=_snr_colour(snr))
    y += 8
    c.text((x, y), f"{SNR_LOW_DB:g}", size_px=size)
    c.text((x + 100, y), f"{SNR_HIGH_DB:g} dB", size_px=size, anchor="ra")
    y += line_h
    c.text((x, y), "link colour: uplink SNR", size_px=size)
    y += line_h + 4
    text_x = x + 22

    def item(label: str, sample: Any) -> None:
        nonlocal y
        sample(y + line_h // 2)
        for ln in wrap(label, font(size), width - 22):
            c.text((text_x, y), ln, size_px=size)
            y += line_h
        y += 2

    def line(w: int) -> Any:
        return lambda cy: c.draw.line([(x, cy), (x + 16, cy)], fill=(90, 90, 90), width=w)

    if single:
        item("link of the last request", line(5))
        item("other link", line(2))
        item("ES that served it / idle", lambda cy: (c.draw.rectangle([x, cy - 5, x + 7, cy + 5], fill=USED),
                                                      c.draw.rectangle([x + 9, cy - 5, x + 16, cy + 5], fill=IDLE)))
    else:
        item("a link used in the last step", line(2))
        item("ES", lambda cy: c.draw.rectangle([x + 2, cy - 5, x + 14, cy + 5], fill=USED))
    item(f"ES queue backlog (full bar: {queue_scale_s:g} s or more)",
         lambda cy: c.draw.rectangle([x + 5, cy - 6, x + 5 + BAR_W, cy + 6], fill=QUEUE))
    item("UE (the phone)" if single else "UE (one agent)",
         lambda cy: c.draw.ellipse([x + 3, cy - 5, x + 13, cy + 5], fill=UE))
    assert y <= max_y, f"legend runs to y={y}, past {max_y}"  # a layout bug, not an input error


def _queue_bar(c: _Canvas, bx: int, top: int, bottom: int, backlog_s: float, scale_s: float) -> None:
    """An ES's backlog beside its box: full at ``scale_s`` (a longer backlog shows full; the legend says so)."""
    bar = int(round((bottom - top) * min(1.0, backlog_s / max(1e-9, scale_s))))
    c.draw.rectangle([bx, top, bx + BAR_W, bottom], outline=(200, 200, 200))
    if bar > 0:
        c.draw.rectangle([bx, bottom - bar, bx + BAR_W, bottom], fill=QUEUE)


def frame(env: Any) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int, int]]]]:
    """The ``rgb_array`` frame and the (text, box) of every label drawn on it."""
    sc = env.scenario
    world = env.world
    c = _Canvas()
    draw = c.draw
    n = sc.num_es
    slot = (MAP_RIGHT - 8) / n  # each ES's column: its box, its queue bar and a gap
    box_w = int(min(BOX_W, slot - BAR_W - 9))
    label_px = 11 if box_w >= 30 else 9  # many ESs: narrower boxes, smaller labels
    es_y = 78  # box centre: the header and the SNR labels above it
    es_x = [int(8 + slot * (i + 0.5) - (BAR_W + 3) / 2) for i in range(n)]
    ue_xy = (int(round(sum(es_x) / n)), 214)  # under the row's middle (one ES: straight below it)
    last = env._last  # (decision, CoreStep) of the last step
    used = set(last[0].es_ids) if last is not None else set()
    snr_ul, _ = env.link_snrs_db()
    backlogs = world.backlog_s()[0]
    scale_s = world.workload.latency_scale_s
    for i, x in enumerate(es_x):  # links first: boxes and labels are drawn over their ends
        draw.line([ue_xy, (x, es_y + BOX_H // 2)], fill=_snr_colour(snr_ul[i]), width=5 if i in used else 2)
    for i, x in enumerate(es_x):
        top, bottom = es_y - BOX_H // 2, es_y + BOX_H // 2
        draw.rectangle([x - box_w // 2, top, x + box_w // 2, bottom], fill=USED if i in used else IDLE)
        c.text((x, es_y), f"ES{i}", size_px=label_px, fill="white", anchor="mm")
        c.text((x, top - 3), f"{snr_ul[i]:.0f} dB", size_px=label_px - 1, anchor="md")
        _queue_bar(c, x + box_w // 2 + 3, top, bottom, float(backlogs[i]), scale_s)
    draw.ellipse([ue_xy[0] - 12, ue_xy[1] - 12, ue_xy[0] + 12, ue_xy[1] + 12], fill=UE)
    c.text(ue_xy, "UE", fill="white", anchor="mm")
    c.text((8, 6), f"t = {world.now_s[0]:.1f} s   request {world.served[0]}")
    if last is not None:
        decision, res = last
        bits = int(res.uplink_bits[0, 0] + res.downlink_bits[0, 0])
        lines = [f"{decision.protocol} on ES {', '.join(str(i) for i in decision.es_ids)}",
                 f"quality {res.quality[0, 0]:.2f}, latency {res.latency_s[0, 0] * 1e3:.0f} ms",
                 f"{bits / 1e3:.0f} kbit, reward {res.reward[0, 0]:.2f}"]
        line_h = line_height_px(font(11))
        for j, line in enumerate(lines):
            c.text((8, H - 6 - line_h * (len(lines) - j)), line)
        out = res.outcomes[0].output if res.outcomes else None
        if out is not None:
            c.img.paste(to_pil(out, IMAGE_PX), IMAGE_XY)
    _legend(c, LEGEND_X, scale_s, IMAGE_XY[1] - 4)
    return np.asarray(c.img, dtype=np.uint8), c.text_boxes


def render_topology(env: Any) -> np.ndarray:
    """UE and ESs on a map; links coloured by SNR; ES queue backlogs as bars; a legend; the last outcome."""
    return frame(env)[0]


MULTI_W, MULTI_H, MULTI_MAP_RIGHT = 640, 360, 500


def frame_multi(env: Any) -> tuple[np.ndarray, list[tuple[str, tuple[int, int, int, int]]]]:
    """The PettingZoo envs' frame (multi_ue, es_coordination) and its labels' boxes: ESs along the top with
    their queue bars, the UEs below, the last step's links coloured by each UE's uplink SNR, a legend."""
    w = env.world
    c = _Canvas((MULTI_W, MULTI_H))
    n, m = w.num_es, w.ues
    slot = (MULTI_MAP_RIGHT - 8) / n
    box_w = int(min(BOX_W, slot - BAR_W - 9))
    label_px = 11 if box_w >= 30 else 9
    es_y, ue_y = 70, 280
    es_x = [int(8 + slot * (i + 0.5) - (BAR_W + 3) / 2) for i in range(n)]
    ue_x = [int(8 + (k + 0.5) * (MULTI_MAP_RIGHT - 8) / m) for k in range(m)]
    r = max(3, min(10, int((MULTI_MAP_RIGHT - 8) / (3 * m))))
    snr = w.snr_table_db()[0]
    links = env._links()
    for k, ids in links:
        for i in ids:
            c.draw.line([(ue_x[k], ue_y), (es_x[i], es_y + BOX_H // 2)], fill=_snr_colour(float(snr[k, i, 0])),
                        width=2)
    backlog = w.backlog_s()[0]
    for i, x in enumerate(es_x):
        top, bottom = es_y - BOX_H // 2, es_y + BOX_H // 2
        c.draw.rectangle([x - box_w // 2, top, x + box_w // 2, bottom], fill=USED)
        c.text((x, es_y), f"ES{i}", size_px=label_px, fill="white", anchor="mm")
        _queue_bar(c, x + box_w // 2 + 3, top, bottom, float(backlog[i]), w.workload.latency_scale_s)
    for x in ue_x:
        c.draw.ellipse([x - r, ue_y - r, x + r, ue_y + r], fill=UE)
    c.text((8, 6), f"t = {w.now_s[0]:.1f} s   step {env.epoch}   {m} UEs, {n} ESs")
    c.text((8, MULTI_H - 6), f"{len(links)} of {m} requests used the radio in the last step", anchor="ld")
    _legend(c, MULTI_MAP_RIGHT + 10, w.workload.latency_scale_s, MULTI_H - 8, single=False)
    return np.asarray(c.img, dtype=np.uint8), c.text_boxes


def render_multi(env: Any) -> np.ndarray:
    """The PettingZoo envs' ``rgb_array`` frame (:func:`frame_multi`)."""
    return frame_multi(env)[0]
