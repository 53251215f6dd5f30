"""Stacked training (benchbd/training/stacked.py, issue 21 item 1): K models trained as one give each model the
weights and batch-norm statistics it gets trained alone, within float tolerance, with either optimiser, with the
augmentation and under bf16 autocast.

Float tolerance holds for the first steps. Over a whole training the two runs drift apart as any two runs with
another order of floating-point sums do (another thread count, another device): a ReLU or max-pool whose inputs
are within rounding of a tie routes a gradient differently, and the difference grows (measured: 6e-8 after two
steps, up to 3e-4 after four on one of two models, 3e-2 after twelve). So the long test compares what the
models do, not their weights."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from benchbd import BenchbdError
from benchbd.data.images import ImageData
from benchbd.training.profiles import PROFILES, TrainingProfile
from benchbd.training.stacked import fit_stacked
from benchbd.training.trainer import Trainer
from benchbd_builtins.models import narrow_cnn

SEEDS = (3, 4, 5)


def trained_alone_and_stacked(data: ImageData, profile: TrainingProfile, n: int) -> tuple[list, list]:
    x, y = data.x_train[:n], data.y_train[:n]
    alone, stacked = [], []
    for seed in SEEDS:
        torch.manual_seed(seed)
        model = narrow_cnn(data.num_classes)
        stacked.append(narrow_cnn(data.num_classes))
        stacked[-1].load_state_dict(model.state_dict())
        alone.append(Trainer(profile, torch.device("cpu"), seed).fit(model, x, y))
    fit_stacked([Trainer(profile, torch.device("cpu"), seed) for seed in SEEDS], stacked, x, y)
    return alone, stacked


def assert_same_state(alone: list, stacked: list, tolerance: float) -> None:
    for one, other in zip(alone, stacked):
        assert not other.training
        mine, theirs = one.state_dict(), other.state_dict()
        assert mine.keys() == theirs.keys()
        for name in mine:
            assert torch.allclose(mine[name].float(), theirs[name].float(), atol=tolerance, rtol=tolerance), name


def profile_with(optimizer: str, epochs: int) -> TrainingProfile:
    """The fast profile (±2 px shifts), with one-cycle SGD or cosine AdamW."""
    sgd = optimizer == "sgd"
    return replace(PROFILES["fast"], epochs=epochs, optimizer=optimizer, lr=0.05 if sgd else 1e-3, schedule="onecycle" if sgd else "cosine")


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_stacked_models_equal_the_models_trained_alone(colour_data: ImageData, optimizer: str) -> None:
    """Two steps (128 images, batch 64): every parameter and running statistic of each model matches its lone
    training to float precision, and the models differ from each other (their own seeds, orders and shifts)."""
    alone, stacked = trained_alone_and_stacked(colour_data, profile_with(optimizer, 1), 128)
    assert_same_state(alone, stacked, 1e-5)
    first, second = (m.backbone[0][0].weight for m in stacked[:2])
    assert not torch.allclose(first, second, atol=1e-2)


@pytest.mark.parametrize("bf16", [False, True])
def test_stacked_models_classify_as_the_models_trained_alone(colour_data: ImageData, bf16: bool) -> None:
    """Three epochs of 600 images (a short last batch each epoch), in float32 and under the CUDA path's bf16
    autocast: each stacked model learns the colours and labels the test images as its lone twin does."""
    profile = replace(profile_with("sgd", 3), precision="bf16" if bf16 else "fp32")
    alone, stacked = trained_alone_and_stacked(colour_data, profile, 600)
    trainer = Trainer(profile, torch.device("cpu"), 0)
    for one, other in zip(alone, stacked):
        assert not other.training
        mine, theirs = (trainer.predict(m, colour_data.x_test).numpy() for m in (one, other))
        assert (theirs == colour_data.y_test).mean() > 0.8
        assert (mine == theirs).mean() > 0.9


def test_stacked_training_refuses_mixed_profiles(colour_data: ImageData) -> None:
    trainers = [Trainer(PROFILES["fast"], torch.device("cpu"), 0), Trainer(PROFILES["cpu"], torch.device("cpu"), 1)]
    with pytest.raises(BenchbdError, match="share one profile"):
        fit_stacked(trainers, [narrow_cnn(4), narrow_cnn(4)], colour_data.x_train, colour_data.y_train)
