"""Metrics: clean accuracy, attack success rate (BaDLoss section 5), and detection quality for example defenses."""

from __future__ import annotations

from collections.abc import Callable, Sequence

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


def attack_success_rate(trainer: Trainer, model: torch.nn.Module, data: ImageData, attack: Attack, *, boosted: bool) -> float:
    """Share of test inputs, triggered, classified as the attacker wants; inputs already of that label excluded
    (BaDLoss section 5). ``boosted`` applies the trigger with ``test_time=True``: the test-time boost of
    :attr:`Attack.test_time_boost` (BaDLoss's reference code doubles the blends and sinusoid); otherwise the trigger
    is exactly as trained."""
    return _target_share(trainer, model, data, attack, lambda x: attack.trigger(x, test_time=boosted))


def attack_success_rates(
    trainer: Trainer, model: torch.nn.Module, data: ImageData, attacks: Sequence[Attack]
) -> dict[str, dict[str, float]]:
    """ASR both ways, by attack name: ``"asr"`` with the trigger as trained (BaDLoss section 5's text) for every
    attack, ``"asr_boosted"`` with the test-time boost for the attacks that have one (left out when none has)."""
    rates = {"asr": {a.name: attack_success_rate(trainer, model, data, a, boosted=False) for a in attacks}}
    boosted = {a.name: attack_success_rate(trainer, model, data, a, boosted=True) for a in attacks if a.test_time_boost}
    if boosted:
        rates["asr_boosted"] = boosted
    return rates


def target_rate(trainer: Trainer, model: torch.nn.Module, data: ImageData, attack: Attack) -> float:
    """Share of clean (untriggered) test inputs already classified as the attacker's label: the baseline ASR has
    to beat."""
    return _target_share(trainer, model, data, attack, None)


def _target_share(
    trainer: Trainer,
    model: torch.nn.Module,
    data: ImageData,
    attack: Attack,
    transform: Callable[[torch.Tensor], torch.Tensor] | None,
) -> float:
    """Share of the test inputs not of the attacker's label that ``model`` classifies as it after ``transform``."""
    y = trainer.labels(data.y_test)
    wanted = attack.backdoor_labels(y)
    keep = wanted != y
    predictions = trainer.predict(model, trainer.images(data.x_test)[keep], transform)
    return float((predictions == wanted[keep]).float().mean())


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
