"""Metrics: clean accuracy, attack success rate (BaDLoss section 5), and detection quality for example defenses."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from benchbd.attacks import Attack
from benchbd.data.images import ImageData
from benchbd.harness.poisoning import CLEAN
from benchbd.training.trainer import Trainer


def clean_accuracy(trainer: Trainer, model: torch.nn.Module, data: ImageData) -> float:
    predictions = trainer.predict(model, data.x_test)
    return float((predictions == trainer.labels(data.y_test)).float().mean())


def attack_success_rate(trainer: Trainer, model: torch.nn.Module, data: ImageData, attack: Attack, *, triggered: bool = True) -> float:
    """Share of test inputs, triggered, classified as the attacker wants; inputs already of that label excluded
    (BaDLoss section 5). ``triggered=False`` gives the same share without the trigger: the baseline ASR has to
    beat (:func:`target_rate`)."""
    y = trainer.labels(data.y_test)
    wanted = attack.backdoor_labels(y)
    keep = wanted != y
    transform = (lambda x: attack.trigger(x, test_time=True)) if triggered else None
    predictions = trainer.predict(model, trainer.images(data.x_test)[keep], transform)
    return float((predictions == wanted[keep]).float().mean())


def target_rate(trainer: Trainer, model: torch.nn.Module, data: ImageData, attack: Attack) -> float:
    """Share of clean (untriggered) test inputs already classified as the attacker's label."""
    return attack_success_rate(trainer, model, data, attack, triggered=False)


def detection_metrics(scores: np.ndarray, flagged: np.ndarray, poisoned: np.ndarray) -> dict[str, float | None]:
    """AUROC of the scores, and TPR/FPR of the defense's own flags, against the poison mask."""
    has_both = poisoned.any() and (~poisoned).any()
    return {
        "auroc": float(roc_auc_score(poisoned, scores)) if has_both else None,
        "tpr": float(flagged[poisoned].mean()) if poisoned.any() else None,
        "fpr": float(flagged[~poisoned].mean()) if (~poisoned).any() else None,
        "removed_frac": float(flagged.mean()),
    }


def per_attack_auroc(scores: np.ndarray, source: np.ndarray, attack_index: int) -> float:
    """AUROC of one attack's examples against the clean ones (the other attacks' examples left out)."""
    keep = (source == CLEAN) | (source == attack_index)
    return float(roc_auc_score(source[keep] == attack_index, scores[keep]))
