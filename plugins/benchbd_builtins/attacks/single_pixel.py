"""``single-pixel``: the BadNets single-pixel trigger (Gu et al. 2017), as BaDLoss section 4.1 uses it.

One white pixel placed ``margin`` pixels from a corner (the pixel at row H-2, column W-2 by default); poisoned
examples are relabelled to the target (dirty label). BaDLoss poisons 1% of the training set, 4% on GTSRB. The
probe variant (section 5.1) puts the pixel in the opposite corner.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import torch

from benchbd import DataPoisoningAttack, hookimpl
from benchbd.errors import BenchbdError
from benchbd.params import check
from benchbd_builtins.attacks.patch import OPPOSITE, Corner


@dataclass
class SinglePixelAttack(DataPoisoningAttack):
    name: ClassVar[str] = "single-pixel"
    description: ClassVar[str] = "BadNets single white pixel near a corner, dirty label (Gu et al. 2017)"
    family_defaults: ClassVar[dict[str, dict[str, object]]] = {"gtsrb": {"ratio": 0.04}}

    corner: Corner = "bottom-right"
    margin: int = 1

    def __post_init__(self) -> None:
        check(0 < self.ratio <= 1, self.name, "ratio", "in (0, 1]", self.ratio)
        check(self.margin >= 0, self.name, "margin", ">= 0", self.margin)
        check(self.corner in OPPOSITE, self.name, "corner", f"one of {', '.join(OPPOSITE)}", self.corner)

    def check_dataset(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().check_dataset(num_classes, image_shape)
        height, width = image_shape[:2]
        if self.margin >= min(height, width):
            raise BenchbdError(f"{self.name}: a pixel with margin {self.margin} does not fit a {height}x{width} image")

    def pixel(self, height: int, width: int) -> tuple[int, int]:
        """(row, column) of the white pixel."""
        row = self.margin if self.corner.startswith("top") else height - 1 - self.margin
        col = self.margin if self.corner.endswith("left") else width - 1 - self.margin
        return row, col

    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        row, col = self.pixel(x.shape[-2], x.shape[-1])
        out = x.clone()
        out[..., row, col] = 1.0
        return out

    def probe(self, rng: np.random.Generator) -> SinglePixelAttack:
        return replace(self, corner=OPPOSITE[self.corner])


@hookimpl
def benchbd_attacks() -> list[type[DataPoisoningAttack]]:
    return [SinglePixelAttack]
