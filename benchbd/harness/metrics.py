"""Metrics: clean accuracy, attack success rate (BaDLoss section 5), robust accuracy, and detection quality."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.metrics import roc_auc_score, roc_curve

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
    is the one trained on. Ours: it is applied to the float test images and not rounded to uint8 as a poisoned
    training image is (:func:`~benchbd.attacks.apply_trigger_uint8`), a difference of at most half a grey level a
    pixel."""
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


def robust_accuracy(trainer: Trainer, model: torch.nn.Module, data: ImageData, attack: Attack) -> float:
    """BackdoorBench's R-Acc: share of the triggered test inputs (trigger as trained; inputs of the attacker's label
    excluded, as for ASR) still classified as their true label."""
    y = trainer.labels(data.y_test)
    keep = attack.backdoor_labels(y) != y
    predictions = trainer.predict(model, trainer.images(data.x_test)[keep], lambda x: attack.trigger(x, test_time=False))
    return float((predictions == y[keep]).float().mean())


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


def defense_effectiveness(clean_acc: float, clean_acc_after: float, asr: float, asr_after: float) -> float:
    """DER = [max(0, ΔASR) − max(0, ΔACC) + 1] / 2, ΔASR = ASR before − after, ΔACC = clean accuracy before −
    after, in [0, 1], 0.5 for a defense that changes nothing: the definition in BackdoorBench's docstring and the
    FT-SAM paper (eq. 7). BackdoorBench's implementation adds the ΔACC term instead; we follow the documented
    formula, under which a defense is not rewarded for losing clean accuracy."""
    return (max(0.0, asr - asr_after) - max(0.0, clean_acc - clean_acc_after) + 1) / 2


#: The false-positive rates at which :func:`detection_metrics` reads the TPR off the ROC curve.
FIXED_FPRS = (0.01, 0.05)


def tpr_at_fpr(positive: np.ndarray, scores: np.ndarray) -> dict[str, float | None]:
    """The highest TPR among the score thresholds whose FPR is at most each of :data:`FIXED_FPRS`; ``None`` for a
    limit under which not one negative may be flagged (fewer than 1/limit negatives: four clean models measure FPR in
    steps of 25%, and "TPR at 1% FPR" would be the TPR at none flagged). Every threshold counts: scikit-learn's
    ``drop_intermediate`` leaves out points on a straight stretch of the curve, which can hold the highest TPR under
    the limit."""
    fpr, tpr, _ = roc_curve(positive, scores, drop_intermediate=False)
    negatives = int((~positive).sum())
    return {f"{limit:g}": float(tpr[fpr <= limit].max()) if negatives * limit >= 1 else None for limit in FIXED_FPRS}


def detection_metrics(scores: np.ndarray, flagged: np.ndarray, positive: np.ndarray) -> dict[str, object]:
    """Against the ``positive`` mask (poisoned examples, backdoored models, malicious servers): AUROC of the scores
    and the TPR at fixed FPRs, TPR/FPR of the defense's own flags, and the share flagged."""
    has_both = positive.any() and (~positive).any()
    return {
        "auroc": float(roc_auc_score(positive, scores)) if has_both else None,
        "tpr_at_fpr": tpr_at_fpr(positive, scores) if has_both else None,
        "tpr": float(flagged[positive].mean()) if positive.any() else None,
        "fpr": float(flagged[~positive].mean()) if (~positive).any() else None,
        "removed_frac": float(flagged.mean()),
    }


def per_attack_auroc(scores: np.ndarray, source: np.ndarray, attack_index: int) -> float | None:
    """AUROC of one attack's examples against the clean ones (the other attacks' examples left out)."""
    keep = (source == CLEAN) | (source == attack_index)
    own = source[keep] == attack_index
    return float(roc_auc_score(own, scores[keep])) if own.any() and (~own).any() else None
