"""How the user picks among candidates (UIDG, DIUG, DSUC) without the scoring classifier.

The parallel protocols return several candidates and "the user" keeps one. Letting the attribute
classifier that then scores prompt fidelity pick would make the pick an oracle on the metric, so
the parallel protocols' quality would be biased upward by construction. :data:`SELECTIONS` names
the user models a scenario may choose (``workload.selection``):

* ``glance``: a user who looks at each candidate and checks what the prompt asks for
  by eye, modelled without any learned weights: the background is the scene gradient nearest the
  image (median over pixels, so the object barely moves it), the object is the pixels far from
  that gradient, its colour the nearest palette colour to their mean, its position the nearest
  third to their centroid, its size the nearer of the two radii to sqrt(area / pi). It does not
  judge the shape (a glance at a 64 px image does not tell a square from a circle reliably; the
  share it scores is over the other attributes the prompt names). Its agreement with the scoring
  classifier is measured by ``benchmarks/multi_es_quality.py selection``.
* ``scorer`` (the default, because the shipped calibration tables' parallel entries were measured
  with it; profiled mode refuses another selection until its table is calibrated): the scoring
  classifier picks, an oracle user.
* ``first``: a user without preference keeps the first candidate.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from meg_gym.ldm.data import _BACKGROUND_RGB, _COLOR_RGB, _POSITION_X, _RADIUS, parse_caption

__all__ = ["SELECTIONS", "GlanceUser", "first_candidate", "make_user"]

SELECTIONS = ("glance", "scorer", "first")
_JUDGED = ("background", "color", "position", "size")
_FOREGROUND = 0.25  # RGB distance from the background gradient above which a pixel is the object's


class GlanceUser:
    """The ``glance`` user: picks the candidate that shows most of what the prompt asks for."""

    def attributes(self, image: Any) -> dict[str, str]:
        """What the user sees in one image ((3,H,W) or (1,3,H,W) in [0, 1], a tensor or an array)."""
        x = np.asarray(image.detach().cpu().float() if hasattr(image, "detach") else image, dtype=np.float64)
        x = x.reshape(3, x.shape[-2], x.shape[-1])
        h, w = x.shape[1:]
        t = ((np.arange(h) + 0.5) / h)[None, :, None]
        dist = {}
        for name, (top, bottom) in _BACKGROUND_RGB.items():
            grad = np.asarray(top)[:, None, None] * (1 - t) + np.asarray(bottom)[:, None, None] * t
            dist[name] = np.sqrt(((x - grad) ** 2).sum(axis=0))
        background = min(dist, key=lambda n: float(np.median(dist[n])))
        mask = dist[background] > _FOREGROUND
        seen = {"background": background}
        if mask.sum() < 4:  # no object to speak of: nothing more to see
            return seen
        rgb = x[:, mask].mean(axis=1)
        seen["color"] = min(_COLOR_RGB, key=lambda c: float(((np.asarray(_COLOR_RGB[c]) - rgb) ** 2).sum()))
        cx = (np.nonzero(mask)[1].mean() + 0.5) / w
        seen["position"] = min(_POSITION_X, key=lambda p: abs(_POSITION_X[p] - cx))
        r = np.sqrt(mask.sum() / np.pi) / w
        seen["size"] = min(_RADIUS, key=lambda s: abs(_RADIUS[s] - r))
        return seen

    def score(self, image: Any, prompt: str) -> float:
        """Share of the judged attributes the prompt names that the user sees (1.0 if it names none)."""
        wanted = {k: v for k, v in parse_caption(prompt).items() if k in _JUDGED}
        if not wanted:
            return 1.0
        seen = self.attributes(image)
        return sum(seen.get(k) == v for k, v in wanted.items()) / len(wanted)

    def __call__(self, candidates: list[Any], prompt: str) -> int:
        scores = [self.score(c, prompt) for c in candidates]
        return max(range(len(scores)), key=lambda i: (scores[i], -i))


def first_candidate(candidates: list[Any], prompt: str) -> int:
    """The ``first`` user: no preference."""
    return 0


def make_user(selection: str, scorer: Any) -> Any:
    """The picker of ``selection`` (:data:`SELECTIONS`); ``scorer`` is the scoring judge (or None)."""
    if selection not in SELECTIONS:
        raise ValueError(f"'workload.selection' must be one of {list(SELECTIONS)} (got {selection!r})")
    if selection == "glance":
        return GlanceUser()
    if selection == "scorer":
        return scorer
    return first_candidate
