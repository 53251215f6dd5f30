"""Training for one group of cells: the poisoned training set and model that every defense of the group judges, and
the other models the units train (AEGIS's robust population, clean models), cached in the run directory.

Every training gets attack objects of its own (:meth:`Workbench.prepared_attacks`): an attack's state (a loss
computation's schedule, a Neural Cleanse mask, what it measured) never carries from one training to the next. What
the attacks measured about a training (``Attack.stats()``) is stored beside the cached model and restored with it,
so a resumed record equals a fresh one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from benchbd.attacks import Attack, DataPoisoningAttack
from benchbd.data.images import ImageData
from benchbd.defenses import no_progress
from benchbd.harness.environment import environment
from benchbd.harness.metrics import attack_success_rates, clean_accuracy, robust_accuracy, target_rate
from benchbd.harness.plan import Group, Plan
from benchbd.harness.poisoning import PoisonedTrainingSet, assign_targets, poison_training_set, poisoned_loss
from benchbd.harness.results import RunDirectory
from benchbd.models import ImageClassifier
from benchbd.training.stacked import fit_stacked
from benchbd.training.trainer import LossComputation, Trainer, cross_entropy_loss


def model_figures(trainer: Trainer, model: torch.nn.Module, data: ImageData, attacks: list[Attack], suffix: str = "") -> dict[str, Any]:
    """Clean accuracy, attack success (plain and, for attacks with a test-time boost, boosted) and robust accuracy
    of one model, as record fields: ``clean_acc``, ``asr``, ``asr_boosted``, ``robust_acc``, with ``suffix``
    (``_after``) appended."""
    figures = {
        "clean_acc": clean_accuracy(trainer, model, data),
        **attack_success_rates(trainer, model, data, attacks),
        "robust_acc": {a.name: robust_accuracy(trainer, model, data, a) for a in attacks},
    }
    return {f"{key}{suffix}": value for key, value in figures.items()}


@dataclass
class PoisonedGroup:
    """One group's poisoned training set and trained model, shared by its defenses."""

    group: Group
    attacks: list[Attack]
    poisoned: PoisonedTrainingSet
    model: ImageClassifier
    trainer: Trainer
    summary: dict[str, Any]
    _features: np.ndarray | None = None

    @property
    def data_attacks(self) -> list[DataPoisoningAttack]:
        """The attacks that poisoned examples, in the order of ``poisoned.source``'s indices."""
        return [a for a in self.attacks if isinstance(a, DataPoisoningAttack)]

    def features(self) -> np.ndarray:
        """Penultimate features of the poisoned training set, computed once for all defenses."""
        if self._features is None:
            self._features = self.trainer.features(self.model, self.poisoned.x)
        return self._features


class Workbench:
    """Builds, trains and caches the models of a plan's groups in one run directory."""

    def __init__(self, plan: Plan, run_dir: RunDirectory, step: Callable[[str, int, int], None] = no_progress) -> None:
        """``step(label, done, total)`` shows long work in the current cell (the progress display's ``step``)."""
        self.plan = plan
        self.data = plan.data
        self.run_dir = run_dir
        self.step = step
        self.environment = environment(plan.device)
        self._trained: dict[str, tuple[ImageClassifier, dict[str, Any]]] = {}

    @property
    def stacks_populations(self) -> bool:
        """Whether a population of honest trainings (the clean models) trains as one stacked model
        (:meth:`trained_together`): on CUDA only, since on the CPU it is slower (benchmarks/stacked_training.py;
        docs/findings.md, "Stacked training")."""
        return self.plan.device.type == "cuda"

    def trainer(self, seed: int) -> Trainer:
        return Trainer(self.plan.profile, self.plan.device, seed, on_epoch=self.epoch)

    def epoch(self, label: str, epoch: int, epochs: int) -> None:
        self.step(f"{label}: epoch", epoch, epochs)

    def fresh_model(self, seed: int) -> ImageClassifier:
        torch.manual_seed(seed)
        return self.plan.model_spec.build(self.data.num_classes)

    def new_attacks(self, group: Group) -> list[Attack]:
        """New attack objects of the group with their targets assigned, not yet prepared."""
        attacks = self.plan.attacks(group)
        assign_targets(attacks, self.data)
        return attacks

    def prepared_attacks(self, group: Group) -> tuple[list[Attack], np.random.Generator]:
        """New attack objects for one training, triggers prepared from the group's poisoning stream (the same
        triggers every time); the stream, positioned to draw the poisoned examples next."""
        attacks = self.new_attacks(group)
        rng = self.plan.poisoning_stream(group)
        for attack in attacks:
            attack.prepare(self.data.x_train, self.data.y_train, self.data.num_classes, rng)
        return attacks, rng

    def trained_model(
        self, key: str, seed: int, x: np.ndarray, y: np.ndarray, loss: LossComputation, label: str, attacks: Sequence[Attack] = (),
    ) -> tuple[ImageClassifier, dict[str, Any]]:
        """The model cached under ``key`` (in memory, then on disk), placed and in eval mode as ``trainer.fit``
        leaves one, with its attacks' stats; else train it with ``loss`` and cache both."""
        if key not in self._trained:
            model = self.fresh_model(seed)
            trainer = self.trainer(seed)
            stats = self.run_dir.cached_model(key, model)
            if stats is not None:
                trainer.place(model).eval()
            else:
                trainer.fit(model, x, y, label=label, loss_computation=loss)
                stats = {name: figures for name, figures in ((a.name, a.stats()) for a in attacks) if figures}
                self.run_dir.cache_model(key, model, stats)
            self._trained[key] = (model, stats)
        return self._trained[key]

    def trained_together(self, keys: Sequence[str], seeds: Sequence[int], x: np.ndarray, y: np.ndarray, label: str) -> list[ImageClassifier]:
        """The models cached under ``keys``, trained honestly on (x, y) with ``seeds``. Unless every one is cached,
        all are trained at once as one stacked model (:func:`fit_stacked`) and cached: a population always trains
        whole, so its weights never depend on which of its models a killed run had cached."""
        if all(key in self._trained or self.run_dir.has_model(key) for key in keys):
            return [self.trained_model(key, seed, x, y, cross_entropy_loss, label)[0] for key, seed in zip(keys, seeds)]
        models = [self.fresh_model(seed) for seed in seeds]
        fit_stacked([self.trainer(seed) for seed in seeds], models, x, y, label=label)
        for key, model in zip(keys, models):
            self.run_dir.cache_model(key, model, {})
            self._trained[key] = (model, {})
        return models

    def poisoned_group(self, group: Group) -> PoisonedGroup:
        """Poison the training set and train (or load) the model every defense of the group judges."""
        attacks, rng = self.prepared_attacks(group)
        data_attacks = [a for a in attacks if isinstance(a, DataPoisoningAttack)]
        poisoned = poison_training_set(self.data, data_attacks, rng)
        started = time.perf_counter()
        model, stats = self.trained_model(
            self.plan.model_key(group), group.seed, poisoned.x, poisoned.y, poisoned_loss(attacks), "poisoned model", attacks
        )
        trainer = self.trainer(group.seed)
        summary = {
            "targets": {a.name: a.target for a in attacks},
            "poisoned_count": {a.name: int((poisoned.source == i).sum()) for i, a in enumerate(data_attacks)},
            "train_seconds": time.perf_counter() - started,
            "attack_stats": stats,
            **model_figures(trainer, model, self.data, attacks),
            "clean_to_target": {a.name: target_rate(trainer, model, self.data, a) for a in attacks},
        }
        return PoisonedGroup(group, attacks, poisoned, model, trainer, summary)
