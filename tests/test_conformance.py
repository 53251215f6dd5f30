"""The conformance kit passes every registered plugin and catches plugins that break the contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

import benchbd
from benchbd.conformance import assert_conforms, attack_checks, defense_checks
from benchbd.registry import default_registry

#: Parameters that keep the heavy defenses' checks to seconds on one core (the kit checks the contract, not how
#: well a defense detects): fewer epochs, probes, optimisation steps, classes and reference inputs.
CHEAP: dict[str, dict[str, object]] = {
    "abl": {"isolation_epochs": 1},
    "activation-clustering": {"reduction": "pca"},
    "aegis": {"train_steps": 1, "translate_steps": 2, "seeds": 16, "perplexity": 5.0, "min_cluster_size": 2, "classes": "0,1",
              "class_images": 16, "robustness_images": 16, "min_adversarial_accuracy": 0.0},
    "badloss": {"probes": 20},
    "frequency": {"epochs": 1, "probes": 50},
    "neural-cleanse": {"clean_count": 16, "steps": 1, "batch_size": 2, "patience": 1},
    "neural-cleanse-model": {"clean_count": 16, "steps": 1, "batch_size": 2, "patience": 1},
    "rttd": {"sub_run_steps": 1, "splits": 2, "reference_size": 32},
}


@pytest.mark.parametrize("name", default_registry().names("attacks"))
def test_every_attack_conforms(name: str) -> None:
    assert_conforms(name, CHEAP.get(name))


@pytest.mark.parametrize("name", default_registry().names("defenses"))
def test_every_defense_conforms(name: str) -> None:
    assert_conforms(name, CHEAP.get(name))


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
class UncountedExtras(benchbd.DataPoisoningAttack):
    """Changes one more example than it poisons without saying so in ``extra_count``."""

    name: ClassVar[str] = "uncounted"
    description: ClassVar[str] = "broken"

    def trigger(self, x, *, test_time=False):
        return x

    def poison(self, x, y, available, rng):
        chosen = super().poison(x, y, available, rng)
        extra = np.flatnonzero(available & ~np.isin(np.arange(len(y)), chosen))[0]
        x[extra] = 255 - x[extra]
        return np.union1d(chosen, [extra])


@dataclass
class Forgetful(benchbd.DataPoisoningAttack):
    """A dirty-label attack that forgets to relabel what it poisons, whose trigger changes no image, and that
    offers itself as its own probe variant."""

    name: ClassVar[str] = "forgetful"
    description: ClassVar[str] = "broken"

    def trigger(self, x, *, test_time=False):
        return x

    def poison(self, x, y, available, rng):
        labels = y.copy()
        chosen = super().poison(x, y, available, rng)
        y[:], x[chosen] = labels, 255 - x[chosen]
        return chosen

    def probe(self, rng):
        return self


@dataclass
class DishonestLoss(benchbd.TrainingCodeAttack):
    """Trains with a loss of its own, never calling the honest one, and a trigger that leaves [0, 1]."""

    name: ClassVar[str] = "dishonest"
    description: ClassVar[str] = "broken"

    def trigger(self, x, *, test_time=False):
        return x * 2

    def loss_computation(self, honest):
        return lambda model, x, y, step: model(x).square().mean()


@dataclass
class ShortDefense(benchbd.ExampleDefense):
    """Returns one score too few, and they are random: not deterministic."""

    name: ClassVar[str] = "short"
    description: ClassVar[str] = "broken"

    def score_examples(self, context):
        n = len(context.y_train) - 1
        return benchbd.ExampleVerdict(np.random.rand(n), np.zeros(n, bool))


@dataclass
class OneServerShort(benchbd.TrainingRunDefense):
    """Judges every server but the last, without running any."""

    name: ClassVar[str] = "one-server-short"
    description: ClassVar[str] = "broken"

    def judge_servers(self, context):
        n = len(context.servers) - 1
        return benchbd.TrainingRunVerdict(np.zeros(n), np.zeros(n, bool), extra_steps=0)


def failed(checks: list) -> dict[str, str]:
    return {c.name: c.detail for c in checks if not c.passed}


def test_a_broken_mask_fails() -> None:
    assert "outside the mask were changed" in failed(attack_checks(LeakyAttack))["poisoning: mask and labels consistent"]


def test_changed_examples_beyond_extra_count_fail() -> None:
    assert "not poison_count + extra_count" in failed(attack_checks(UncountedExtras))["poisoning: mask and labels consistent"]


def test_an_unlabelled_poison_an_idle_trigger_and_a_probe_of_the_same_trigger_fail() -> None:
    problems = failed(attack_checks(Forgetful))
    assert "carry the target" in problems["poisoning: mask and labels consistent"]
    assert "left every image as it was" in problems["trigger: shape, dtype, range, changes the images"]
    assert "the probe's trigger is the attack's own" in problems["probe variant: none, or another trigger"]


def test_a_loss_that_ignores_the_honest_one_fails() -> None:
    problems = failed(attack_checks(DishonestLoss))
    assert "the honest loss computation was never called" in problems["loss: a finite scalar with a gradient, from the honest loss"]
    assert "outside [0, 1]" in problems["trigger: shape, dtype, range, changes the images"]


def test_wrong_score_count_fails() -> None:
    problems = failed(defense_checks(ShortDefense))
    assert {"scores and mitigate: one finite score per example, a model or None", "scores: deterministic"} <= set(problems)


def test_a_server_verdict_of_the_wrong_length_fails() -> None:
    assert "for 3 servers" in failed(defense_checks(OneServerShort))["verdict: one finite score and flag per server"]


def test_assert_conforms_reports_unknown_names() -> None:
    with pytest.raises(benchbd.BenchbdError, match="no attack or defense named 'nope'"):
        assert_conforms("nope")


def test_the_command_says_how_many_checks_passed_and_what_they_do_not_show(capsys: pytest.CaptureFixture) -> None:
    from benchbd.cli import main

    assert main(["check-plugin", "patch"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "5 of 5 checks passed, on the kit's tiny data (430 synth-signs training images)" in out and "not how well the method works" in out
