"""Defense base classes: what the harness asks of a defense plugin, by the unit it judges.

design.md names three units a defense can judge: a training example, a model, a training run. A defense is a
dataclass whose fields are its parameters; its ``unit`` tells the harness which ground truth and metrics apply.
The undefended baseline is a defense too (unit ``none``), so every table has its "No Defense" row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    from benchbd.attacks import Attack
    from benchbd.data.images import ImageData
    from benchbd.models import ImageClassifier
    from benchbd.training.trainer import Trainer

Unit = Literal["none", "example", "model", "training-run"]


@dataclass
class Defense:
    """Common part of every defense."""

    name: ClassVar[str]
    unit: ClassVar[Unit]
    description: ClassVar[str]


@dataclass
class NoDefense(Defense):
    """The undefended baseline: the poisoned model as trained."""

    unit: ClassVar[Unit] = "none"


@dataclass
class ExampleContext:
    """What an example-level defense may look at: the training set as delivered, and the model trained on it.

    ``x_train``/``y_train`` are the possibly poisoned training set (uint8 images, labels as given); the poison
    mask is never shown. ``features`` returns penultimate activations of ``model`` (computed once, shared).
    ``trainer`` trains further models with the cell's profile and seed, and ``new_model`` builds a freshly
    initialised model of the cell's architecture for it (BaDLoss's probationary run).
    ``attacks`` are the attacks of the cell, only for :meth:`DataPoisoningAttack.probe` (a defender's guess at
    a similar trigger, BaDLoss section 5.1); ``single_attack`` says whether the cell has one attack.
    ``trusted_clean`` are indices of training examples the defender knows to be clean (BaDLoss appendix A.1's
    bona fide clean subset C): a random sample of the truly clean examples, 2,000 or 20% of the training set,
    whichever is smaller.
    """

    data: ImageData
    x_train: np.ndarray
    y_train: np.ndarray
    model: torch.nn.Module
    trainer: Trainer
    new_model: Callable[[], ImageClassifier]
    features: Callable[[], np.ndarray]
    attacks: list[Attack]
    expected_poison_fraction: float
    rng: np.random.Generator
    trusted_clean: np.ndarray
    single_attack: bool = field(default=True)


@dataclass
class ExampleVerdict:
    """Per training example: ``scores`` (higher = more suspicious, finite) and ``flagged`` (to be removed)."""

    scores: np.ndarray
    flagged: np.ndarray


@dataclass
class ExampleDefense(Defense):
    """Scores every training example; the harness removes the flagged ones and retrains from scratch."""

    unit: ClassVar[Unit] = "example"

    def score_examples(self, context: ExampleContext) -> ExampleVerdict:
        raise NotImplementedError

    def mitigate(self, context: ExampleContext, verdict: ExampleVerdict) -> torch.nn.Module | None:
        """A defense's own repaired model (ABL's unlearning); ``None``: retrain from scratch on the unflagged."""
        return None
