"""``patch``: the BadNets checkerboard patch (Gu et al. 2017), as BaDLoss section 4.1 uses it.

Four white pixels in a checkerboard arrangement (the four edge-centre cells of a 3×3 square) placed ``margin``
pixels from a corner; poisoned examples are relabelled to the target (dirty label). BaDLoss poisons 1% of the
training set, 2% on GTSRB. The probe variant (section 5.1) puts the same pattern in the opposite corner.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np
import torch

from benchbd import DataPoisoningAttack, check, hookimpl
from benchbd.errors import BenchbdError

Corner = Literal["bottom-right", "bottom-left", "top-right", "top-left"]
OPPOSITE: dict[str, Corner] = {
    "bottom-right": "top-left",
    "top-left": "bottom-right",
    "bottom-left": "top-right",
    "top-right": "bottom-left",
}


def corner_box(corner: Corner, margin: int, size: int, height: int, width: int) -> tuple[int, int]:
    """(top, left) of a ``size``×``size`` box ``margin`` pixels from ``corner`` of a ``height``×``width`` image."""
    top = margin if corner.startswith("top") else height - margin - size
    left = margin if corner.endswith("left") else width - margin - size
    return top, left


@dataclass
class CornerPatternAttack(DataPoisoningAttack):
    """White pixels at ``offsets`` inside a ``square``×``square`` box ``margin`` pixels from a corner (BadNets,
    Gu et al. 2017). The probe variant (BaDLoss section 5.1) is the same pattern in the opposite corner."""

    offsets: ClassVar[tuple[tuple[int, int], ...]]
    square: ClassVar[int]

    corner: Corner = "bottom-right"
    margin: int = 1

    def __post_init__(self) -> None:
        check(self.margin >= 0, self.name, "margin", ">= 0", self.margin)

    def check_dataset(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().check_dataset(num_classes, image_shape)
        height, width = image_shape[:2]
        if self.margin + self.square > min(height, width):
            raise BenchbdError(
                f"{self.name}: the {self.square}x{self.square} pattern with margin {self.margin} does not fit a {height}x{width} image"
            )

    def pixels(self, height: int, width: int) -> list[tuple[int, int]]:
        """(row, column) of the white pixels."""
        top, left = corner_box(self.corner, self.margin, self.square, height, width)
        return [(top + r, left + c) for r, c in self.offsets]

    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        out = x.clone()
        for row, col in self.pixels(x.shape[-2], x.shape[-1]):
            out[..., row, col] = 1.0
        return out

    def probe(self, rng: np.random.Generator) -> CornerPatternAttack:
        return replace(self, corner=OPPOSITE[self.corner])


@dataclass
class PatchAttack(CornerPatternAttack):
    name: ClassVar[str] = "patch"
    description: ClassVar[str] = "BadNets 4-pixel white checkerboard near a corner, dirty label (Gu et al. 2017)"
    family_defaults: ClassVar[dict[str, dict[str, object]]] = {"gtsrb": {"ratio": 0.02}}
    #: The four edge-centre cells of a 3×3 square: a checkerboard's white cells.
    offsets: ClassVar[tuple[tuple[int, int], ...]] = ((0, 1), (1, 0), (1, 2), (2, 1))
    square: ClassVar[int] = 3


@hookimpl
def benchbd_attacks() -> list[type[DataPoisoningAttack]]:
    return [PatchAttack]
