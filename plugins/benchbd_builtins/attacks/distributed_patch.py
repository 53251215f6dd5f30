"""``distributed-patch``: AEGIS's distributed visible trigger (Soremekun et al., section V, "Attack
Configuration"): two small white squares, one at the top-left and one at the bottom-right corner, together
under 1% of the image; poisoned examples are relabelled to the target (dirty label, BadNets style). AEGIS poisons
1% of the training set for visible triggers. Its localised trigger, one square at the bottom-right corner, is
close to the ``patch`` attack.

Deviations: AEGIS adds the poisoned copies to the training set; here they replace the originals, as for every
data-poisoning attack in benchbd, so that the set's size is the clean one. The squares' size is not given in the
text beyond the 1% bound: 2×2 pixels each (8 of 1,024 pixels at 32×32). The probe variant for a loss-dynamics
defender (BaDLoss section 5.1) puts the two squares in the other two corners.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np
import torch

from benchbd import DataPoisoningAttack, check, hookimpl
from benchbd.errors import BenchbdError

Diagonal = Literal["main", "anti"]


@dataclass
class DistributedPatchAttack(DataPoisoningAttack):
    name: ClassVar[str] = "distributed-patch"
    description: ClassVar[str] = "two small white squares in opposite corners, dirty label (AEGIS, Soremekun et al.)"

    size: int = 2
    margin: int = 1
    #: ``main``: top-left and bottom-right corners (the paper's); ``anti``: top-right and bottom-left.
    diagonal: Diagonal = "main"

    def __post_init__(self) -> None:
        check(self.size >= 1, self.name, "size", ">= 1", self.size)
        check(self.margin >= 0, self.name, "margin", ">= 0", self.margin)

    def check_dataset(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().check_dataset(num_classes, image_shape)
        if 2 * (self.margin + self.size) > min(image_shape[:2]):
            raise BenchbdError(f"{self.name}: two {self.size}x{self.size} squares with margin {self.margin} do not fit a {image_shape[0]}x{image_shape[1]} image")

    def squares(self, height: int, width: int) -> list[tuple[slice, slice]]:
        """(rows, columns) of the two squares."""
        near, far = self.margin, -self.margin - self.size
        rows_near, rows_far = slice(near, near + self.size), slice(height + far, height + far + self.size)
        cols_near, cols_far = slice(near, near + self.size), slice(width + far, width + far + self.size)
        if self.diagonal == "main":
            return [(rows_near, cols_near), (rows_far, cols_far)]
        return [(rows_near, cols_far), (rows_far, cols_near)]

    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        out = x.clone()
        for rows, cols in self.squares(x.shape[-2], x.shape[-1]):
            out[..., rows, cols] = 1.0
        return out

    def probe(self, rng: np.random.Generator) -> DistributedPatchAttack:
        return replace(self, diagonal="anti" if self.diagonal == "main" else "main")


@hookimpl
def benchbd_attacks() -> list[type[DataPoisoningAttack]]:
    return [DistributedPatchAttack]
