"""Procedural scenes: the data set the shipped tiny LDM is trained on.

Every image is drawn in numpy from a handful of attributes, so the set is infinite,
deterministic under a seed and needs nothing from disk. Each scene has a caption from a
small grammar, e.g. ``"a large red fish on the left in a dark blue sea"``, which is what
makes text-guided image-to-image meaningful: change one attribute word of the caption
and ask the model to redraw the scene.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

__all__ = [
    "ATTRIBUTES",
    "IMAGE_SIZE",
    "Scene",
    "caption",
    "edit_scene",
    "parse_caption",
    "render",
    "sample_scenes",
    "vocabulary",
]

IMAGE_SIZE = 64

#: attribute name -> allowed values, in a fixed order (the classifier's class indices)
ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "shape": ("circle", "square", "triangle", "fish"),
    "color": ("red", "green", "blue", "yellow", "white", "purple"),
    "background": ("sea", "field", "desert", "night"),
    "position": ("left", "center", "right"),
    "size": ("small", "large"),
}

_COLOR_RGB = {
    "red": (0.86, 0.12, 0.10),
    "green": (0.15, 0.78, 0.20),
    "blue": (0.20, 0.35, 0.95),
    "yellow": (0.95, 0.88, 0.15),
    "white": (0.96, 0.96, 0.96),
    "purple": (0.62, 0.18, 0.78),
}
# background -> (top colour, bottom colour) of a vertical gradient
_BACKGROUND_RGB = {
    "sea": ((0.02, 0.10, 0.35), (0.05, 0.25, 0.55)),
    "field": ((0.45, 0.70, 0.95), (0.20, 0.50, 0.12)),
    "desert": ((0.95, 0.80, 0.55), (0.80, 0.62, 0.32)),
    "night": ((0.01, 0.01, 0.05), (0.10, 0.08, 0.20)),
}
_BACKGROUND_PHRASE = {
    "sea": "in a dark blue sea",
    "field": "on a green field",
    "desert": "in a sandy desert",
    "night": "under a night sky",
}
_POSITION_X = {"left": 0.25, "center": 0.5, "right": 0.75}
_RADIUS = {"small": 0.13, "large": 0.20}


@dataclass(frozen=True)
class Scene:
    """One scene: its attributes plus the small continuous jitter that makes images differ."""

    shape: str
    color: str
    background: str
    position: str
    size: str
    dx: float = 0.0  # horizontal jitter, fraction of the width
    dy: float = 0.0  # vertical jitter, fraction of the height
    shade: float = 1.0  # brightness factor of the object colour

    def attributes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in ATTRIBUTES}


def caption(scene: Scene) -> str:
    """The caption of a scene, e.g. ``"a small red circle on the left in a dark blue sea"``."""
    where = "in the center" if scene.position == "center" else f"on the {scene.position}"
    return f"a {scene.size} {scene.color} {scene.shape} {where} {_BACKGROUND_PHRASE[scene.background]}"


def parse_caption(text: str) -> dict[str, str]:
    """Attributes named in a caption (a prompt may name only some of them).

    Background phrases are matched first and taken out, so the "blue" of "a dark blue sea"
    is not read as the object's colour.
    """
    phrase = " " + " ".join(text.lower().replace(",", " ").split()) + " "
    found: dict[str, str] = {}
    for bg, bg_phrase in _BACKGROUND_PHRASE.items():
        if f" {bg_phrase} " in phrase:
            found["background"] = bg
            phrase = phrase.replace(f" {bg_phrase} ", " ")
    words = phrase.split()
    for name, values in ATTRIBUTES.items():
        for value in values:
            if value in words and name not in found:
                found[name] = value
    return found


def vocabulary() -> list[str]:
    """Every word the caption grammar can produce, sorted."""
    words = {"a", "on", "the", "in", "center", "make", "it"}
    for values in ATTRIBUTES.values():
        words.update(values)
    for phrase in _BACKGROUND_PHRASE.values():
        words.update(phrase.split())
    return sorted(words)


def sample_scenes(rng: np.random.Generator, n: int) -> list[Scene]:
    """Draw ``n`` scenes with uniformly random attributes."""
    scenes = []
    for _ in range(n):
        picks = {name: values[rng.integers(len(values))] for name, values in ATTRIBUTES.items()}
        scenes.append(
            Scene(
                **picks,
                dx=float(rng.uniform(-0.05, 0.05)),
                dy=float(rng.uniform(-0.10, 0.10)),
                shade=float(rng.uniform(0.85, 1.0)),
            )
        )
    return scenes


def edit_scene(rng: np.random.Generator, scene: Scene, attribute: str | None = None) -> Scene:
    """The same scene with one attribute (random if not given) changed to another value."""
    if attribute is None:
        attribute = ("color", "shape", "background")[rng.integers(3)]
    if attribute not in ATTRIBUTES:
        raise ValueError(f"'attribute' must be one of {sorted(ATTRIBUTES)} (got {attribute!r})")
    current = getattr(scene, attribute)
    others = [v for v in ATTRIBUTES[attribute] if v != current]
    return replace(scene, **{attribute: others[rng.integers(len(others))]})


def _shape_sdf(shape: str, x: np.ndarray, y: np.ndarray, r: float) -> np.ndarray:
    """Signed distance (in pixels; negative inside) of a shape centred at the origin."""
    if shape == "circle":
        return np.sqrt(x**2 + y**2) - r
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) - 0.85 * r
    if shape == "triangle":
        # equilateral triangle pointing up: intersection of three half-planes
        s3 = np.sqrt(3.0) / 2
        d1 = y - 0.5 * r  # bottom edge (y grows downwards)
        d2 = s3 * x - 0.5 * y - 0.5 * r
        d3 = -s3 * x - 0.5 * y - 0.5 * r
        return np.maximum(np.maximum(d1, d2), d3) * 1.0
    if shape == "fish":
        a, b = r, 0.55 * r
        body = (np.sqrt((x / a) ** 2 + (y / b) ** 2) - 1.0) * b
        # tail: a triangle whose tip touches the body's left end, opening to the left
        tx = x + 0.85 * r
        tail = np.maximum(tx - 0.15 * r, np.maximum(-tx - 0.55 * r, np.abs(y) - 0.75 * (0.15 * r - tx)))
        return np.minimum(body, tail)
    raise ValueError(f"'shape' must be one of {list(ATTRIBUTES['shape'])} (got {shape!r})")


def render(scenes: list[Scene], size: int = IMAGE_SIZE) -> np.ndarray:
    """Draw scenes as float32 images in [0, 1], shape (N, 3, size, size)."""
    out = np.empty((len(scenes), 3, size, size), dtype=np.float32)
    coords = (np.arange(size, dtype=np.float32) + 0.5)
    yy, xx = np.meshgrid(coords, coords, indexing="ij")
    t = (yy / size)[None]  # 0 at the top, 1 at the bottom
    for i, s in enumerate(scenes):
        top, bottom = (np.asarray(c, dtype=np.float32)[:, None, None] for c in _BACKGROUND_RGB[s.background])
        img = top * (1 - t) + bottom * t
        if s.background == "night":  # a few fixed stars so the night is not a flat colour
            star = (np.sin(xx * 12.9898 + yy * 78.233) * 43758.5453) % 1.0 > 0.992
            img = np.where(star[None] & (yy[None] < size * 0.6), 0.6, img)
        cx = (_POSITION_X[s.position] + s.dx) * size
        cy = (0.5 + s.dy) * size
        r = _RADIUS[s.size] * size
        sdf = _shape_sdf(s.shape, xx - cx, yy - cy, r)
        alpha = np.clip(0.5 - sdf, 0.0, 1.0)[None]  # one pixel of anti-aliasing
        color = np.asarray(_COLOR_RGB[s.color], dtype=np.float32)[:, None, None] * s.shade
        out[i] = img * (1 - alpha) + color * alpha
    return np.clip(out, 0.0, 1.0)
