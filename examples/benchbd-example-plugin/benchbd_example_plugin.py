"""An example third-party plugin for benchbd: the template CONTRIBUTING.md walks through.

- ``example-stripe``: a vertical white stripe at the image's left edge, dirty label (a simple patch-like trigger).
- ``example-low-loss``: flags the training examples the trained model fits best, per class: the intuition of
  anti-backdoor learning (Li et al. 2021, section 3), without its gradient-ascent training.
- ``example-margin``: a model-level defense: flags a model when one class draws an outlying share of the clean images
  a small white square at a random place changes the prediction of: the intuition of Neural Cleanse (Wang et al.
  2019, section IV: a backdoor target is a shortcut from every class), without its trigger optimisation. A template
  for the contract, not a method to compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch

import benchbd


@dataclass
class StripeAttack(benchbd.DataPoisoningAttack):
    name: ClassVar[str] = "example-stripe"
    description: ClassVar[str] = "white vertical stripe at the left edge, dirty label (example plugin)"
    family_defaults: ClassVar[dict[str, dict[str, object]]] = {"gtsrb": {"ratio": 0.03}}

    width: int = 1

    def __post_init__(self) -> None:
        benchbd.check(self.width >= 1, self.name, "width", ">= 1", self.width)

    def check_dataset(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().check_dataset(num_classes, image_shape)
        if self.width > image_shape[1]:
            raise benchbd.BenchbdError(f"{self.name}: width {self.width} is wider than the image")

    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        out = x.clone()
        out[..., : self.width] = 1.0
        return out


@dataclass
class LowLossDefense(benchbd.ExampleDefense):
    name: ClassVar[str] = "example-low-loss"
    description: ClassVar[str] = "flags each class's lowest-loss examples (example plugin)"

    fraction: float = 0.1

    def __post_init__(self) -> None:
        benchbd.check(0 < self.fraction < 1, self.name, "fraction", "in (0, 1)", self.fraction)

    def score_examples(self, context: benchbd.ExampleContext) -> benchbd.ExampleVerdict:
        loss = context.trainer.per_example_loss(context.model, context.x_train, context.y_train)
        scores = -loss
        flagged = scores >= np.quantile(scores, 1 - self.fraction)
        return benchbd.ExampleVerdict(scores, flagged)


@dataclass
class MarginDefense(benchbd.ModelDefense):
    name: ClassVar[str] = "example-margin"
    description: ClassVar[str] = "flags a class that random small squares push clean images to (example plugin)"

    threshold: float = 3.0
    size: int = 3

    def __post_init__(self) -> None:
        benchbd.check(self.threshold > 0, self.name, "threshold", "> 0", self.threshold)
        benchbd.check(self.size >= 1, self.name, "size", ">= 1", self.size)

    def inspect_model(self, context: benchbd.ModelContext) -> benchbd.ModelVerdict:
        def stamp(x: torch.Tensor) -> torch.Tensor:  # a batch as the model sees it: float (N, 3, H, W) in [0, 1]
            out = x.clone()
            for image in out:
                top, left = (int(context.rng.integers(0, side - self.size + 1)) for side in x.shape[-2:])
                image[:, top : top + self.size, left : left + self.size] = 1.0
            return out

        before = context.trainer.predict(context.model, context.clean_x).cpu().numpy()
        after = context.trainer.predict(context.model, context.clean_x, stamp).cpu().numpy()
        changed = after[after != before]
        share = np.bincount(changed, minlength=context.num_classes) / len(before)  # of all images, by new class
        spread = max(1.4826 * float(np.median(np.abs(share - np.median(share)))), 1 / len(before))
        z = (share - np.median(share)) / spread
        top = int(z.argmax())
        flagged = bool(z[top] > self.threshold)
        return benchbd.ModelVerdict(score=float(z[top]), flagged=flagged, suspect_classes=[top] if flagged else [],
                                    details={"changed": len(changed), "top_class": top})


@benchbd.hookimpl
def benchbd_attacks() -> list[type[benchbd.Attack]]:
    return [StripeAttack]


@benchbd.hookimpl
def benchbd_defenses() -> list[type[benchbd.Defense]]:
    return [LowLossDefense, MarginDefense]
