"""The trainer: the whole dataset resident on the device as uint8 tensors, batched augmentation, bf16 autocast.

No per-sample Python transforms and no DataLoader: batches are index slices of device tensors, converted to
float and shifted in one batched operation. Hooks for the methods that need them:

- ``loss_computation`` replaces the loss (the blind code-poisoning attack does);
- ``callbacks`` run after every epoch (BaDLoss and ABL read every example's loss there with
  :meth:`Trainer.per_example_loss`, one batched inference pass);
- an ``observer`` of a :class:`TrainingRun` wraps every optimiser step (a profiler; without one, nothing is timed
  and the device is never synchronised).
"""

from __future__ import annotations

import copy
import math
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Protocol, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchbd.errors import BenchbdError
from benchbd.training.profiles import TrainingProfile


@dataclass(frozen=True)
class StepInfo:
    """Where training is when the loss is computed: epoch (0-based) of ``epochs``, batch of ``batches``;
    ``index``: the batch's positions in the training set (per-example weights, e.g. a malicious server's);
    ``seed``: the training's seed (its trainer's), for a loss that draws random numbers (PGD's random start): models
    of two seeds draw differently, and a run restored from a checkpoint draws as the run that made it."""

    epoch: int
    epochs: int
    batch: int
    batches: int
    index: torch.Tensor | None = None
    seed: int = 0


class LossComputation(Protocol):
    """Computes the scalar training loss of a batch (x: float images in [0, 1], y: labels)."""

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor: ...


class StepObserver(Protocol):
    """Watches the optimiser steps of a :class:`TrainingRun`, e.g. the profiler of ``benchmarks/blind_overhead.py``."""

    def step(self, info: StepInfo) -> AbstractContextManager[object]:
        """A context entered just before the step's loss computation and left just after its optimiser step."""
        ...


def cross_entropy_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
    """The honest loss computation."""
    return F.cross_entropy(model(x), y)


@dataclass
class EpochEnd:
    """Passed to epoch callbacks after each epoch; ``train_loss`` is the epoch's mean batch loss."""

    epoch: int
    epochs: int
    model: nn.Module
    train_loss: float
    trainer: Trainer


EpochCallback = Callable[[EpochEnd], None]


class TrainingDiverged(BenchbdError):
    """The loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """``auto`` takes the GPU when there is one; asking for ``cuda`` without one is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BenchbdError("--device cuda asked for, but torch sees no CUDA device (use --device cpu or auto)")
    if name != "cpu" and not name.startswith("cuda"):
        raise BenchbdError(f"unknown device '{name}'; valid: auto, cpu, cuda, cuda:N")
    return torch.device(name)


