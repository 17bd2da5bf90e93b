"""Generation requests drawn from the procedural scene grammar.

A request is an input scene and a prompt that changes one of its attributes ("a large red
fish on the left in a dark blue sea" -> the same with "yellow"), the text-guided
image-to-image task of the MEG case study.
"""

from __future__ import annotations

import numpy as np
import torch

from meg_gym.ldm.data import caption, edit_scene, render, sample_scenes
from meg_gym.system import Request

__all__ = ["TYPICAL_PROMPT", "sample_request"]

#: a prompt of typical length, for payload sizes computed without a request (tables, profiled mode)
TYPICAL_PROMPT = "a large red fish on the left in a dark blue sea"


def sample_request(rng: np.random.Generator, image_size: int = 64, prompt: str | None = None,
                   deadline_s: float = float("inf")) -> Request:
    """A random request: a scene as the input image and an edited caption as the prompt."""
    scene = sample_scenes(rng, 1)[0]
    target = edit_scene(rng, scene)
    image = torch.from_numpy(render([scene], size=image_size))
    text = prompt if prompt is not None else caption(target)
    return Request(image=image, prompt=text, seed=int(rng.integers(2**31 - 1)), deadline_s=deadline_s,
                   attributes=target.attributes())
