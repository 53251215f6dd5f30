"""The conformance kit passes the built-ins and catches plugins that break the contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import benchbd
from benchbd.conformance import assert_conforms, attack_checks, defense_checks


@dataclass
class LeakyAttack(benchbd.DataPoisoningAttack):
    """Changes every image, but reports only the ones it relabelled: a broken poison mask."""

    name: ClassVar[str] = "leaky"
    description: ClassVar[str] = "broken"

    def trigger(self, x, *, test_time=False):
        return x

    def poison(self, x, y, available, rng):
        x[:] = 0
        return super().poison(x, y, available, rng)


@dataclass
class ShortDefense(benchbd.ExampleDefense):
    """Returns one score too few, and they are random: not deterministic."""

    name: ClassVar[str] = "short"
    description: ClassVar[str] = "broken"

    def score_examples(self, context):
        n = len(context.y_train) - 1
        return benchbd.ExampleVerdict(np.random.rand(n), np.zeros(n, bool))


def test_builtins_conform() -> None:
    assert_conforms("patch")
    assert_conforms("spectral")


def test_a_broken_mask_fails() -> None:
    results = {c.name: c for c in attack_checks(LeakyAttack)}
    assert not results["poisoning: mask consistent"].passed
    assert "outside the mask were changed" in results["poisoning: mask consistent"].detail
    assert not results["parameters: bad ratio refused"].passed  # LeakyAttack never validates ratio


def test_wrong_score_count_fails() -> None:
    results = {c.name: c for c in defense_checks(ShortDefense)}
    assert not results["scores: one finite score per example"].passed
    assert not results["scores: deterministic"].passed


def test_assert_conforms_reports_unknown_names() -> None:
    with pytest.raises(benchbd.BenchbdError, match="no attack or defense named 'nope'"):
        assert_conforms("nope")
