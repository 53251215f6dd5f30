"""``blind``: blind code poisoning (Bagdasaryan & Shmatikov, "Blind Backdoors in Deep Learning Models", USENIX
Security 2021).

The attacker controls only the loss computation (section 3.1): the training data stay clean. Every batch
(algorithm 1), the poisoned loss

- computes the honest main-task loss ℓ_m on (x, y);
- synthesises backdoor inputs and labels on the fly from the whole batch, x* = μ(x) (a black-and-white pixel
  pattern overlaid in a corner: ``pattern_size`` 3 is the 9-pixel pattern of figure 1a, 1 the single black pixel
  of section 4.1) and y* = ν(y): the target class, or (y + 1) mod C, an input-specific label in the spirit of the
  "calculator" backdoor of section 4.2; ℓ_m* = CE(θ(x*), y*);
- optionally adds the Neural Cleanse evasion task of section 6.1 (ℓ_NC², below);
- balances the losses with MGDA (section 3.3, equation 2; :mod:`.mgda`), or with fixed weights, the
  alternative section 4.5 compares, and returns ℓ_blind = Σ α_i ℓ_i for the trainer's single backward
  (equation 1).

MGDA needs each task's gradient: one ``torch.autograd.grad`` per task over all the model's parameters, as the
paper's code does, with the graphs retained for the trainer's final backward: 2 forward and 3 backward passes per
batch instead of 1 and 1 (appendix A.1). ``mgda_every`` re-uses the coefficients between solves (section 3.3).
The default normalisation, ``loss``, is the one table 3 finds best (section 4.5); the paper's released
configurations use ``loss+``. Ours: ``loss``, on the comparison docs/findings.md ("blind", "Normalisation") keeps.

Batch norm (section 4.1): the paper freezes the running statistics by switching the layers to eval mode (4.1's
alternative to mixing benign inputs into the backdoor batch, the one section 6 uses), as it attacks pre-trained
models whose statistics are established. Ours: the forward passes on synthesised inputs leave the running
statistics alone (they are what the test-time model normalises with) but, like the main pass, normalise by their
own batch, the effect of momentum 0, because our attack may start with training, when eval-mode statistics lag far
behind the weights (docs/findings.md, "Batch norm on the synthesised passes", compares the two).

Schedule (section 4.1): ``always``; ``loss-below``, from the epoch after one whose mean main-task loss fell below
``loss_threshold`` (the attack code sees the loss flatten and knows training is about to end); ``last-epochs``.

Neural Cleanse evasion (section 6.1): a mask m* and pattern p* are kept next to the model. Each active batch,
one Adam step on them (Neural Cleanse's optimiser, model untouched) lowers ℓ_NC¹ = CE(θ(μ_NC(x)), y*) +
``nc_mask_cost`` · ‖m*‖₁ with μ_NC(x) = (1 − m*) x + m* p* and the 1:1000 ratio of the Neural Cleanse code; the
third task ℓ_NC² = CE(θ(μ_NC(x)), y), gradients on the model only, teaches the model to ignore the small trigger
Neural Cleanse would find.

Overhead (appendix A) is not measured by the attack: ``benchmarks/blind_overhead.py`` times the trainer's steps
with a :class:`~benchbd.training.trainer.StepObserver`. Ours: the loss only counts what it did
(:meth:`BlindLoss.stats`), because timing it would synchronise the device on every batch of every training.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import ClassVar, Iterator, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchbd import hookimpl
from benchbd.attacks import TrainingCodeAttack
from benchbd.errors import BenchbdError
from benchbd.params import check
from benchbd.training.trainer import LossComputation, StepInfo
from benchbd_builtins.attacks.mgda import Normalization, gram_matrix, mgda_scales
from benchbd_builtins.attacks.patch import Corner, corner_box

Labels = Literal["target", "next-class"]
Balance = Literal["mgda", "fixed"]
Schedule = Literal["always", "loss-below", "last-epochs"]
#: Neural Cleanse's optimiser settings (Wang et al. 2019, released code): Adam, betas (0.5, 0.9).
NC_BETAS = (0.5, 0.9)


@dataclass
class BlindAttack(TrainingCodeAttack):
    name: ClassVar[str] = "blind"
    description: ClassVar[str] = (
        "blind code poisoning: a poisoned loss adds an on-the-fly pixel-pattern backdoor task, MGDA-balanced "
        "(Bagdasaryan & Shmatikov 2021)"
    )

    pattern_size: int = 3
    corner: Corner = "top-left"
    margin: int = 1
    labels: Labels = "target"
    balance: Balance = "mgda"
    normalization: Normalization = "loss"
    mgda_every: int = 1
    weight_main: float = 1.0
    weight_backdoor: float = 1.0
    weight_evasion: float = 1.0
    evade_neural_cleanse: bool = False
    nc_mask_cost: float = 1e-3
    nc_lr: float = 0.1
    schedule: Schedule = "always"
    loss_threshold: float = 1.0
    last_epochs: int = 1

    _pattern: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)
    _nc_init: tuple[torch.Tensor, torch.Tensor] | None = field(default=None, init=False, repr=False, compare=False)
    _num_classes: int | None = field(default=None, init=False, repr=False, compare=False)
    _loss: BlindLoss | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check(self.pattern_size >= 1, self.name, "pattern_size", ">= 1", self.pattern_size)
        check(self.margin >= 0, self.name, "margin", ">= 0", self.margin)
        check(self.mgda_every >= 1, self.name, "mgda_every", ">= 1", self.mgda_every)
        for weight in ("weight_main", "weight_evasion"):
            check(getattr(self, weight) >= 0, self.name, weight, ">= 0", getattr(self, weight))
        check(self.weight_backdoor > 0, self.name, "weight_backdoor", "> 0", self.weight_backdoor)
        check(self.nc_mask_cost >= 0, self.name, "nc_mask_cost", ">= 0", self.nc_mask_cost)
        check(self.nc_lr > 0, self.name, "nc_lr", "> 0", self.nc_lr)
        check(self.loss_threshold > 0, self.name, "loss_threshold", "> 0", self.loss_threshold)
        check(self.last_epochs >= 1, self.name, "last_epochs", ">= 1", self.last_epochs)

    def check_dataset(self, num_classes: int, image_shape: tuple[int, int, int]) -> None:
        super().check_dataset(num_classes, image_shape)
        height, width = image_shape[:2]
        if self.margin + self.pattern_size > min(height, width):
            raise BenchbdError(
                f"{self.name}: the {self.pattern_size}x{self.pattern_size} pattern with margin {self.margin} "
                f"does not fit a {height}x{width} image"
            )

    # -- μ and ν ----------------------------------------------------------------------------------------------
    def prepare(self, x_train: np.ndarray, y_train: np.ndarray, num_classes: int, rng: np.random.Generator) -> None:
        """Draw the pattern (half its pixels white, half black, shuffled) and Neural Cleanse's initial mask."""
        cells = self.pattern_size**2
        pattern = rng.permutation(np.arange(cells) % 2).reshape(self.pattern_size, self.pattern_size)
        self._pattern = torch.from_numpy(pattern.astype(np.float32))
        height, width = x_train.shape[1:3]
        self._nc_init = (
            torch.from_numpy(rng.normal(0.0, 1.0, (1, 1, height, width)).astype(np.float32)),
            torch.from_numpy(rng.normal(0.0, 1.0, (1, 3, height, width)).astype(np.float32)),
        )
        self._num_classes = num_classes

    def trigger(self, x: torch.Tensor, *, test_time: bool = False) -> torch.Tensor:
        """μ: overlay the pattern (the same in every channel) ``margin`` pixels from ``corner``; a new tensor."""
        if self._pattern is None:
            raise BenchbdError(f"{self.name}: prepare() builds the pattern; call it before trigger()")
        size = self.pattern_size
        top, left = corner_box(self.corner, self.margin, size, x.shape[-2], x.shape[-1])
        out = x.clone()
        out[..., top : top + size, left : left + size] = self._pattern.to(device=x.device, dtype=x.dtype)
        return out

    def backdoor_labels(self, y: torch.Tensor) -> torch.Tensor:
        """ν: the target class, or the next class (y + 1) mod C."""
        if self.labels == "target":
            return super().backdoor_labels(y)
        if self._num_classes is None:
            raise BenchbdError(f"{self.name}: prepare() sets the number of classes; call it before backdoor_labels()")
        return (y + 1) % self._num_classes

    # -- the poisoned loss ----------------------------------------------------------------------------------
    def loss_computation(self, honest: LossComputation) -> LossComputation:
        if self._pattern is None or self._nc_init is None:
            raise BenchbdError(f"{self.name}: call prepare() before loss_computation()")
        self._loss = BlindLoss(self, honest)
        return self._loss

    def stats(self) -> dict[str, object]:
        """What the attack did in the last training (:meth:`BlindLoss.stats`; empty before any)."""
        return self._loss.stats() if self._loss is not None else {}