def random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image of (N, C, H, W) by its own random offset in [-max_shift, max_shift], zero fill.

    One gather over the padded batch; the result is channels_last.
    """
    n, _, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4).permute(0, 2, 3, 1)
    offsets = torch.randint(0, 2 * max_shift + 1, (2, n), generator=generator, device=generator.device).to(x.device)
    rows = (torch.arange(h, device=x.device)[None, :] + offsets[0][:, None])[:, :, None]
    cols = (torch.arange(w, device=x.device)[None, :] + offsets[1][:, None])[:, None, :]
    batch = torch.arange(n, device=x.device)[:, None, None]
    return padded[batch, rows, cols].permute(0, 3, 1, 2)


class Trainer:
    """Trains and evaluates models with one :class:`TrainingProfile` on one device, deterministically per seed;
    forward passes under bfloat16 autocast where the profile's precision says (:meth:`TrainingProfile.uses_bf16`)."""

    def __init__(
        self,
        profile: TrainingProfile,
        device: torch.device,
        seed: int,
        on_epoch: Callable[[str, int, int], None] | None = None,
    ) -> None:
        self.profile = profile
        self.device = device
        self.seed = seed
        self.on_epoch = on_epoch
        self.use_bf16 = profile.uses_bf16(device.type)
        # Images per inference pass: a CPU's caches favour small passes (benchmarks/inference_batch.py).
        self.inference_batch = 256 if device.type == "cpu" else 1024

    # -- data -----------------------------------------------------------------------------------------------
    def images(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, 3) array -> uint8 (N, 3, H, W) tensor on the device (tensors pass through)."""
        if isinstance(x, torch.Tensor):
            return x.to(self.device)
        # NHWC in memory is channels_last: faster convolutions on CPU (oneDNN) and GPU alike.
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device).permute(0, 3, 1, 2)

    def place(self, model: nn.Module) -> nn.Module:
        """Move ``model`` to the device, in the channels_last layout of :meth:`images`: where every model this trainer
        trains sits, so one loaded from saved weights goes through here too."""
        return model.to(self.device, memory_format=torch.channels_last)

    def labels(self, y: np.ndarray | torch.Tensor) -> torch.Tensor:
        if isinstance(y, torch.Tensor):
            return y.to(self.device)
        return torch.from_numpy(np.asarray(y, dtype=np.int64)).to(self.device)

    def _autocast(self, enabled: bool = True) -> torch.autocast:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_bf16 and enabled)

    # -- training -------------------------------------------------------------------------------------------
    def fit(
        self,
        model: nn.Module,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        *,
        label: str = "training",
        loss_computation: LossComputation = cross_entropy_loss,
        callbacks: Sequence[EpochCallback] = (),
        epochs: int | None = None,
    ) -> nn.Module:
        """Train ``model`` in place on uint8 images ``x`` and labels ``y``; returns it in eval mode."""
        run = TrainingRun(self, model, x, y, label=label, loss_computation=loss_computation, callbacks=callbacks, epochs=epochs)
        run.advance(run.total_steps)
        return model

    def _optimizer(self, parameters: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        p = self.profile
        if p.optimizer == "adamw":
            return torch.optim.AdamW(parameters, lr=p.lr, weight_decay=p.weight_decay)
        return torch.optim.SGD(parameters, lr=p.lr, momentum=0.9, nesterov=True, weight_decay=p.weight_decay)

    def _scheduler(self, optimizer: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        if self.profile.schedule == "onecycle":
            return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=self.profile.lr, total_steps=steps)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)

    def epoch_order(self, epoch: int, n: int) -> torch.Tensor:
        """The order in which epoch ``epoch`` visits ``n`` training examples: a function of the seed and epoch alone."""
        generator = torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(n, generator=generator).to(self.device)

    def training_batch(self, x: torch.Tensor, index: torch.Tensor, step: int, generator: torch.Generator) -> torch.Tensor:
        """The float images of ``x[index]`` as optimiser step ``step`` (0-based) trains on them: in [0, 1], shifted by
        the profile's augmentation with offsets seeded by the seed and the step (``generator`` is reseeded)."""
        xb = x[index].float().div_(255)
        if self.profile.shift:
            generator.manual_seed(self.seed * 1_000_003 + step + 1)
            xb = random_shift(xb, self.profile.shift, generator)
        return xb

    # -- batched inference ----------------------------------------------------------------------------------
    @torch.no_grad()
    def _map(
        self,
        fn: Callable[[torch.Tensor, slice], torch.Tensor],
        x: np.ndarray | torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        float32: bool = False,
    ) -> torch.Tensor:
        x_dev = self.images(x)
        outputs = []
        for start in range(0, len(x_dev), self.inference_batch):
            part = slice(start, start + self.inference_batch)
            xb = x_dev[part].float().div_(255)
            if transform is not None:
                xb = transform(xb)
            with self._autocast(enabled=not float32):
                outputs.append(fn(xb, part).float())
        return torch.cat(outputs)

    def logits(
        self,
        model: nn.Module,
        x: np.ndarray | torch.Tensor,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        *,
        float32: bool = False,
    ) -> torch.Tensor:
        """Logits (as float32) for uint8 images, optionally after a float-space ``transform`` (a trigger).
        ``float32=True`` computes them in float32 whatever the profile's precision: for measurements that compare
        models, which bf16 rounding would blur."""
        model.eval()
        return self._map(lambda xb, _: model(xb), x, transform, float32=float32)

    def predict(
        self, model: nn.Module, x: np.ndarray | torch.Tensor, transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Predicted classes for uint8 images, optionally after a float-space ``transform`` (a trigger)."""
        return self.logits(model, x, transform).argmax(1)

    def per_example_loss(self, model: nn.Module, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor) -> np.ndarray:
        """Cross-entropy of every example, one batched inference pass in eval mode."""
        model.eval()
        y_dev = self.labels(y)
        losses = self._map(lambda xb, part: F.cross_entropy(model(xb).float(), y_dev[part], reduction="none"), x)
        return losses.cpu().numpy()

    def features(self, model: nn.Module, x: np.ndarray | torch.Tensor, *, float32: bool = False) -> np.ndarray:
        """Penultimate activations (``model.features``) of every example; ``float32`` as in :meth:`logits`."""
        model.eval()
        return self._map(lambda xb, _: model.features(xb), x, float32=float32).cpu().numpy()


@dataclass
class Checkpoint:
    """A training run's whole state after ``step`` optimiser steps: what an outsourcing client hands a server so
    that it continues the run (RTTD's sub-runs), and what it gets back."""

    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]


class TrainingRun:
    """One training run in progress, advanced a number of steps at a time; :meth:`Trainer.fit` runs it whole.

    The data order of an epoch and the augmentation offsets of a step depend only on the trainer's seed and the
    epoch or step, so a run restored from a :class:`Checkpoint` continues as the run that made it would have, unless
    the restoring run has another seed (a replica that sees the data in another order).
    """

    def __init__(
        self,
        trainer: Trainer,
        model: nn.Module,
        x: np.ndarray | torch.Tensor,
        y: np.ndarray | torch.Tensor,
        *,
        label: str = "training",
        loss_computation: LossComputation = cross_entropy_loss,
        callbacks: Sequence[EpochCallback] = (),
        epochs: int | None = None,
        observer: StepObserver | None = None,
    ) -> None:
        self.trainer = trainer
        self.model = model
        self.label = label
        self.loss_computation = loss_computation
        self.callbacks = callbacks
        self.observer = observer
        self.epochs = epochs or trainer.profile.epochs
        self.x, self.y = trainer.images(x), trainer.labels(y)
        self.n = len(self.y)
        if self.n == 0:
            raise BenchbdError(f"{label}: the training set is empty")
        trainer.place(model)
        self.batch_size = trainer.profile.batch_size
        self.batches = math.ceil(self.n / self.batch_size)
        self.total_steps = self.epochs * self.batches
        self.optimizer = trainer._optimizer(model.parameters())
        self.scheduler = trainer._scheduler(self.optimizer, self.total_steps)
        self.step = 0
        self._order: torch.Tensor | None = None
        self._augment = torch.Generator(device=trainer.device)
        self._loss_sum = torch.zeros((), device=trainer.device)

    def advance(self, steps: int) -> None:
        """Run the next ``steps`` optimiser steps (fewer if the run ends first); the model is left in eval mode."""
        trainer = self.trainer
        end = min(self.step + steps, self.total_steps)
        while self.step < end:
            epoch, b = divmod(self.step, self.batches)
            if b == 0 or self._order is None:
                self._order = trainer.epoch_order(epoch, self.n)
            if b == 0:
                self._loss_sum.zero_()
            self.model.train()
            index = self._order[b * self.batch_size : (b + 1) * self.batch_size]
            xb = trainer.training_batch(self.x, index, self.step, self._augment)
            info = StepInfo(epoch, self.epochs, b, self.batches, index, trainer.seed)
            with nullcontext() if self.observer is None else self.observer.step(info):
                with trainer._autocast():
                    loss = self.loss_computation(self.model, xb, self.y[index], info)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                self.scheduler.step()
            self._loss_sum += loss.detach().float()
            self.step += 1
            if b == self.batches - 1:
                self._end_epoch(epoch)
        self.model.eval()

    def _end_epoch(self, epoch: int) -> None:
        mean_loss = float(self._loss_sum) / self.batches
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"{self.label}: training diverged (loss {mean_loss}) in epoch {epoch + 1}")
        self.model.eval()
        for callback in self.callbacks:
            callback(EpochEnd(epoch, self.epochs, self.model, mean_loss, self.trainer))
        if self.trainer.on_epoch:
            self.trainer.on_epoch(self.label, epoch + 1, self.epochs)

    def checkpoint(self) -> Checkpoint:
        """A copy of the run's state now."""
        return Checkpoint(
            step=self.step,
            model={k: v.detach().clone() for k, v in self.model.state_dict().items()},
            optimizer=copy.deepcopy(self.optimizer.state_dict()),
            scheduler=copy.deepcopy(self.scheduler.state_dict()),
        )

    def restore(self, checkpoint: Checkpoint) -> None:
        """Continue from ``checkpoint`` (made by a run of the same model, profile and training-set size)."""
        self.model.load_state_dict(checkpoint.model)
        self.optimizer.load_state_dict(copy.deepcopy(checkpoint.optimizer))
        self.scheduler.load_state_dict(copy.deepcopy(checkpoint.scheduler))
        self.step = checkpoint.step
        self._order = None
