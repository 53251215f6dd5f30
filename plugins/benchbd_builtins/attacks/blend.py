"""Blended-pattern attacks (BaDLoss section 4.1): ``blend-random`` (Chen et al. 2017) and ``blend-dimple``
(Liao et al. 2018).

A full-image pattern t is blended into the image, x' = α·t + (1−α)·x, and the poisoned examples are relabelled to
the target (dirty label). Note that the blend changes every pixel where t ≠ x, not only where the pattern is
"lit": it also darkens the rest of the image by the factor 1−α. BaDLoss blends a uniform random pattern with
α = 0.075 (Blend-R) and a dimple pattern, one pixel lit every other row and column, with α = 0.025 (Blend-P),
poisoning 1% of the training set.

Test time: BaDLoss's code measures the blended attacks with the blend twice as strong as in training as well as
with the training strength (``BOOSTING_RATIO = 2``). The harness reports both: ``asr`` with the trigger as
trained and ``asr_boosted`` with ``test_time=True``, where ``test_alpha_scale`` (default 2) multiplies α.

Probe variants (section 5.1): blend-random draws a new random pattern; the dimple pattern is rotated 90°.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np
import torch

from benchbd import DataPoisoningAttack, check, hookimpl
from benchbd.errors import BenchbdError


@dataclass
class BlendAttack(DataPoisoningAttack):
    """x' = α·t + (1−α)·x with the pattern t of :meth:`pattern`, clamped to [0, 1]; α·``test_alpha_scale`` at
    test time. Subclasses define the pattern."""

    test_time_boost: ClassVar[bool] = True

    alpha: float = 0.075
    test_alpha_scale: float = 2.0

    def __post_init__(self) -> None:
        check(0 <= self.alpha <= 1, self.name, "alpha", "in [0, 1]", self.alpha)
        check(
            self.test_alpha_scale >= 0 and self.alpha * self.test_alpha_scale <= 1,
            self.name,
            "test_alpha_scale",
            f">= 0 and at most 1/alpha = {1 / self.alpha if self.alpha else float('inf'):g}",
            self.test_alpha_scale,
        )

    def pattern(self, height: int, width: int) -> torch.Tensor:
        """The pattern t, float32 of shape (C, height, width) with C = 1 (grey) or 3."""
        raise NotImplementedError

    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        alpha = self.alpha * (self.test_alpha_scale if test_time else 1.0)
        t = self.pattern(x.shape[-2], x.shape[-1]).to(device=x.device, dtype=x.dtype)
        return (alpha * t + (1 - alpha) * x).clamp(0, 1)


@dataclass
class RandomBlendAttack(BlendAttack):
    """Blend-R: a fixed uniform-noise image (each channel value uniform in 0..255), drawn in :meth:`prepare`."""

    name: ClassVar[str] = "blend-random"
    description: ClassVar[str] = "blend a fixed random-noise image (alpha 0.075), dirty label (Chen et al. 2017)"

    noise: np.ndarray | None = field(default=None, init=False, repr=False)

    def prepare(self, x_train: np.ndarray, y_train: np.ndarray, num_classes: int, rng: np.random.Generator) -> None:
        self.noise = self._draw(rng, x_train.shape[1], x_train.shape[2])

    @staticmethod
    def _draw(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
        return (rng.integers(0, 256, size=(3, height, width)) / 255).astype(np.float32)

    def pattern(self, height: int, width: int) -> torch.Tensor:
        if self.noise is None:
            raise BenchbdError(f"{self.name}: the noise pattern is drawn in prepare(), which was not called")
        if self.noise.shape[1:] != (height, width):
            raise BenchbdError(f"{self.name}: the pattern is {self.noise.shape[1:]} but the images are {(height, width)}")
        return torch.from_numpy(self.noise)

    def probe(self, rng: np.random.Generator) -> RandomBlendAttack:
        if self.noise is None:
            raise BenchbdError(f"{self.name}: prepare() must be called before probe()")
        variant = replace(self)
        variant.noise = self._draw(rng, *self.noise.shape[1:])
        return variant


@dataclass
class OrientedBlendAttack(BlendAttack):
    """A blend with a fixed, deterministic pattern; ``rotated`` turns it 90° (the probe variant flips it)."""

    rotated: bool = False

    def upright_pattern(self, height: int, width: int) -> torch.Tensor:
        """The pattern before rotation, as :meth:`pattern` returns it."""
        raise NotImplementedError

    def pattern(self, height: int, width: int) -> torch.Tensor:
        if self.rotated:
            return torch.rot90(self.upright_pattern(width, height), 1, dims=(-2, -1))
        return self.upright_pattern(height, width)

    def probe(self, rng: np.random.Generator) -> OrientedBlendAttack:
        return replace(self, rotated=not self.rotated)


@dataclass
class DimpleBlendAttack(OrientedBlendAttack):
    """Blend-P: 1 at every other row and column starting at (0, 0) (rows and columns 0, 2, 4, ...), else 0."""

    name: ClassVar[str] = "blend-dimple"
    description: ClassVar[str] = "blend a dimple grid, one pixel every other row and column (alpha 0.025), dirty label (Liao et al. 2018)"

    alpha: float = 0.025

    def upright_pattern(self, height: int, width: int) -> torch.Tensor:
        t = torch.zeros(1, height, width)
        t[:, ::2, ::2] = 1.0
        return t


@hookimpl
def benchbd_attacks() -> list[type[DataPoisoningAttack]]:
    return [RandomBlendAttack, DimpleBlendAttack]
