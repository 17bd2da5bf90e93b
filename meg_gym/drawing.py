"""Text and images on PIL pictures: the demo's grid, ``evaluate-ldm``'s grid and the envs' ``rgb_array`` frames.

PIL's built-in font draws a space a pixel or two wide ("1268 ms0 kbit" read as one word), so
text is drawn in DejaVu Sans, the font matplotlib (a dependency) ships in its data folder.
Captions are wrapped at word boundaries to a width in pixels measured with that font
(``ImageDraw.textlength``), so nothing wraps mid-word or runs past its tile.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["font", "line_height_px", "to_pil", "wrap"]


@lru_cache(maxsize=8)
def font(size_px: int = 11) -> Any:
    """DejaVu Sans at ``size_px`` (matplotlib's copy); PIL's scalable default font if that file is missing."""
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"), size_px)
    except (ImportError, OSError):
        return ImageFont.load_default(size=size_px)


def line_height_px(fnt: Any) -> int:
    """Pixels from one line's top to the next's: the font's ascent plus descent, plus 2 px of leading."""
    ascent, descent = fnt.getmetrics()
    return int(ascent + descent + 2)


def wrap(text: str, fnt: Any, width_px: int) -> list[str]:
    """``text`` as lines no wider than ``width_px``, broken between words.

    A single word wider than the line (a long path) is the one thing broken inside, at the
    last character that fits, so that it is still shown whole across lines.
    """
    from PIL import Image, ImageDraw

    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))

    def fits(s: str) -> bool:
        return draw.textlength(s, font=fnt) <= width_px

    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}" if current else word
        if fits(trial):
            current = trial
            continue
        if current:
            lines.append(current)
        while not fits(word) and len(word) > 1:  # only an over-long word is split
            cut = max([i for i in range(1, len(word)) if fits(word[:i])], default=1)
            lines.append(word[:cut])
            word = word[cut:]
        current = word
    if current:
        lines.append(current)
    return lines


def to_pil(image: Any, size_px: int) -> Any:
    """A (3, H, W) tensor in [0, 1] as a ``size_px`` square PIL image (nearest-neighbour: pixels stay visible)."""
    from PIL import Image

    arr = (image.detach().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(arr).resize((size_px, size_px), Image.NEAREST)
