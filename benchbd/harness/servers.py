"""Simulated training servers for training-run defenses (RTTD's outsourced-training setting).

A client's job is the cell's training: its clean training set, model and profile. Each server continues the job
from a checkpoint for a number of steps. Benign servers run it honestly. How benign replicas of one sub-run differ
(``variation``), as real replicas do by non-deterministic kernels and, unless the client fixes it, by data order:

- ``"kernels"``: every server draws the client's batch order and augmentation, and perturbs the checkpoint it
  receives by relative noise of ``kernel_noise`` per weight, a stand-in for the rounding differences of
  non-deterministic GPU kernels, which training then amplifies (on a CPU, replicas are otherwise bit-identical);
- ``"data-order"``: every server also draws its own batch order and augmentation offsets (the client does not fix
  the data loader's seed), a larger spread.

A malicious server inserts its own backdoor (RTTD's threat model): its copies of the cell's attacks are prepared
with its own random draws (new patterns where an attack draws one, e.g. blend-random, WaNet, blind), and it runs
every step on its own poisoned copy of the training set (data-poisoning attacks, on examples it chose itself) and
with the poisoned loss computation (training-code attacks). Two malicious servers running one identical backdoor
would be replicas of one training process, as alike as a benign pair.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from benchbd.attacks import Attack, DataPoisoningAttack
from benchbd.data.images import ImageData
from benchbd.harness.poisoning import poison_training_set, poisoned_loss
from benchbd.models import ImageClassifier
from benchbd.params import Plugin, check
from benchbd.training.trainer import Checkpoint, LossComputation, StepInfo, Trainer, TrainingRun, cross_entropy_loss


def down_weighted_loss(poisoned: np.ndarray, ratio: float, device: torch.device) -> LossComputation:
    """Cross-entropy with the poisoned examples' terms scaled by ``ratio``: their learning rate is ``ratio``
    times the clean examples' (RTTD figure 3's adaptive attacker)."""
    weights = torch.where(torch.from_numpy(poisoned).to(device), ratio, 1.0)

    def loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
        assert step.index is not None, "the trainer passes batch indices"
        return (F.cross_entropy(model(x), y, reduction="none") * weights[step.index]).mean()

    return loss


Variation = Literal["kernels", "data-order"]


@dataclass
class Simulation(Plugin):
    """The simulated servers (RTTD section 3's outsourced training). ``servers`` servers, of which
    ``round(servers × malicious_fraction)`` (at least one, at most all but one) run the cell's attacks on their
    own poisoned examples. ``backdoor_lr_ratio`` < 1 is RTTD's adaptive attacker (figure 3): the malicious
    servers scale their poisoned examples' loss, hence their learning rate, by it. ``replica_variation`` and
    ``kernel_noise``: how benign replicas differ (:mod:`benchbd.harness.servers`)."""

    name: ClassVar[str] = "simulation"

    servers: int = 4
    malicious_fraction: float = 0.5
    backdoor_lr_ratio: float = 1.0
    replica_variation: Variation = "kernels"
    kernel_noise: float = 1e-4

    def __post_init__(self) -> None:
        check(self.servers >= 2, self.name, "servers", "at least 2", self.servers)
        check(0 < self.malicious_fraction < 1, self.name, "malicious_fraction", "in (0, 1)", self.malicious_fraction)
        check(0 < self.backdoor_lr_ratio <= 1, self.name, "backdoor_lr_ratio", "in (0, 1]", self.backdoor_lr_ratio)
        check(0 <= self.kernel_noise < 1, self.name, "kernel_noise", "in [0, 1)", self.kernel_noise)

    @property
    def malicious_count(self) -> int:
        return min(max(round(self.servers * self.malicious_fraction), 1), self.servers - 1)


@dataclass
class SimulatedServer:
    """One server: continues the client's job on its own training set with its own loss computation; the
    checkpoint it receives is perturbed by relative noise ``kernel_noise`` drawn from ``noise``."""

    trainer: Trainer
    new_model: Callable[[], ImageClassifier]
    x: np.ndarray
    y: np.ndarray
    loss_computation: LossComputation
    label: str
    kernel_noise: float
    noise: torch.Generator
    _run: TrainingRun | None = None

    def run(self, checkpoint: Checkpoint, steps: int) -> Checkpoint:
        if self._run is None:
            self._run = TrainingRun(self.trainer, self.new_model(), self.x, self.y, label=self.label, loss_computation=self.loss_computation)
        self._run.restore(checkpoint)
        if self.kernel_noise:
            with torch.no_grad():
                for parameter in self._run.model.parameters():
                    noise = torch.randn(parameter.shape, generator=self.noise).to(parameter.device)
                    parameter.mul_(1 + self.kernel_noise * noise)
        self._run.advance(steps)
        return self._run.checkpoint()


def build_servers(
    data: ImageData,
    new_attacks: Callable[[], list[Attack]],
    malicious: np.ndarray,
    make_trainer: Callable[[int], Trainer],
    new_model: Callable[[], ImageClassifier],
    backdoor_lr_ratio: float,
    rng: np.random.Generator,
    *,
    job_seed: int,
    variation: Variation = "kernels",
    kernel_noise: float = 1e-4,
) -> list[SimulatedServer]:
    """A server per entry of ``malicious`` (True: runs attack objects of its own from ``new_attacks``, with targets
    assigned, prepared here with the server's own draws), varying as ``variation`` says."""
    servers = []
    for i, is_malicious in enumerate(malicious):
        seed = int(rng.integers(2**31))
        trainer = make_trainer(seed if variation == "data-order" else job_seed)
        x, y, loss = data.x_train, data.y_train, cross_entropy_loss
        if is_malicious:
            own, draws = new_attacks(), np.random.default_rng(seed)  # one stream: triggers, then the poisoned examples
            for attack in own:
                attack.prepare(data.x_train, data.y_train, data.num_classes, draws)
            data_attacks = [a for a in own if isinstance(a, DataPoisoningAttack)]
            if data_attacks:
                poisoned = poison_training_set(data, data_attacks, draws)
                x, y = poisoned.x, poisoned.y
                if backdoor_lr_ratio < 1:
                    loss = down_weighted_loss(poisoned.mask, backdoor_lr_ratio, trainer.device)
            loss = poisoned_loss(own, loss)
        noise = torch.Generator().manual_seed(seed)
        servers.append(SimulatedServer(trainer, new_model, x, y, loss, f"server {i + 1}", kernel_noise, noise))
    return servers
