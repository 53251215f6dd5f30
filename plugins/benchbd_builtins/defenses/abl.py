"""``abl``: Anti-Backdoor Learning (Li, Lyu, Koren, Lyu, Li & Ma, NeurIPS 2021, section 4).

Backdoor isolation: a fresh model trains for the first T_te epochs with the local gradient ascent (LGA) loss
sign(ℓ − γ)·ℓ per example (ABL eq. 3), which keeps every loss from sinking far below γ: the examples learned
fastest, backdoored ones foremost, settle near γ while the rest are still above it. The examples with the lowest
loss afterwards are isolated. The score for AUROC is the negated loss.

Two modes:

- ``retrain`` (default, BaDLoss section 4.2's comparison): isolate 15% and let the harness retrain from scratch
  on the rest.
- ``unlearn`` (ABL's own): isolate 1%, keep training the isolation model on the rest, then unlearn by gradient
  ascent on the isolated examples (ABL section 4, "backdoor unlearning"); :meth:`AntiBackdoorLearning.mitigate`
  returns that model. The continued training lasts the profile's epochs minus T_te, so the whole run costs one
  training. Unlearning follows the official code (github.com/bboylyg/ABL): SGD with momentum 0.9, learning rate
  5e-4, 5 epochs, batches of 64; the rate decays on the trainer's cosine schedule where the code keeps it flat.

``isolation_epochs`` ``None`` is a fifth of the profile's epochs (ABL: T_te = 20 of T = 100); ``isolation_fraction``
``None`` is the mode's fraction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchbd import ExampleContext, ExampleDefense, ExampleVerdict, hookimpl
from benchbd.params import check
from benchbd.training.trainer import StepInfo, Trainer

#: Batch size of the unlearning phase (official code).
UNLEARNING_BATCH = 64


@dataclass(frozen=True)
class LocalGradientAscent:
    """ABL eq. 3: the batch mean of sign(ℓ − γ)·ℓ over per-example cross-entropies ℓ.

    Examples with ℓ > γ are descended, those with ℓ < γ ascended, so no loss settles far below γ.
    """

    gamma: float

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
        losses = F.cross_entropy(model(x).float(), y, reduction="none")
        return (torch.sign(losses - self.gamma) * losses).mean()


def gradient_ascent(model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
    """The unlearning loss: the negated cross-entropy of the isolated examples."""
    return -F.cross_entropy(model(x).float(), y)


@dataclass
class AblVerdict(ExampleVerdict):
    """The isolation, and the isolation model that ``unlearn`` mode goes on training."""

    isolation_model: nn.Module | None = None


@dataclass
class AntiBackdoorLearning(ExampleDefense):
    name: ClassVar[str] = "abl"
    description: ClassVar[str] = "anti-backdoor learning: isolate the lowest-loss examples under LGA (Li et al. 2021)"

    gamma: float = 0.5
    isolation_fraction: float | None = None
    isolation_epochs: int | None = None
    mode: Literal["retrain", "unlearn"] = "retrain"
    unlearning_epochs: int = 5
    unlearning_lr: float = 5e-4

    def __post_init__(self) -> None:
        check(self.gamma > 0, self.name, "gamma", "positive", self.gamma)
        if self.isolation_fraction is not None:
            fraction = self.isolation_fraction
            check(0 < fraction < 1, self.name, "isolation_fraction", "in (0, 1) or none", fraction)
        if self.isolation_epochs is not None:
            epochs = self.isolation_epochs
            check(epochs >= 1, self.name, "isolation_epochs", "at least 1 or none", epochs)
        check(self.unlearning_epochs >= 1, self.name, "unlearning_epochs", "at least 1", self.unlearning_epochs)
        check(self.unlearning_lr > 0, self.name, "unlearning_lr", "positive", self.unlearning_lr)

    def fraction_to_isolate(self) -> float:
        """``isolation_fraction``, else 15% to retrain (BaDLoss section 4.2) or 1% to unlearn (ABL)."""
        if self.isolation_fraction is not None:
            return self.isolation_fraction
        return 0.15 if self.mode == "retrain" else 0.01

    def lga_epochs(self, trainer: Trainer) -> int:
        """T_te: ``isolation_epochs``, else a fifth of the profile's epochs."""
        return self.isolation_epochs or max(1, round(trainer.profile.epochs / 5))

    def score_examples(self, context: ExampleContext) -> AblVerdict:
        trainer = context.trainer
        x, y = trainer.images(context.x_train), trainer.labels(context.y_train)
        model = trainer.fit(
            context.new_model(),
            x,
            y,
            label="abl isolation",
            loss_computation=LocalGradientAscent(self.gamma),
            epochs=self.lga_epochs(trainer),
        )
        scores = -trainer.per_example_loss(model, x, y).astype(np.float64)
        count = min(len(scores), math.ceil(self.fraction_to_isolate() * len(scores)))
        flagged = np.zeros(len(scores), dtype=bool)
        flagged[np.argsort(-scores, kind="stable")[:count]] = True
        return AblVerdict(scores, flagged, isolation_model=model if self.mode == "unlearn" else None)

    def mitigate(self, context: ExampleContext, verdict: ExampleVerdict) -> nn.Module | None:
        if self.mode == "retrain":
            return None
        assert isinstance(verdict, AblVerdict) and verdict.isolation_model is not None
        trainer = context.trainer
        kept = ~verdict.flagged
        model = trainer.fit(
            verdict.isolation_model,
            context.x_train[kept],
            context.y_train[kept],
            label="abl training on the rest",
            epochs=max(1, trainer.profile.epochs - self.lga_epochs(trainer)),
        )
        return self.unlearn(trainer, model, context.x_train[verdict.flagged], context.y_train[verdict.flagged])

    def unlearn(self, trainer: Trainer, model: nn.Module, x: np.ndarray, y: np.ndarray) -> nn.Module:
        """Gradient ascent on the isolated examples (ABL section 4, backdoor unlearning)."""
        profile = replace(
            trainer.profile,
            optimizer="sgd",
            lr=self.unlearning_lr,
            schedule="cosine",
            batch_size=UNLEARNING_BATCH,
            shift=0,
        )
        return Trainer(profile, trainer.device, trainer.seed, trainer.on_epoch).fit(
            model, x, y, label="abl unlearning", loss_computation=gradient_ascent, epochs=self.unlearning_epochs
        )


@hookimpl
def benchbd_defenses() -> list[type[ExampleDefense]]:
    return [AntiBackdoorLearning]
