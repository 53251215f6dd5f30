"""Putting one or several data-poisoning attacks into one training set (BaDLoss section 3.3).

Each attack gets its own target class and disjoint examples; the result carries the per-example source
(-1 for clean, otherwise the index of the attack that poisoned the example): the ground truth of
example-level defenses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from benchbd.attacks import Attack, DataPoisoningAttack
from benchbd.data.images import ImageData
from benchbd.errors import BenchbdError

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


def apply_trigger_uint8(attack: Attack, x: np.ndarray, *, test_time: bool = False) -> np.ndarray:
    """Apply ``attack.trigger`` to uint8 (N, H, W, 3) images and round back to uint8, as a published dataset would."""
    tensor = torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255
    out = attack.trigger(tensor, test_time=test_time).clamp(0, 1)
    return (out * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def poison_training_set(data: ImageData, attacks: list[DataPoisoningAttack], rng: np.random.Generator) -> PoisonedTrainingSet:
    """Poison ``data``'s training set with every attack, on disjoint examples, in the given order."""
    x, y = data.x_train.copy(), data.y_train.copy()
    source = np.full(len(y), CLEAN, dtype=np.int64)
    for index, attack in enumerate(attacks):
        candidates = attack.candidates(data.y_train)
        candidates = candidates[source[candidates] == CLEAN]
        count = attack.poison_count(len(y))
        if count > len(candidates):
            raise BenchbdError(
                f"{attack.name}: needs {count} examples to poison but only {len(candidates)} are eligible "
                f"(ratio {attack.ratio}, target {attack.target})"
            )
        chosen = np.sort(rng.choice(candidates, size=count, replace=False))
        x[chosen] = apply_trigger_uint8(attack, x[chosen])
        if attack.dirty_label:
            y[chosen] = attack.target
        source[chosen] = index
    return PoisonedTrainingSet(x, y, source)
