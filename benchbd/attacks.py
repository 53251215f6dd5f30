"""Attack base classes: what the harness asks of an attack plugin.

An attack is a dataclass whose fields are its parameters (validated as :class:`benchbd.params.Plugin` says). Its
base decides its kind:

- :class:`DataPoisoningAttack` changes training examples (and maybe their labels); the harness poisons the
  training set with it and records which examples it touched.
- :class:`TrainingCodeAttack` replaces the trainer's loss computation (the blind code-poisoning attack); it leaves
  the data untouched.

Both provide :meth:`Attack.trigger`, the test-time transformation used to measure attack success.
"""

from __future__ import annotations

import numbers
from abc import abstractmethod
from dataclasses import dataclass
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar, Literal

import numpy as np
import torch

from benchbd.errors import BenchbdError
from benchbd.params import Plugin, check, owner_name

if TYPE_CHECKING:
    from benchbd.training.trainer import LossComputation


@dataclass
class Attack(Plugin):
    """Common part of every attack.

    ``target`` is the attacker's class: ``None`` or a class index >= 0, checked against the dataset's classes by
    :meth:`check_dataset`; ``None`` lets the harness choose one (distinct per attack when several attacks share a
    training set, see :meth:`choose_target`). ``kind`` is set by the two bases; a plugin does not set it.
    """

    kind: ClassVar[Literal["data", "training-code"]]
    #: Paper defaults per dataset family, applied under the user's own values: {"gtsrb": {"ratio": 0.02}}.
    family_defaults: ClassVar[dict[str, dict[str, object]]] = {}
    #: Whether ``trigger(x, test_time=True)`` is stronger than the trigger as trained (BaDLoss's reference code
    #: doubles the blends and sinusoid); the harness then reports ASR both ways, ``asr`` and ``asr_boosted``.
    test_time_boost: ClassVar[bool] = False

    target: int | None = None

    def _check_base_fields(self) -> None:
        super()._check_base_fields()
        target = self.target
        valid = target is None or (isinstance(target, numbers.Integral) and target >= 0)
        check(valid, owner_name(type(self)), "target", "a class index >= 0 or none", target)

    def check_dataset(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        """Raise :class:`BenchbdError` if the attack cannot run on this dataset (default: target in range)."""
        if self.target is not None and not 0 <= self.target < num_classes:
            raise BenchbdError(f"{self.name}: parameter 'target' must be a class in [0, {num_classes}); got {self.target}")

    def choose_target(self, y_train: np.ndarray, num_classes: int, taken: set[int]) -> int:
        """The target class when the user gave none: the lowest class id not used by another attack."""
        free = [c for c in range(num_classes) if c not in taken]
        if not free:
            raise BenchbdError(f"{self.name}: no class left for a distinct target ({num_classes} classes)")
        return free[0]

    def prepare(self, x_train: np.ndarray, y_train: np.ndarray, num_classes: int, rng: np.random.Generator) -> None:
        """Build the trigger (random patterns, warping fields, surrogate models). Called once, before use."""

    @abstractmethod
    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        """Apply the trigger to a batch of float images in [0, 1], shape (N, 3, H, W), on any device."""

    def backdoor_labels(self, y: torch.Tensor) -> torch.Tensor:
        """The labels the attacker wants for triggered inputs whose true labels are ``y``."""
        assert self.target is not None, "target is chosen before use"
        return torch.full_like(y, self.target)

    def stats(self) -> dict[str, object]:
        """Small JSON-serialisable figures the attack measured about the one training it took part in (batches
        attacked, a perturbation's norm), stored with the record and beside the cached model. The same seed must
        give the same figures: no timings (measure those with a ``StepObserver``, benchmarks/blind_overhead.py)."""
        return {}


def float_images(x: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) images as float (N, 3, H, W) in [0, 1], the form ``trigger`` takes."""
    return torch.from_numpy(np.ascontiguousarray(x)).permute(0, 3, 1, 2).float() / 255


def uint8_images(x: torch.Tensor) -> np.ndarray:
    """Float (N, 3, H, W) images, clamped to [0, 1], rounded to uint8 (N, H, W, 3) as a published dataset would be."""
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def apply_trigger_uint8(attack: Attack, x: np.ndarray, *, test_time: bool = False) -> np.ndarray:
    """Apply ``attack.trigger`` to uint8 (N, H, W, 3) images and round back to uint8, as a published dataset would."""
    return uint8_images(attack.trigger(float_images(x), test_time=test_time))


@dataclass
class DataPoisoningAttack(Attack):
    """An attack that poisons a fraction ``ratio`` in (0, 1] of the training set (of its total size)."""

    kind: ClassVar[Literal["data"]] = "data"
    #: Dirty-label attacks relabel poisoned examples to the target; clean-label ones keep labels (sinusoid).
    dirty_label: ClassVar[bool] = True
    #: How many times the usual number of backdoor probes a loss-dynamics defender injects against this attack
    #: (BaDLoss section 5.1 triples them against the warping attack, whose poisoning ratio is high).
    probe_multiplier: ClassVar[int] = 1

    ratio: float = 0.01

    def _check_base_fields(self) -> None:
        super()._check_base_fields()
        check(0 < self.ratio <= 1, owner_name(type(self)), "ratio", "in (0, 1]", self.ratio)

    def candidates(self, y_train: np.ndarray) -> np.ndarray:
        """Indices of training examples this attack may poison: dirty label, every example not of the target."""
        return np.flatnonzero(y_train != self.target) if self.dirty_label else np.flatnonzero(y_train == self.target)

    @property
    def poison_fraction(self) -> float:
        """The share of the training set this attack changes (defenses may be told the expected total)."""
        return self.ratio

    def poison_count(self, n_train: int) -> int:
        """How many examples to poison: ``ratio`` of the whole training set."""
        return max(1, round(self.ratio * n_train))

    def extra_count(self, n_train: int) -> int:
        """How many examples besides the poisoned ones :meth:`poison` also changes, drawn from every example still
        available (WaNet's noise mode); the harness's eligibility check counts them. Default 0."""
        return 0

    def eligible(self, y: np.ndarray, available: np.ndarray) -> np.ndarray:
        """The candidates still ``available`` (a bool mask); an error when they are fewer than ``poison_count``
        (the harness asks before any training, of all the examples, and again when it poisons, with the examples
        the attacks before this one in the set took marked unavailable)."""
        candidates = self.candidates(y)
        candidates = candidates[available[candidates]]
        count = self.poison_count(len(y))
        if count > len(candidates):
            raise BenchbdError(
                f"{self.name}: needs {count} examples to poison but only {len(candidates)} are eligible "
                f"(ratio {self.ratio}, target {self.target}, {len(y)} training examples)"
            )
        return candidates

    def poison(self, x: np.ndarray, y: np.ndarray, available: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Poison, in place, ``poison_count`` examples drawn from the candidates still ``available`` (a bool mask);
        return the indices of every example changed. Override to change other examples too (WaNet's noise mode),
        and say how many in :meth:`extra_count`."""
        candidates = self.eligible(y, available)
        count = self.poison_count(len(y))
        chosen = np.sort(rng.choice(candidates, size=count, replace=False))
        x[chosen] = apply_trigger_uint8(self, x[chosen])
        if self.dirty_label:
            y[chosen] = self.target
        return chosen

    def probe(self, rng: np.random.Generator) -> DataPoisoningAttack:
        """A variant a defender would build to mimic this attack without knowing it (BaDLoss section 5.1). Keep
        ``target`` as it is, and the defender labels the probes with a class it draws; a variant whose trigger is
        crafted toward a class (an adversarial perturbation) sets ``target`` to that class, another than the
        attack's, and the probes are labelled with it."""
        raise NotImplementedError(f"{self.name} has no probe variant")


@dataclass
class TrainingCodeAttack(Attack):
    """An attack that poisons the training code, not the data: it wraps the trainer's loss computation.

    The harness passes the honest loss computation to :meth:`loss_computation` and trains with what it returns
    (Bagdasaryan & Shmatikov 2021, "Blind Backdoors in Deep Learning Models", section 3).
    """

    kind: ClassVar[Literal["training-code"]] = "training-code"

    @abstractmethod
    def loss_computation(self, honest: LossComputation) -> LossComputation:
        """The loss computation to train with, wrapping ``honest`` (the harness's, possibly itself wrapped)."""


def probe_multiplier(attacks: Sequence[Attack], single_attack: bool) -> int:
    """How many times BaDLoss's n probes per set a cell takes: the one data attack's ``probe_multiplier`` in the
    one-attack setting (section 5.1: three times as many against the warping attack), else 1."""
    data_attacks = [a for a in attacks if isinstance(a, DataPoisoningAttack)]
    return data_attacks[0].probe_multiplier if single_attack and len(data_attacks) == 1 else 1
