"""Attack success rate both ways (issue 15, item 5): the trigger as trained, and boosted at test time."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchbd import ImageData
from benchbd.harness.metrics import attack_success_rate, attack_success_rates, defense_effectiveness, detection_metrics, robust_accuracy, target_rate, tpr_at_fpr
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import Trainer
from benchbd_builtins.attacks.blend import DimpleBlendAttack, RandomBlendAttack
from benchbd_builtins.attacks.patch import PatchAttack
from benchbd_builtins.attacks.sinusoid import SinusoidAttack
from benchbd_builtins.attacks.wanet import WaNetAttack


class BrightestPixel(torch.nn.Module):
    """Class 1 when an image's brightest pixel exceeds ``threshold``, else class 0."""

    def __init__(self, threshold: float) -> None:
        super().__init__()
        self.threshold = threshold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        margin = x.flatten(1).amax(1) - self.threshold
        return torch.stack([-margin, margin], 1)


@pytest.fixture
def black_images() -> ImageData:
    """Black test images of class 0: the dimple blend lights pixels to α as trained, 2α boosted."""
    x = np.zeros((8, 16, 16, 3), dtype=np.uint8)
    return ImageData.from_arrays("black", {"x_train": x, "y_train": np.zeros(8, int), "x_test": x, "y_test": np.zeros(8, int)},
                                 family="gtsrb", num_classes=2)


def test_asr_is_measured_with_the_trigger_as_trained_and_boosted(black_images: ImageData) -> None:
    trainer = Trainer(PROFILES["fast"], torch.device("cpu"), seed=0)
    dimple = DimpleBlendAttack(target=1)  # α 0.025 as trained, 0.05 boosted
    model = BrightestPixel(threshold=0.0375)
    assert attack_success_rate(trainer, model, black_images, dimple, boosted=False) == 0.0
    assert attack_success_rate(trainer, model, black_images, dimple, boosted=True) == 1.0
    assert target_rate(trainer, model, black_images, dimple) == 0.0
    rates = attack_success_rates(trainer, model, black_images, [dimple, PatchAttack(target=1)])
    assert rates == {"asr": {"blend-dimple": 0.0, "patch": 1.0}, "asr_boosted": {"blend-dimple": 1.0}}
    assert attack_success_rates(trainer, model, black_images, [PatchAttack(target=1)]) == {"asr": {"patch": 1.0}}


def test_the_blends_and_sinusoid_have_a_test_time_boost() -> None:
    assert RandomBlendAttack.test_time_boost and DimpleBlendAttack.test_time_boost and SinusoidAttack.test_time_boost
    assert not PatchAttack.test_time_boost and not WaNetAttack.test_time_boost


def test_robust_accuracy_counts_triggered_inputs_kept_at_their_true_label(black_images: ImageData) -> None:
    trainer = Trainer(PROFILES["fast"], torch.device("cpu"), seed=0)
    model = BrightestPixel(threshold=0.0375)
    assert robust_accuracy(trainer, model, black_images, DimpleBlendAttack(target=1)) == 1.0  # α 0.025: still class 0
    assert robust_accuracy(trainer, model, black_images, PatchAttack(target=1)) == 0.0  # the white patch flips them


def test_tpr_at_fixed_fpr_reads_the_roc_curve() -> None:
    positive = np.array([True] * 10 + [False] * 100)
    scores = np.concatenate([np.arange(10) + 95.5, np.arange(100)])  # positives 95.5 ... 104.5, negatives 0 ... 99
    # FPR 1%: one negative (99) above the threshold 98.5, 7 positives; FPR 5%: threshold 94.5, every positive.
    assert tpr_at_fpr(positive, scores) == {"0.01": pytest.approx(0.7), "0.05": 1.0}
    metrics = detection_metrics(scores, scores > 99, positive)
    assert metrics["tpr_at_fpr"] == tpr_at_fpr(positive, scores) and metrics["tpr"] == 0.6 and metrics["fpr"] == 0.0


def test_tpr_at_fixed_fpr_reads_every_threshold() -> None:
    """Three positives tied with three negatives, one pair per score, make a straight stretch of the curve whose
    middle point, 2 of 200 negatives, is the last under 1%."""
    positive = np.array([True] * 3 + [False] * 3 + [True] * 7 + [False] * 197)
    scores = np.concatenate([[1000, 999, 998], [1000, 999, 998], [500] * 7, np.arange(197)])
    assert tpr_at_fpr(positive, scores) == {"0.01": pytest.approx(0.2), "0.05": 1.0}


def test_tpr_at_fixed_fpr_is_undefined_where_no_negative_may_be_flagged() -> None:
    """Four clean models measure FPR in steps of 25%: no threshold has an FPR of 1% or 5% other than 0."""
    assert tpr_at_fpr(np.array([True, False, False, False, False]), np.arange(5.0)[::-1]) == {"0.01": None, "0.05": None}
    positive = np.array([True] * 5 + [False] * 50)  # 50 negatives: 5% is 2.5 of them, 1% half of one
    assert tpr_at_fpr(positive, np.arange(55.0)[::-1]) == {"0.01": None, "0.05": 1.0}


def test_der_rewards_removing_the_backdoor_and_charges_lost_accuracy() -> None:
    assert defense_effectiveness(0.9, 0.9, 0.95, 0.95) == 0.5  # nothing changed
    assert defense_effectiveness(0.9, 0.9, 1.0, 0.0) == 1.0  # backdoor gone, accuracy kept
    assert defense_effectiveness(0.9, 0.7, 1.0, 0.0) == pytest.approx(0.9)  # the documented formula: − ΔACC
    assert defense_effectiveness(0.9, 0.95, 0.5, 0.9) == 0.5  # gains are not rewarded, in ASR or accuracy
