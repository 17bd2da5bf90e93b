"""Prompt fidelity: does an output show the attributes its prompt asks for?

Scored by the shipped attribute classifier (:mod:`meg_gym.quality.classifier`): the share
of the attributes named in the prompt that the classifier sees in the image. Available for
models trained on the procedural scenes (the shipped ``tiny`` model); for others it is None.
"""

from __future__ import annotations

from pathlib import Path

import torch

from meg_gym.ldm.components import SHIPPED_DIR, ModelError
from meg_gym.ldm.data import parse_caption
from meg_gym.quality.classifier import AttributeClassifier

__all__ = ["FidelityJudge", "load_judge"]


class FidelityJudge:
    """Scores prompt fidelity and, acting as the user, picks the best of several candidates."""

    def __init__(self, classifier: AttributeClassifier) -> None:
        self.classifier = classifier.eval()

    def score(self, image: torch.Tensor, prompt: str) -> float:
        """Share of the prompt's attributes present in ``image`` ((3,H,W) or (1,3,H,W))."""
        wanted = parse_caption(prompt)
        if not wanted:
            return 1.0
        x = image[None] if image.dim() == 3 else image
        # candidates (multi-ES protocols) come on the model's device and dtype; the judge runs in fp32 on its own
        device = next(self.classifier.parameters()).device
        seen = self.classifier.predict(x.to(device=device, dtype=torch.float32))[0]
        return sum(seen[k] == v for k, v in wanted.items()) / len(wanted)

    def __call__(self, candidates: list[torch.Tensor], prompt: str) -> int:
        scores = [self.score(c, prompt) for c in candidates]
        return max(range(len(scores)), key=lambda i: (scores[i], -i))


def load_judge(folder: Path | None = None) -> FidelityJudge:
    """The shipped classifier (``classifier.safetensors`` next to the tiny model's weights)."""
    from safetensors.torch import load_file

    path = (folder or SHIPPED_DIR / "tiny") / "classifier.safetensors"
    if not path.is_file():
        raise ModelError(f"attribute classifier {path} is missing (run 'meg-gym train-ldm --phase classifier')")
    from meg_gym.ldm.components import check_weights

    check_weights(path, shipped=folder is None)
    clf = AttributeClassifier()
    try:
        clf.load_state_dict(load_file(str(path)), strict=True)
    except Exception as exc:  # noqa: BLE001 - any corrupt file gets the same clear message
        first = str(exc).splitlines()[0]
        raise ModelError(f"attribute classifier {path} is not a valid weight file ({first})") from exc
    return FidelityJudge(clf)
