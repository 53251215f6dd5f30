"""TrainingRun: a job advanced in pieces, checkpointed and restored elsewhere, is the job run whole."""

from __future__ import annotations

import numpy as np
import torch

from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import Trainer, TrainingRun
from benchbd_builtins.models import small_cnn


def _data(n: int = 160) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 4, n)


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return small_cnn(4)


def _parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_resumed_run_equals_the_uninterrupted_run() -> None:
    x, y = _data()
    trainer = Trainer(PROFILES["fast"], torch.device("cpu"), seed=3)
    whole = trainer.fit(_model(0), x, y, epochs=2)

    first = TrainingRun(trainer, _model(0), x, y, epochs=2)
    first.advance(first.total_steps // 2 + 1)  # stop mid-epoch
    checkpoint = first.checkpoint()
    second = TrainingRun(trainer, _model(1), x, y, epochs=2)  # another initialisation: the checkpoint overrides it
    second.restore(checkpoint)
    second.advance(second.total_steps)

    assert second.step == second.total_steps == 2 * 3
    assert torch.allclose(_parameters(whole), _parameters(second.model), atol=1e-6)


def test_a_replica_with_another_seed_sees_another_data_order() -> None:
    x, y = _data()
    runs = [TrainingRun(Trainer(PROFILES["fast"], torch.device("cpu"), seed=s), _model(0), x, y, epochs=1) for s in (0, 1)]
    start = runs[0].checkpoint()
    for run in runs:
        run.restore(start)
        run.advance(2)
    difference = (_parameters(runs[0].model) - _parameters(runs[1].model)).abs().max()
    assert difference > 1e-4
