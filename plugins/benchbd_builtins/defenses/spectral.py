"""``spectral``: spectral signatures (Tran, Li & Madry, NeurIPS 2018, section 3 and algorithm 1).

For each class (by the labels as delivered), centre the penultimate representations, take their top right
singular vector v, and score each example by its squared projection onto v. Algorithm 1 removes the
1.5·ε·n highest-scoring examples of each class, ε an upper bound on the poisoned fraction; BaDLoss's comparison
(section 4.2) removes a fixed 15% instead. ``fraction`` chooses: a number is a fixed fraction per class,
``None`` means 1.5 × the expected poison fraction. For AUROC over the whole training set, each class's scores
are divided by that class's mean score, so that scores of different classes are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from benchbd import ExampleContext, ExampleDefense, ExampleVerdict, hookimpl
from benchbd.params import check


def spectral_scores(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Squared projection on the top singular vector of each class's centred features, over the class mean."""
    scores = np.zeros(len(labels), dtype=np.float64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        centred = features[members].astype(np.float64) - features[members].mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        projection = (centred @ vt[0]) ** 2
        scores[members] = projection / max(projection.mean(), 1e-12)
    return scores


def flag_top_per_class(scores: np.ndarray, labels: np.ndarray, fraction: float) -> np.ndarray:
    """Flag the ``fraction`` highest-scoring examples of each class (rounded up)."""
    flagged = np.zeros(len(labels), dtype=bool)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = min(len(members), int(np.ceil(fraction * len(members))))
        flagged[members[np.argsort(-scores[members], kind="stable")[:count]]] = True
    return flagged


@dataclass
class SpectralSignatures(ExampleDefense):
    name: ClassVar[str] = "spectral"
    description: ClassVar[str] = "spectral signatures: outliers along each class's top singular vector (Tran et al. 2018)"

    fraction: float | None = 0.15

    def __post_init__(self) -> None:
        if self.fraction is not None:
            check(0 < self.fraction < 1, self.name, "fraction", "in (0, 1) or none", self.fraction)

    def score_examples(self, context: ExampleContext) -> ExampleVerdict:
        scores = spectral_scores(context.features(), context.y_train)
        fraction = self.fraction if self.fraction is not None else min(0.99, 1.5 * context.expected_poison_fraction)
        return ExampleVerdict(scores, flag_top_per_class(scores, context.y_train, fraction))


@hookimpl
def benchbd_defenses() -> list[type[ExampleDefense]]:
    return [SpectralSignatures]
