"""``activation-clustering``: Chen et al. 2018, "Detecting Backdoor Attacks on Deep Neural Networks by
Activation Clustering" (AAAI SafeAI workshop 2019, arXiv:1811.03728), as BaDLoss section 4.2 runs it.

Section 3 of the paper (the activation clustering method): the last hidden layer's activations of the training
set are split by label (as delivered), each class's activations are reduced to 10 dimensions with ICA (the
paper's choice; ``reduction="pca"`` is offered for comparison) and clustered with 2-means. The paper then offers
three ways to decide which cluster is poisoned; BaDLoss uses the silhouette-score one, since exclusionary
reclassification retrains once per cluster: a class whose 2-means silhouette score exceeds
``silhouette_threshold`` is split by a real feature, and its smaller cluster is removed.
``criterion="relative-size"`` is the paper's other cheap rule: the smaller cluster is removed when it holds less
than ``size_threshold`` of its class. The thresholds are the defaults of IBM's Adversarial Robustness Toolbox,
the authors' own implementation (0.1 and 0.35).

Score for AUROC (a choice of ours; the paper only flags): members of a class's smaller cluster get the statistic
the criterion thresholds (the class's silhouette score, or minus the cluster's relative size), members of the
larger cluster get :data:`FLOOR`, below any such statistic. Sweeping a threshold over these scores is then
sweeping the method's own threshold, which is how BaDLoss turns the flagging defenses into ROC curves
(section 5.1).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, FastICA
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import silhouette_score

from benchbd import ExampleContext, ExampleDefense, ExampleVerdict, hookimpl
from benchbd.params import check

Reduction = Literal["ica", "pca"]
Criterion = Literal["silhouette", "relative-size"]
#: Score of examples in the larger cluster of their class: below every silhouette score and relative size.
FLOOR = -2.0
#: Classes with fewer members are not clustered (2-means and a silhouette score need a few points per cluster).
MIN_CLASS_SIZE = 4
#: 2-means restarts. After ICA's whitening every component has unit variance, so a true split lowers the inertia
#: only a little more than a split through noise would; few restarts often stop in the noise split.
KMEANS_RESTARTS = 50


@dataclass(frozen=True)
class ClassSplit:
    """The 2-means split of one class: which members form the smaller cluster, and the split's statistics."""

    smaller: np.ndarray
    silhouette: float
    relative_size: float


def reduce(activations: np.ndarray, dimensions: int, reduction: Reduction, seed: int) -> np.ndarray:
    """Project one class's activations onto ``dimensions`` independent (ICA) or principal (PCA) components."""
    components = min(dimensions, activations.shape[0] - 1, activations.shape[1])
    if reduction == "pca":
        return PCA(components, random_state=seed).fit_transform(activations)
    with warnings.catch_warnings():
        # Classes of a few dozen examples can stop FastICA before its tolerance; the components are still usable.
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica = FastICA(components, whiten="unit-variance", max_iter=1000, random_state=seed)
        return ica.fit_transform(activations)


def split_class(reduced: np.ndarray, seed: int) -> ClassSplit:
    """2-means on one class's reduced activations (section 3); the smaller cluster and the split's statistics."""
    labels = KMeans(2, n_init=KMEANS_RESTARTS, random_state=seed).fit_predict(reduced)
    sizes = np.bincount(labels, minlength=2)
    if sizes.min() == 0:
        return ClassSplit(np.zeros(len(labels), bool), -1.0, 0.0)
    smaller = labels == np.argmin(sizes)
    return ClassSplit(smaller, float(silhouette_score(reduced, labels)), float(smaller.mean()))


@dataclass
class ActivationClustering(ExampleDefense):
    name: ClassVar[str] = "activation-clustering"
    description: ClassVar[str] = "2-means on each class's ICA-reduced activations, silhouette rule (Chen et al. 2018)"

    reduction: Reduction = "ica"
    dimensions: int = 10
    criterion: Criterion = "silhouette"
    silhouette_threshold: float = 0.1
    size_threshold: float = 0.35

    def __post_init__(self) -> None:
        check(self.dimensions >= 1, self.name, "dimensions", ">= 1", self.dimensions)
        silhouette = self.silhouette_threshold
        check(-1 <= silhouette <= 1, self.name, "silhouette_threshold", "in [-1, 1]", silhouette)
        check(0 < self.size_threshold <= 0.5, self.name, "size_threshold", "in (0, 0.5]", self.size_threshold)

    def statistic(self, split: ClassSplit) -> float:
        """What the criterion thresholds, oriented so that higher means "the smaller cluster is poison"."""
        return split.silhouette if self.criterion == "silhouette" else -split.relative_size

    def threshold(self) -> float:
        """The criterion's threshold on :meth:`statistic`."""
        return self.silhouette_threshold if self.criterion == "silhouette" else -self.size_threshold

    def score_examples(self, context: ExampleContext) -> ExampleVerdict:
        activations = context.features().astype(np.float64)
        labels = context.y_train
        scores = np.full(len(labels), FLOOR)
        flagged = np.zeros(len(labels), dtype=bool)
        seed = int(context.rng.integers(2**31))
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            if len(members) < MIN_CLASS_SIZE:
                continue
            split = split_class(reduce(activations[members], self.dimensions, self.reduction, seed), seed)
            statistic = self.statistic(split)
            smaller = members[split.smaller]
            scores[smaller] = statistic
            flagged[smaller] = statistic > self.threshold()
        return ExampleVerdict(scores, flagged)


@hookimpl
def benchbd_defenses() -> list[type[ExampleDefense]]:
    return [ActivationClustering]
