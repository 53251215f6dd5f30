"""TrainingRun: a job advanced in pieces, checkpointed and restored elsewhere, is the job run whole; a step
observer sees every step and changes none."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch

from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import StepInfo, Trainer, TrainingRun
from benchbd_builtins.models import small_cnn


def _data(n: int = 160) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 4, n)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return small_cnn(4)


def _parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


class StepLog:
    """A step observer that notes (epoch, batch) of each step and whether the model changed inside its context."""

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model
        self.steps: list[tuple[int, int, bool]] = []

    @contextmanager
    def step(self, info: StepInfo) -> Iterator[None]:
        before = _parameters(self.model)
        yield
        self.steps.append((info.epoch, info.batch, not torch.equal(before, _parameters(self.model))))


def test_resumed_run_equals_the_uninterrupted_run() -> None:
    """Both pieces are observed: the observer wraps each step's optimiser update and leaves the result alone."""
    x, y = _data()
    trainer = Trainer(PROFILES["fast"], torch.device("cpu"), seed=3)
    whole = trainer.fit(_model(0), x, y, epochs=2)

    models = _model(0), _model(1)  # another initialisation for the second piece: the checkpoint overrides it
    logs = StepLog(models[0]), StepLog(models[1])
    first = TrainingRun(trainer, models[0], x, y, epochs=2, observer=logs[0])
    first.advance(first.total_steps // 2 + 1)  # stop mid-epoch
    checkpoint = first.checkpoint()
    second = TrainingRun(trainer, models[1], x, y, epochs=2, observer=logs[1])
    second.restore(checkpoint)
    second.advance(second.total_steps)

    assert second.step == second.total_steps == 2 * 3
    assert torch.allclose(_parameters(whole), _parameters(second.model), atol=1e-6)
    assert logs[0].steps == [(0, 0, True), (0, 1, True), (0, 2, True), (1, 0, True)]
    assert logs[1].steps == [(1, 1, True), (1, 2, True)]


def test_a_replica_with_another_seed_sees_another_data_order() -> None:
    x, y = _data()
    runs = [TrainingRun(Trainer(PROFILES["fast"], torch.device("cpu"), seed=s), _model(0), x, y, epochs=1) for s in (0, 1)]
    start = runs[0].checkpoint()
    for run in runs:
        run.restore(start)
        run.advance(2)
    difference = (_parameters(runs[0].model) - _parameters(runs[1].model)).abs().max()
    assert difference > 1e-4


def test_every_step_carries_the_trainings_seed() -> None:
    """A loss that draws random numbers (PGD training's random starts) seeds them with ``StepInfo.seed``: each
    training's own, not one shared by every model."""
    x, y = _data(64)
    seen: dict[int, set[int]] = {}
    for seed in (3, 7):
        def recording(
            model: torch.nn.Module, xb: torch.Tensor, yb: torch.Tensor, step: StepInfo, seed: int = seed
        ) -> torch.Tensor:
            seen.setdefault(seed, set()).add(step.seed)
            return torch.nn.functional.cross_entropy(model(xb), yb)

        Trainer(PROFILES["fast"], torch.device("cpu"), seed).fit(_model(0), x, y, loss_computation=recording, epochs=1)
    assert seen == {3: {3}, 7: {7}}
