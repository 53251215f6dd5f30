"""Activation clustering splits a class made of two clusters, leaves a one-cluster class alone, and detects patch."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from benchbd.errors import BenchbdError
from benchbd_builtins.defenses.activation_clustering import FLOOR, ActivationClustering


def two_classes(seed: int) -> SimpleNamespace:
    """Class 0: 170 examples plus 30 shifted along 16 features (a poison cluster); class 1: 200, one cluster."""
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(400, 64))
    features[:30, :16] += 6.0
    return SimpleNamespace(features=lambda: features, y_train=np.repeat([0, 1], 200), rng=np.random.default_rng(seed))


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("reduction", ["ica", "pca"])
def test_removes_the_small_cluster_of_a_split_class_only(seed: int, reduction: str) -> None:
    context = two_classes(seed)
    verdict = ActivationClustering(reduction=reduction).score_examples(context)
    assert np.flatnonzero(verdict.flagged).tolist() == list(range(30))
    assert verdict.scores[:30].min() > ActivationClustering.silhouette_threshold
    # Class 1's smaller cluster is scored by its low silhouette, class 0's larger cluster by the floor.
    assert verdict.scores[200:].max() < ActivationClustering.silhouette_threshold
    assert (verdict.scores[30:200] == FLOOR).all()


def test_relative_size_criterion_removes_small_clusters() -> None:
    verdict = ActivationClustering(criterion="relative-size").score_examples(two_classes(0))
    assert verdict.flagged[:30].all() and not verdict.flagged[30:200].any()
    np.testing.assert_allclose(verdict.scores[:30], -30 / 200)


def test_detects_patch_on_a_backdoored_model(backdoored) -> None:
    verdict = ActivationClustering().score_examples(backdoored.context)
    mask = backdoored.poisoned.mask
    assert np.isfinite(verdict.scores).all()
    # ICA and k-means make AC depend on its seed: over the fixture's training seeds 0-2 and context seeds 0-9,
    # AUROC 0.77-0.97 with 67-96% of the poison flagged and at most 10.2% of the clean examples, never under 9
    # times the clean rate (the poison's cluster is found whole or in part).
    assert roc_auc_score(mask, verdict.scores) > 0.55
    assert verdict.flagged[mask].mean() > 5 * verdict.flagged[~mask].mean()


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"dimensions": 0}, "dimensions"),
        ({"silhouette_threshold": 2.0}, "silhouette_threshold"),
        ({"size_threshold": 0.7}, "size_threshold"),
    ],
)
def test_bad_parameters_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(BenchbdError, match=field):
        ActivationClustering(**params)
