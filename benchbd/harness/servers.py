"""Simulated training servers for training-run defenses (RTTD's outsourced-training setting).

A client's job is the cell's training: its clean training set, model and profile. Each server continues the job
from a checkpoint for a number of steps. Benign servers run it honestly; they differ from each other only by
their seed, i.e. the order in which they draw batches and their augmentation offsets (real replicas differ by
that and by non-deterministic kernels). A malicious server runs every step on its own poisoned copy of the
training set (the cell's data-poisoning attacks on examples it chose itself) and with the cell's poisoned loss
computation (training-code attacks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchbd.attacks import Attack, DataPoisoningAttack, TrainingCodeAttack
from benchbd.data.images import ImageData
from benchbd.harness.poisoning import poison_training_set
from benchbd.models import ImageClassifier
from benchbd.training.trainer import Checkpoint, LossComputation, StepInfo, Trainer, TrainingRun, cross_entropy_loss


def down_weighted_loss(poisoned: np.ndarray, ratio: float, device: torch.device) -> LossComputation:
    """Cross-entropy with the poisoned examples' terms scaled by ``ratio``: their learning rate is ``ratio``
    times the clean examples' (RTTD figure 3's adaptive attacker)."""
    weights = torch.where(torch.from_numpy(poisoned).to(device), ratio, 1.0)

    def loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
        assert step.index is not None, "the trainer passes batch indices"
        return (F.cross_entropy(model(x), y, reduction="none") * weights[step.index]).mean()

    return loss


@dataclass
class SimulatedServer:
    """One server: continues the client's job on its own training set with its own loss computation and seed."""

    trainer: Trainer
    new_model: Callable[[], ImageClassifier]
    x: np.ndarray
    y: np.ndarray
    loss_computation: LossComputation
    label: str
    _run: TrainingRun | None = None

    def run(self, checkpoint: Checkpoint, steps: int) -> Checkpoint:
        if self._run is None:
            self._run = TrainingRun(self.trainer, self.new_model(), self.x, self.y, label=self.label, loss_computation=self.loss_computation)
        self._run.restore(checkpoint)
        self._run.advance(steps)
        return self._run.checkpoint()


def build_servers(
    data: ImageData,
    attacks: list[Attack],
    malicious: np.ndarray,
    make_trainer: Callable[[int], Trainer],
    new_model: Callable[[], ImageClassifier],
    backdoor_lr_ratio: float,
    rng: np.random.Generator,
) -> list[SimulatedServer]:
    """A server per entry of ``malicious`` (True: runs ``attacks``), each with its own seed."""
    servers = []
    for i, is_malicious in enumerate(malicious):
        seed = int(rng.integers(2**31))
        trainer = make_trainer(seed)
        x, y, loss = data.x_train, data.y_train, cross_entropy_loss
        if is_malicious:
            data_attacks = [a for a in attacks if isinstance(a, DataPoisoningAttack)]
            if data_attacks:
                poisoned = poison_training_set(data, data_attacks, np.random.default_rng(seed))
                x, y = poisoned.x, poisoned.y
                if backdoor_lr_ratio < 1:
                    loss = down_weighted_loss(poisoned.mask, backdoor_lr_ratio, trainer.device)
            for attack in attacks:
                if isinstance(attack, TrainingCodeAttack):
                    loss = attack.loss_computation(loss)
        servers.append(SimulatedServer(trainer, new_model, x, y, loss, label=f"server {i + 1}"))
    return servers
