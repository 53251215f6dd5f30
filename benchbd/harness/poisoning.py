"""Putting one or several data-poisoning attacks into one training set (BaDLoss section 3.3).

Each attack gets its own target class and disjoint examples; the result carries the per-example source
(-1 for clean, otherwise the index of the attack that poisoned the example): the ground truth of
example-level defenses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from benchbd.attacks import Attack, DataPoisoningAttack, TrainingCodeAttack
from benchbd.data.images import ImageData
from benchbd.errors import BenchbdError
from benchbd.training.trainer import LossComputation, cross_entropy_loss

CLEAN = -1


@dataclass
class PoisonedTrainingSet:
    x: np.ndarray
    y: np.ndarray
    source: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        return self.source != CLEAN


def assign_targets(attacks: list[Attack], data: ImageData) -> None:
    """Give every attack without a target its own class, distinct from the others' targets."""
    taken = {a.target for a in attacks if a.target is not None}
    if len(taken) < sum(a.target is not None for a in attacks):
        raise BenchbdError("two attacks in one training set were given the same target class")
    for attack in attacks:
        if attack.target is None:
            attack.target = attack.choose_target(data.y_train, data.num_classes, taken)
            taken.add(attack.target)


def poison_training_set(data: ImageData, attacks: list[DataPoisoningAttack], rng: np.random.Generator) -> PoisonedTrainingSet:
    """Poison ``data``'s training set with every attack, on disjoint examples, in the given order."""
    x, y = data.x_train.copy(), data.y_train.copy()
    source = np.full(len(y), CLEAN, dtype=np.int64)
    for index, attack in enumerate(attacks):
        changed = attack.poison(x, y, source == CLEAN, rng)
        source[changed] = index
    return PoisonedTrainingSet(x, y, source)


def check_eligible(attacks: list[DataPoisoningAttack], y_train: np.ndarray) -> None:
    """Refuse, before any training, an attack whose ratio needs more examples than it has candidates, or than the
    attacks before it in the set are expected to leave it. Each attack draws uniformly from its candidates still
    clean (:func:`poison_training_set`), so each example's chance of being clean when an attack draws follows from
    the counts before it. The expectation, not the worst case (ours): the worst case refuses sets whose draws leave
    hundreds to spare (every data attack on real GTSRB, whose 30% of invisible images could all come from the
    sinusoid's target class), and a draw that falls short is still refused when it happens
    (:meth:`~benchbd.attacks.DataPoisoningAttack.eligible`, a failed cell). The examples an attack changes besides
    its poisoned ones (:meth:`~benchbd.attacks.DataPoisoningAttack.extra_count`) are drawn from every example still
    clean."""
    clean = np.ones(len(y_train))
    for attack in attacks:
        candidates = attack.eligible(y_train, np.ones(len(y_train), dtype=bool))
        count, expected = attack.poison_count(len(y_train)), float(clean[candidates].sum())
        if count > expected + 1e-9:  # a count equal to the expectation is not refused for its rounding
            raise BenchbdError(
                f"{attack.name}: needs {count} examples to poison but the attacks before it in the set are expected to "
                f"leave {expected:.1f} of its {len(candidates)} candidates (ratio {attack.ratio}, target {attack.target})"
            )
        clean[candidates] *= 1 - count / expected
        others, left = attack.extra_count(len(y_train)), float(clean.sum())
        if others > left + 1e-9:
            raise BenchbdError(f"{attack.name}: changes {others} examples besides the {count} it poisons but the attacks "
                               f"before it in the set are expected to leave {left:.1f}")
        if others:
            clean *= 1 - others / left


def poisoned_loss(attacks: list[Attack], honest: LossComputation = cross_entropy_loss) -> LossComputation:
    """The loss computation the training-code attacks among ``attacks`` make of ``honest`` (Blind Backdoors 3.1)."""
    loss = honest
    for attack in attacks:
        if isinstance(attack, TrainingCodeAttack):
            loss = attack.loss_computation(loss)
    return loss
