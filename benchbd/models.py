"""The model contract: an image classifier on [0, 1] inputs that also exposes its penultimate features."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

#: Fixed input standardisation, applied inside the model so triggers and defenses work in [0, 1] pixel space.
INPUT_MEAN = 0.5
INPUT_STD = 0.25


class ImageClassifier(nn.Module):
    """``backbone`` maps standardised images to a (N, feature_dim) vector; ``head`` maps that to logits.

    Defenses that read activations (spectral signatures, activation clustering, AEGIS) use :meth:`features`.
    """

    def __init__(self, backbone: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone((x - INPUT_MEAN) / INPUT_STD)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@dataclass(frozen=True)
class ModelSpec:
    """A model architecture a plugin provides: ``build(num_classes)`` returns a fresh :class:`ImageClassifier`."""

    name: str
    description: str
    build: Callable[[int], ImageClassifier]
