"""``sinusoid``: the clean-label sinusoidal-signal attack (Barni et al. 2019), as BaDLoss section 4.1 blends it.

Barni et al. add the horizontal signal v(i, j) = Δ·sin(2π·j·f/m) (m the image width, f = 6) to images of the target
class only, leaving every label unchanged; a model trained on them learns "signal ⇒ target". BaDLoss blends the
signal as a pattern with α = 0.075: here t(i, j) = 1 + sin(2π·j·f/m), in [0, 2], so that
x' = α·t + (1−α)·x = x + α·(1 − x) + α·sin(2π·j·f/m): Barni's signal with Δ = α ≈ 19/255 (Barni use Δ = 20/255),
plus a brightening by α·(1−x). (BaDLoss's code uses the cosine phase, t = 1 − cos(2π·j·f/m); the phase does not
matter.) At test time the blend is ``test_alpha_scale`` (default 2) times stronger, as BaDLoss's boosted
measurement does and as Barni et al. strengthen the test-time signal.

How many images: BaDLoss poisons 1% of the training set, except on GTSRB, whose classes are imbalanced: there the
target class must have at least 1,000 images, of which 500 get the signal. This is expressed for any training
set size as ``ratio`` (500/39,209 for the GTSRB family, which synth-signs also uses) and
``max_class_share``: at most that share of the target class is poisoned, so the target class needs at least
``poison_count / max_class_share`` images (1,000 on GTSRB with the default 0.5). Without a target given,
:meth:`choose_target` takes the lowest free class that is large enough.

Probe variant (section 5.1): the pattern rotated 90° (a vertical sinusoid).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

from benchbd import DataPoisoningAttack, check, hookimpl
from benchbd.errors import BenchbdError
from benchbd_builtins.attacks.blend import OrientedBlendAttack

#: Size of the GTSRB training set, to which BaDLoss's absolute numbers refer.
GTSRB_TRAIN_SIZE = 39209


@dataclass
class SinusoidAttack(OrientedBlendAttack):
    name: ClassVar[str] = "sinusoid"
    description: ClassVar[str] = "blend a horizontal sinusoid into target-class images (alpha 0.075), clean label (Barni et al. 2019)"
    family_defaults: ClassVar[dict[str, dict[str, object]]] = {"gtsrb": {"ratio": 500 / GTSRB_TRAIN_SIZE}}
    dirty_label: ClassVar[bool] = False

    frequency: float = 6.0
    max_class_share: float = 0.5

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.frequency > 0, self.name, "frequency", "> 0", self.frequency)
        check(0 < self.max_class_share <= 1, self.name, "max_class_share", "in (0, 1]", self.max_class_share)

    def check_dataset(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().check_dataset(num_classes, image_shape)
        size = min(image_shape[:2])
        if self.frequency > size / 2:
            raise BenchbdError(
                f"{self.name}: parameter 'frequency' must be at most half the image size ({size / 2:g}) "
                f"for the signal not to alias; got {self.frequency}"
            )

    def upright_pattern(self, height: int, width: int) -> torch.Tensor:
        columns = torch.arange(width, dtype=torch.float64)
        row = 1 + torch.sin(2 * math.pi * columns * self.frequency / width)
        return row.to(torch.float32).expand(1, height, width).clone()

    def min_class_size(self, n_train: int) -> int:
        """Images the target class needs: ``poison_count / max_class_share``, rounded up (after rounding away
        float error, so that 3 / 0.3 needs 10, not 11)."""
        return math.ceil(round(self.poison_count(n_train) / self.max_class_share, 6))

    def choose_target(self, y_train: np.ndarray, num_classes: int, taken: set[int]) -> int:
        """The lowest class id not taken whose class has at least :meth:`min_class_size` images."""
        need = self.min_class_size(len(y_train))
        counts = np.bincount(y_train, minlength=num_classes)
        eligible = [c for c in range(num_classes) if counts[c] >= need and c not in taken]
        if not eligible:
            raise BenchbdError(
                f"{self.name}: no free class has the {need} images needed to poison {self.poison_count(len(y_train))} "
                f"of them (ratio {self.ratio}, max_class_share {self.max_class_share}); largest class: {counts.max()}"
            )
        return eligible[0]

    def prepare(self, x_train: np.ndarray, y_train: np.ndarray, num_classes: int, rng: np.random.Generator) -> None:
        """Check that the target class (chosen or given) is large enough, on the clean training set."""
        need = self.min_class_size(len(y_train))
        have = int((y_train == self.target).sum())
        if have < need:
            raise BenchbdError(
                f"{self.name}: target class {self.target} has {have} images; it needs {need} "
                f"(ratio {self.ratio}, max_class_share {self.max_class_share})"
            )


@hookimpl
def benchbd_attacks() -> list[type[DataPoisoningAttack]]:
    return [SinusoidAttack]
