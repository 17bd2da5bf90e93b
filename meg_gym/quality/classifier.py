"""The attribute classifier behind prompt fidelity.

A small CNN, trained by ``meg-gym train-ldm --phase classifier`` on the same procedural
scenes as the tiny LDM, predicts each attribute of :data:`meg_gym.ldm.data.ATTRIBUTES`
from an image. Prompt fidelity of an output is the share of the attributes its prompt names
that the classifier sees in it.
"""

from __future__ import annotations

import torch
from torch import nn

from meg_gym.ldm.data import ATTRIBUTES

__all__ = ["AttributeClassifier"]


class AttributeClassifier(nn.Module):
    """CNN with one softmax head per attribute; input (N, 3, H, W) in [0, 1]."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(2 * w, 4 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.Conv2d(4 * w, 4 * w, 3, stride=2, padding=1), nn.SiLU(),
            nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        )
        self.heads = nn.ModuleDict({name: nn.Linear(16 * w, len(values)) for name, values in ATTRIBUTES.items()})

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        if images.shape[-1] != 64 or images.shape[-2] != 64:
            images = nn.functional.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False)
        h = self.features(images * 2 - 1)
        return {name: head(h) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, images: torch.Tensor) -> list[dict[str, str]]:
        """The most likely value of every attribute, per image."""
        logits = self(images)
        idx = {name: out.argmax(-1).tolist() for name, out in logits.items()}
        return [{name: ATTRIBUTES[name][idx[name][i]] for name in ATTRIBUTES} for i in range(images.shape[0])]
