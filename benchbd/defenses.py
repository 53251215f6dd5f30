"""Defense base classes: what the harness asks of a defense plugin, by the unit it judges.

docs/architecture.md names three units a defense can judge: a training example, a model, a training run. A defense is a
dataclass whose fields are its parameters; its ``unit`` tells the harness which ground truth and metrics apply.
The undefended baseline is a defense too (unit ``none``), so every table has its "No Defense" row.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, ClassVar, Literal, Protocol

import numpy as np
import torch

from benchbd.attacks import probe_multiplier
from benchbd.params import Plugin

if TYPE_CHECKING:
    from benchbd.attacks import Attack
    from benchbd.data.images import ImageData
    from benchbd.models import ImageClassifier
    from benchbd.training.trainer import Checkpoint, LossComputation, Trainer

Unit = Literal["none", "example", "model", "training-run"]


@dataclass
class Defense(Plugin):
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

    ``data`` is the dataset as delivered: its training split possibly poisoned (uint8 images, labels as given),
    also read as ``x_train``/``y_train``; the poison mask is never shown. ``features`` returns penultimate
    activations of the model as trained.
    The arrays, ``features()``, ``model``, ``attacks`` and ``trusted_clean`` are the defense's own copies: what it
    changes in them stays in its cell.
    ``trainer`` trains further models with the cell's profile and seed, and ``new_model`` builds a freshly
    initialised model of the cell's architecture for it (BaDLoss's probationary run).
    ``attacks`` are the attacks of the cell, only for :meth:`DataPoisoningAttack.probe` (a defender's guess at
    a similar trigger, BaDLoss section 5.1); ``single_attack`` says whether the cell has one attack.
    ``trusted_clean`` are indices of training examples the defender knows to be clean (BaDLoss appendix A.1's
    bona fide clean subset C): a random sample of the truly clean examples, 2n = 500 by default (``--trusted``).
    They are never judged: the harness measures detection over the other examples.
    ``rng`` is the cell's own random stream; ``probe_seed`` seeds the defender's probes, the same for every defense
    of the group, so that defenses modelling attacks with probes (BaDLoss, frequency analysis; BaDLoss section
    5.1) train on one probe set.
    """

    data: ImageData
    model: torch.nn.Module
    trainer: Trainer
    new_model: Callable[[], ImageClassifier]
    features: Callable[[], np.ndarray]
    attacks: list[Attack]
    expected_poison_fraction: float
    rng: np.random.Generator
    probe_seed: int
    trusted_clean: np.ndarray
    single_attack: bool = field(default=True)

    @property
    def x_train(self) -> np.ndarray:
        return self.data.x_train

    @property
    def y_train(self) -> np.ndarray:
        return self.data.y_train

    @property
    def probe_multiplier(self) -> int:
        """How many times its usual n probes per set a probing defense injects here (BaDLoss section 5.1: three
        times as many against the warping attack alone); the harness's trusted set grows alike."""
        return probe_multiplier(self.attacks, self.single_attack)


@dataclass
class ExampleVerdict:
    """Per training example: ``scores`` (higher = more suspicious, finite where judged) and ``flagged`` (to be
    removed). ``judged``: a mask of the examples the defense judged (``None``: all); the others (BaDLoss's
    overwritten by mislabelled probes) are left out of detection metrics. ``details``: small JSON-serialisable
    figures kept with the record; a defense that flags nothing says why here (``{"gate": ...}``), and what fell
    short in ``{"warnings": [...]}``: the leaderboard footnotes both."""

    scores: np.ndarray
    flagged: np.ndarray
    judged: np.ndarray | None = None
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class ExampleDefense(Defense):
    """Scores every training example; the harness removes the flagged ones and retrains from scratch."""

    unit: ClassVar[Unit] = "example"

    @abstractmethod
    def score_examples(self, context: ExampleContext) -> ExampleVerdict:
        raise NotImplementedError

    def mitigate(self, context: ExampleContext, verdict: ExampleVerdict) -> torch.nn.Module | None:
        """A defense's own repaired model (ABL's unlearning); ``None``: retrain from scratch on the unflagged."""
        return None


def no_progress(what: str, done: int, total: int) -> None:
    """A progress report that shows nothing (contexts built outside the harness)."""


@dataclass
class ModelContext:
    """What a model-level defense may look at: one trained model and the clean data the defender holds.

    ``clean_x``/``clean_y`` are held-out clean images (uint8, N×H×W×3) with their labels, up to 2,000 drawn from
    the test split (the model's clean accuracy and ASR are measured on the whole split). ``train_x``/``train_y`` are
    the clean training set as the defender handed it over for training, before anyone poisoned it (the user's own
    data in AEGIS's threat model, section III: "the user has access to clean training data"); a defense whose
    paper assumes no such access must not use them. ``trainer`` runs batched inference (and training, for defenses
    that need it) with the cell's profile on the cell's device. ``progress(what, done, total)`` shows a long
    judgement's progress beside the cell (AEGIS: ``progress("run 1/3: classes", 4, 10)``); it returns at once.
    ``model`` and the arrays are the defense's own copies: what it changes in them stays in its cell.
    """

    model: ImageClassifier
    trainer: Trainer
    num_classes: int
    clean_x: np.ndarray
    clean_y: np.ndarray
    train_x: np.ndarray
    train_y: np.ndarray
    rng: np.random.Generator
    progress: Callable[[str, int, int], None] = no_progress


