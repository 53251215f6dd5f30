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
configurations use ``loss+``, which cost 2 to 6 points more clean accuracy on small synth-signs.

Batch norm (section 4.1): the forward passes on synthesised inputs leave the running statistics alone (they are
what the test-time model normalises with) but, like the main pass, normalise by their own batch: the effect of
momentum 0. The other way the paper names, switching the layers to eval mode, normalises by running statistics
that lag far behind the weights early in training; on small synth-signs (fast profile, attack from the start)
MGDA then learned no backdoor (3% ASR; 44% and 34 points of clean accuracy lost with ``loss+``), against 99.8%
ASR and no loss of clean accuracy with momentum 0.

Schedule (section 4.1): ``always``; ``loss-below``, from the epoch after one whose mean main-task loss fell below
``loss_threshold`` (the attack code sees the loss flatten and knows training is about to end); ``last-epochs``.

Neural Cleanse evasion (section 6.1): a mask m* and pattern p* are kept next to the model. Each active batch,
one Adam step on them (Neural Cleanse's optimiser, model untouched) lowers ℓ_NC¹ = CE(θ(μ_NC(x)), y*) +
``nc_mask_cost`` · ‖m*‖₁ with μ_NC(x) = (1 − m*) x + m* p* and the 1:1000 ratio of the Neural Cleanse code; the
third task ℓ_NC² = CE(θ(μ_NC(x)), y), gradients on the model only, teaches the model to ignore the small trigger
Neural Cleanse would find.

Overhead (appendix A) is measured as training runs, see :meth:`BlindAttack.stats`.
"""

from __future__ import annotations

import statistics
import time
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
from benchbd_builtins.attacks.mgda import NORMALIZATIONS, Normalization, gram_matrix, mgda_scales

Corner = Literal["top-left", "top-right", "bottom-left", "bottom-right"]
CORNERS: tuple[Corner, ...] = ("top-left", "top-right", "bottom-left", "bottom-right")
Labels = Literal["target", "next-class"]
Balance = Literal["mgda", "fixed"]
Schedule = Literal["always", "loss-below", "last-epochs"]
#: Neural Cleanse's optimiser settings (Wang et al. 2019, released code): Adam, betas (0.5, 0.9).
NC_BETAS = (0.5, 0.9)
MB = 2**20


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
        check(self.corner in CORNERS, self.name, "corner", f"one of {', '.join(CORNERS)}", self.corner)
        check(self.margin >= 0, self.name, "margin", ">= 0", self.margin)
        check(self.labels in ("target", "next-class"), self.name, "labels", "target or next-class", self.labels)
        check(self.balance in ("mgda", "fixed"), self.name, "balance", "mgda or fixed", self.balance)
        choices = ", ".join(NORMALIZATIONS)
        check(self.normalization in NORMALIZATIONS, self.name, "normalization", f"one of {choices}", self.normalization)
        check(self.mgda_every >= 1, self.name, "mgda_every", ">= 1", self.mgda_every)
        for weight in ("weight_main", "weight_evasion"):
            check(getattr(self, weight) >= 0, self.name, weight, ">= 0", getattr(self, weight))
        check(self.weight_backdoor > 0, self.name, "weight_backdoor", "> 0", self.weight_backdoor)
        check(self.nc_mask_cost >= 0, self.name, "nc_mask_cost", ">= 0", self.nc_mask_cost)
        check(self.nc_lr > 0, self.name, "nc_lr", "> 0", self.nc_lr)
        schedules = ("always", "loss-below", "last-epochs")
        check(self.schedule in schedules, self.name, "schedule", "always, loss-below or last-epochs", self.schedule)
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
        top = self.margin if self.corner.startswith("top") else x.shape[-2] - self.margin - size
        left = self.margin if self.corner.endswith("left") else x.shape[-1] - self.margin - size
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
        """Overhead and coefficients measured during the last training (empty before any)."""
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


class GraphMemory:
    """Bytes of the tensors autograd saves for backward during a block: the graph memory a forward pass adds."""

    def __init__(self) -> None:
        self.storages: dict[int, int] = {}

    @property
    def bytes(self) -> int:
        return sum(self.storages.values())

    def _pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        self.storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    @contextmanager
    def recording(self) -> Iterator[None]:
        with torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor):
            yield


@dataclass
class BatchRecord:
    """What one batch cost: whole-step seconds (call to next call) and peak CUDA memory over that interval."""

    active: bool
    step_seconds: float | None = None
    cuda_peak_bytes: int | None = None


class BlindLoss:
    """The poisoned loss computation of one training run (algorithm 1's COMPUTE_LOSS), with its measurements."""

    def __init__(self, attack: BlindAttack, honest: LossComputation) -> None:
        self.attack = attack
        self.honest = honest
        self.switched_on = attack.schedule == "always"
        self.epoch_losses: list[float] = []
        self.epoch = 0
        self.scales: np.ndarray | None = None
        self.solves = 0
        self.attacked = 0
        self.records: list[BatchRecord] = []
        self.started: float | None = None
        self.graph_bytes = {"clean": [], "attack": []}
        self.task_gradient_bytes = 0
        self.seconds = {"forward_passes": 0.0, "mgda": 0.0, "nc_search": 0.0}
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
            if self.epoch_losses and statistics.fmean(self.epoch_losses) < attack.loss_threshold:
                self.switched_on = True
            self.epoch, self.epoch_losses = step.epoch, []
        return self.switched_on

    # -- measurement ------------------------------------------------------------------------------------------
    def _close_previous_batch(self, x: torch.Tensor, step: StepInfo) -> None:
        """Charge the time (and CUDA peak) since the previous call to the previous batch; skip epoch boundaries."""
        if x.is_cuda:
            torch.cuda.synchronize(x.device)
        now = time.perf_counter()
        if self.records and self.started is not None and step.batch > 0:
            record = self.records[-1]
            record.step_seconds = now - self.started
            if x.is_cuda:
                record.cuda_peak_bytes = torch.cuda.max_memory_allocated(x.device)
        if x.is_cuda:
            torch.cuda.reset_peak_memory_stats(x.device)
        self.started = now

    def _timed(self, part: str, since: float, device: torch.device) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        now = time.perf_counter()
        self.seconds[part] += now - since
        return now

    # -- the loss -------------------------------------------------------------------------------------------
    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
        self._close_previous_batch(x, step)
        active = self.active(step)
        self.records.append(BatchRecord(active))
        memory = GraphMemory()
        started = time.perf_counter()
        with memory.recording():
            main = self.honest(model, x, y, step)
        self.epoch_losses.append(float(main.detach()))
        self.graph_bytes["clean"].append(memory.bytes)
        if not active:
            return main
        self.attacked += 1
        attack = self.attack
        x_backdoor, y_backdoor = attack.trigger(x), attack.backdoor_labels(y)
        with memory.recording(), frozen_batchnorm(model):
            losses = [main, F.cross_entropy(model(x_backdoor), y_backdoor)]
        started = self._timed("forward_passes", started, x.device)
        if attack.evade_neural_cleanse:
            x_nc = self._neural_cleanse_inputs(model, x, y_backdoor)
            started = self._timed("nc_search", started, x.device)
            with memory.recording(), frozen_batchnorm(model):
                losses.append(F.cross_entropy(model(x_nc), y))
            started = self._timed("forward_passes", started, x.device)
        scales = self._scales(model, losses)
        self._timed("mgda", started, x.device)
        self.graph_bytes["attack"].append(memory.bytes)
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
            self.task_gradient_bytes = sum(g.numel() * g.element_size() for task in grads for g in task)
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
        """Per-batch cost of attacked batches against clean ones, graph memory, and the mean coefficients.

        ``seconds_per_batch``: median whole-step time (loss, backward, optimiser step) of attacked batches and,
        where the schedule left some, of clean batches of the same run; ``time_overhead`` is their ratio.
        ``graph_memory_mb``: bytes autograd holds for backward, the clean forward pass against all of an
        attacked batch's forward passes (measured on any device); ``task_gradients_mb``: MGDA's per-task
        gradient copies. ``cuda_peak_memory_mb``: peak allocated memory per batch (CUDA only).
        """
        attacked = [r for r in self.records if r.active]
        if not attacked:
            return {"attacked_batches": 0, "clean_batches": len(self.records)}
        clean = [r for r in self.records if not r.active]

        def median(records: list[BatchRecord], key: str, unit: float = 1.0) -> float | None:
            values = [getattr(r, key) for r in records if getattr(r, key) is not None]
            return statistics.median(values) / unit if values else None

        seconds = {"attacked": median(attacked, "step_seconds"), "clean": median(clean, "step_seconds")}
        graph = {
            "attacked": statistics.fmean(self.graph_bytes["attack"]) / MB,
            "clean": statistics.fmean(self.graph_bytes["clean"]) / MB,
        }
        result: dict[str, object] = {
            "balance": self.attack.balance,
            "attacked_batches": len(attacked),
            "clean_batches": len(clean),
            "mean_scales": dict(zip(self.tasks, (self.scale_sums[: len(self.tasks)] / len(attacked)).round(4).tolist())),
            "seconds_per_batch": seconds,
            "time_overhead": seconds["attacked"] / seconds["clean"] if seconds["attacked"] and seconds["clean"] else None,
            "loss_seconds_per_attacked_batch": {k: v / len(attacked) for k, v in self.seconds.items()},
            "graph_memory_mb": graph,
            "graph_memory_overhead": graph["attacked"] / graph["clean"] if graph["clean"] else None,
            "task_gradients_mb": self.task_gradient_bytes / MB,
        }
        if self.attack.balance == "mgda":
            result["mgda_solves"] = self.solves
        cuda = {"attacked": median(attacked, "cuda_peak_bytes", MB), "clean": median(clean, "cuda_peak_bytes", MB)}
        if cuda["attacked"] is not None:
            result["cuda_peak_memory_mb"] = cuda
        return result


@hookimpl
def benchbd_attacks() -> list[type[TrainingCodeAttack]]:
    return [BlindAttack]