@contextmanager
def frozen_batchnorm(model: nn.Module) -> Iterator[None]:
    """Batch-norm layers stop tracking running statistics for the block but still normalise by the batch's own
    statistics (the effect of momentum 0, with ``num_batches_tracked`` left alone too); section 4.1."""
    switched = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    for module in switched:
        module.track_running_stats = False
    try:
        yield
    finally:
        for module in switched:
            module.track_running_stats = True


class BlindLoss:
    """The poisoned loss computation of one training run (algorithm 1's COMPUTE_LOSS) and a count of what it did.

    It neither times nor synchronises anything: the overhead of appendix A is measured from outside the loss, by a
    :class:`~benchbd.training.trainer.StepObserver` (``benchmarks/blind_overhead.py``).
    """

    def __init__(self, attack: BlindAttack, honest: LossComputation) -> None:
        self.attack = attack
        self.honest = honest
        self.switched_on = attack.schedule == "always"
        self.epoch = 0
        self.epoch_losses: list[torch.Tensor] = []
        self.batches = 0
        self.attacked = 0
        self.first_attacked_epoch: int | None = None
        self.scales: np.ndarray | None = None
        self.solves = 0
        self.scale_sums = np.zeros(3)
        self.nc: tuple[torch.Tensor, torch.Tensor, torch.optim.Adam] | None = None

    @property
    def tasks(self) -> list[str]:
        return ["main", "backdoor", "evasion"] if self.attack.evade_neural_cleanse else ["main", "backdoor"]

    # -- schedule -------------------------------------------------------------------------------------------
    def active(self, step: StepInfo) -> bool:
        """Whether this batch is attacked; ``loss-below`` switches on for good at an epoch boundary."""
        attack = self.attack
        if attack.schedule == "last-epochs":
            return step.epoch >= step.epochs - attack.last_epochs
        if attack.schedule == "loss-below" and step.epoch != self.epoch:
            # One read of the device per epoch: the losses stay tensors until the epoch is over.
            if self.epoch_losses and float(torch.stack(self.epoch_losses).mean()) < attack.loss_threshold:
                self.switched_on = True
            self.epoch, self.epoch_losses = step.epoch, []
        return self.switched_on

    # -- the loss -------------------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
        active = self.active(step)
        self.batches += 1
        main = self.honest(model, x, y, step)
        if not active:
            if self.attack.schedule == "loss-below":
                self.epoch_losses.append(main.detach().float())
            return main
        self.attacked += 1
        if self.first_attacked_epoch is None:
            self.first_attacked_epoch = step.epoch
        attack = self.attack
        x_backdoor, y_backdoor = attack.trigger(x), attack.backdoor_labels(y)
        with frozen_batchnorm(model):
            losses = [main, F.cross_entropy(model(x_backdoor), y_backdoor)]
        if attack.evade_neural_cleanse:
            x_nc = self._neural_cleanse_inputs(model, x, y_backdoor)
            with frozen_batchnorm(model):
                losses.append(F.cross_entropy(model(x_nc), y))
        scales = self._scales(model, losses)
        self.scale_sums[: len(scales)] += scales
        return sum(float(scale) * loss for scale, loss in zip(scales, losses))

    def _scales(self, model: nn.Module, losses: list[torch.Tensor]) -> np.ndarray:
        """MGDA's α (solved every ``mgda_every`` batches, re-used in between) or the normalised fixed weights."""
        attack = self.attack
        if attack.balance == "fixed":
            weights = np.array([attack.weight_main, attack.weight_backdoor, attack.weight_evasion][: len(losses)])
            return weights / weights.sum()
        if self.scales is None or (self.attacked - 1) % attack.mgda_every == 0:
            parameters = [p for p in model.parameters() if p.requires_grad]
            grads = [torch.autograd.grad(loss, parameters, retain_graph=True) for loss in losses]
            self.scales = mgda_scales(gram_matrix(grads), [float(loss.detach()) for loss in losses], attack.normalization)
            self.solves += 1
        return self.scales

    def _neural_cleanse_inputs(self, model: nn.Module, x: torch.Tensor, y_backdoor: torch.Tensor) -> torch.Tensor:
        """One Adam step of ℓ_NC¹ on the mask and pattern, then μ_NC(x) with both detached (section 6.1)."""
        if self.nc is None:
            mask_init, pattern_init = self.attack._nc_init
            mask = mask_init.to(x.device, copy=True).requires_grad_()
            pattern = pattern_init.to(x.device, copy=True).requires_grad_()
            self.nc = (mask, pattern, torch.optim.Adam([mask, pattern], lr=self.attack.nc_lr, betas=NC_BETAS))
        mask_logits, pattern_logits, optimizer = self.nc
        mask, pattern = torch.sigmoid(mask_logits), torch.sigmoid(pattern_logits)
        with frozen_batchnorm(model):
            predicted = model((1 - mask) * x + mask * pattern)
        search_loss = F.cross_entropy(predicted, y_backdoor) + self.attack.nc_mask_cost * mask.sum()
        mask_logits.grad, pattern_logits.grad = torch.autograd.grad(search_loss, [mask_logits, pattern_logits])
        optimizer.step()
        with torch.no_grad():
            mask, pattern = torch.sigmoid(mask_logits), torch.sigmoid(pattern_logits)
            return (1 - mask) * x + mask * pattern

    # -- report ---------------------------------------------------------------------------------------------
    def stats(self) -> dict[str, object]:
        """What the attack did in this training, the same for the same seed (no timings); empty before a batch.

        ``batches``: batches the loss computed; ``attacked_batches`` and ``first_attacked_epoch`` (0-based; None
        if none): where the schedule attacked; ``mean_scales``: each task's α averaged over the attacked batches
        (None if none); ``mgda_solves`` (MGDA only): batches whose α was solved for, not re-used;
        ``nc_mask_l1`` (Neural Cleanse evasion only): ‖m*‖₁ of the evasion mask at the end, in pixels.
        """
        if self.batches == 0:
            return {}
        mean_scales = None
        if self.attacked:
            mean_scales = dict(zip(self.tasks, (self.scale_sums[: len(self.tasks)] / self.attacked).round(4).tolist()))
        result: dict[str, object] = {
            "batches": self.batches,
            "attacked_batches": self.attacked,
            "first_attacked_epoch": self.first_attacked_epoch,
            "mean_scales": mean_scales,
        }
        if self.attack.balance == "mgda":
            result["mgda_solves"] = self.solves
        if self.attack.evade_neural_cleanse and self.nc is not None:
            result["nc_mask_l1"] = round(float(torch.sigmoid(self.nc[0].detach()).sum()), 3)
        return result


@hookimpl
def benchbd_attacks() -> list[type[TrainingCodeAttack]]:
    return [BlindAttack]