@dataclass
class ModelVerdict:
    """A model defense's judgment of one model.

    ``score``: higher = more likely backdoored (finite; ranks models for AUROC). ``flagged``: the defense's own
    decision. ``suspect_classes``: the classes it names as backdoor targets (empty when it flags nothing).
    ``details``: small JSON-serialisable figures kept with the record (per-class anomaly indices, cluster counts).
    ``examined_classes``: the classes it looked at for a backdoor target, when not all (``None``): the harness then
    counts wrongly named classes among them only, and a target it did not examine as neither found nor missed.
    ``not_judged``: when not empty, why the defense could not judge this model (its paper's assumption does not
    hold, e.g. AEGIS's "the analyzed model is robust"); the harness then leaves the model out of the detection
    figures and records the reason, whatever ``flagged`` says (``score`` must still be finite).
    """

    score: float
    flagged: bool
    suspect_classes: list[int] = field(default_factory=list)
    details: dict[str, object] = field(default_factory=dict)
    not_judged: str = ""
    examined_classes: list[int] | None = None


@dataclass
class ModelDefense(Defense):
    """Judges whole trained models. The harness shows it the cell's backdoored model and a population of clean
    models of the same architecture and profile (``MatrixConfig.clean_models``), and reports detection over them.

    A defense that needs models trained its own way (AEGIS: adversarial training) overrides
    :meth:`training_loss`; the harness then trains the backdoored and the clean models with it. Those models are
    cached under the source of ``training_loss`` and the fields named in ``training_fields`` (every field when it
    is ``None``): name there the fields ``training_loss`` reads, so that changing another field (AEGIS's ``runs``)
    or another method reuses the trained models.
    """

    unit: ClassVar[Unit] = "model"
    training_fields: ClassVar[tuple[str, ...] | None] = None

    def training_loss(self, loss: LossComputation) -> LossComputation | None:
        """The loss the judged models must be trained with, wrapping ``loss``; ``None``: the usual training."""
        return None

    @abstractmethod
    def inspect_model(self, context: ModelContext) -> ModelVerdict:
        raise NotImplementedError


class Server(Protocol):
    """A simulated training server to which a client outsources steps of its training job (RTTD's setting).

    Whether the server is malicious is hidden from the defense. A malicious one trains on its own poisoned copy
    of the data or with a poisoned loss computation, in every step it runs.
    """

    def run(self, checkpoint: Checkpoint, steps: int) -> Checkpoint:
        """Continue the client's job from ``checkpoint`` for ``steps`` optimiser steps; return the new state."""
        ...


@dataclass
class TrainingRunContext:
    """What a training-run defense may use: the servers, the client's job, and clean data the client holds.

    The job is ``total_steps`` optimiser steps from ``initial`` (a fresh model of the cell's architecture and
    profile). ``new_model`` builds a model to load a checkpoint's weights into; ``trainer`` runs batched
    inference (``predict``-style helpers, ``features``). ``reference_x`` are clean held-out images (uint8).
    ``malicious_fraction`` is the share of malicious servers the threat model declares (RTTD's client assumes a
    benign fraction r, figure 4), never which servers they are. ``progress(what, done, total)`` shows a long
    judgement's progress beside the cell, as :class:`ModelContext`'s does.
    """

    servers: list[Server]
    initial: Checkpoint
    total_steps: int
    new_model: Callable[[], ImageClassifier]
    trainer: Trainer
    reference_x: np.ndarray
    rng: np.random.Generator
    malicious_fraction: float
    progress: Callable[[str, int, int], None] = no_progress


@dataclass
class TrainingRunVerdict:
    """Per server, in the order of ``context.servers``: ``scores`` (higher = more suspicious, finite) and
    ``flagged``; ``extra_steps``: optimiser steps run beyond one job per server (the defense's overhead);
    ``details``: small JSON-serialisable figures kept with the record."""

    scores: np.ndarray
    flagged: np.ndarray
    extra_steps: int
    details: dict[str, object] = field(default_factory=dict)


@dataclass
class TrainingRunDefense(Defense):
    """Judges servers that train a client's job. The harness simulates the servers (the training-run unit's
    threat model, :class:`benchbd.harness.servers.Simulation`: how many, how many malicious, how
    benign replicas differ), each malicious one running the cell's attacks."""

    unit: ClassVar[Unit] = "training-run"

    @abstractmethod
    def judge_servers(self, context: TrainingRunContext) -> TrainingRunVerdict:
        raise NotImplementedError
