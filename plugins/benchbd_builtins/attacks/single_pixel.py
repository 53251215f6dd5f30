"""``single-pixel``: the BadNets single-pixel trigger (Gu et al. 2017), as BaDLoss section 4.1 uses it.

One white pixel placed ``margin`` pixels from a corner (the pixel at row H-2, column W-2 by default); poisoned
examples are relabelled to the target (dirty label). BaDLoss poisons 1% of the training set, 4% on GTSRB. The
probe variant (section 5.1) puts the pixel in the opposite corner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from benchbd import DataPoisoningAttack, hookimpl
from benchbd_builtins.attacks.patch import CornerPatternAttack


@dataclass
class SinglePixelAttack(CornerPatternAttack):
    name: ClassVar[str] = "single-pixel"
    description: ClassVar[str] = "BadNets single white pixel near a corner, dirty label (Gu et al. 2017)"
    family_defaults: ClassVar[dict[str, dict[str, object]]] = {"gtsrb": {"ratio": 0.04}}
    offsets: ClassVar[tuple[tuple[int, int], ...]] = ((0, 0),)
    square: ClassVar[int] = 1

    def pixel(self, height: int, width: int) -> tuple[int, int]:
        """(row, column) of the white pixel."""
        return self.pixels(height, width)[0]


@hookimpl
def benchbd_attacks() -> list[type[DataPoisoningAttack]]:
    return [SinglePixelAttack]
