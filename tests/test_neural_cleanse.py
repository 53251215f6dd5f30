"""Neural Cleanse: the MAD anomaly index, trigger reverse engineering on a backdoored model, and the filter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from benchbd import ImageData
from benchbd.errors import BenchbdError
from benchbd.harness.poisoning import poison_training_set
from benchbd.harness.units.model import model_context
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import Trainer
from benchbd_builtins.attacks.patch import PatchAttack
from benchbd_builtins.defenses.neural_cleanse import (
    NeuralCleanse,
    NeuralCleanseModel,
    CostSchedule,
    ReversedTriggers,
    anomaly_index,
    median_anomaly_index,
    outlier_gate,
    reverse_engineer_triggers,
)
from benchbd_builtins.models import small_cnn


def test_anomaly_index_flags_only_a_small_outlier() -> None:
    norms = np.random.default_rng(0).uniform(95, 105, 43)  # bounded: no point is 2 consistent MADs out
    assert (np.abs(anomaly_index(norms)) <= 2).all()
    norms[7] = 30
    index = anomaly_index(norms)
    assert np.flatnonzero(index > 2).tolist() == [7]
    norms[7], norms[9] = 100, 300  # a large outlier is on the wrong side to be a trigger
    assert (anomaly_index(norms) <= 2).all() and anomaly_index(norms)[9] < -2


def test_the_median_over_draws_keeps_an_outlier_only_if_most_draws_find_it() -> None:
    norms = np.random.default_rng(0).uniform(95, 105, (3, 43))
    norms[0, 5] = 30  # one draw's chance outlier
    norms[[0, 2], 7] = 30  # an outlier in two draws of three
    assert np.flatnonzero(anomaly_index(norms[0]) > 2).tolist() == [5, 7]
    assert np.flatnonzero(median_anomaly_index(norms) > 2).tolist() == [7]
    assert np.array_equal(median_anomaly_index(norms[0]), anomaly_index(norms[0]))  # one draw: the paper's index


def test_model_mode_scores_a_backdoored_model_above_a_clean_one(colour_data: ImageData) -> None:
    """Patch at 20% in the colour classes: the backdoored small-cnn's largest median index (two draws) is its
    target's, and above the clean model's largest."""
    attack = PatchAttack(target=0, ratio=0.2)
    attack.prepare(colour_data.x_train, colour_data.y_train, colour_data.num_classes, np.random.default_rng(0))
    poisoned = poison_training_set(colour_data, [attack], np.random.default_rng(0))
    trainer = Trainer(PROFILES["fast"], torch.device("cpu"), seed=0)
    verdicts = {}
    for name, (x, y) in {"backdoored": (poisoned.x, poisoned.y), "clean": (colour_data.x_train, colour_data.y_train)}.items():
        torch.manual_seed(0)
        model = trainer.fit(small_cnn(colour_data.num_classes), x, y)
        context = model_context(colour_data, model, trainer, clean_stream=np.random.default_rng(0), rng=np.random.default_rng(1))
        verdicts[name] = NeuralCleanseModel(draws=2).inspect_model(context)
    backdoored, clean = verdicts["backdoored"], verdicts["clean"]
    assert int(np.argmax(backdoored.details["anomaly_index"])) == attack.target
    assert backdoored.score > clean.score, (backdoored.details, clean.details)
    assert len(backdoored.details["mask_l1_per_draw"]) == 2


def test_the_gate_records_why_nothing_is_flagged() -> None:
    """Issue 15, item 7: a filter that removes nothing says why, so its row is not silently No Defense's."""
    assert outlier_gate(np.array([2.5, 0.1, -1.0]), 2.0) == {}
    assert outlier_gate(np.array([1.9, 0.1, -1.0]), 2.0) == {
        "gate": "no class above anomaly index 2",
        "anomaly_index": [1.9, 0.1, -1.0],
    }
    assert outlier_gate(np.array([2.0, 0.0]), 2.5)["gate"] == "no class above anomaly index 2.5"


def test_cost_schedule_follows_the_released_code() -> None:
    """Two classes, patience 2, multiplier 2: class 0 always succeeds, class 1 never does."""
    reached = np.array([True, False])
    schedule = CostSchedule(2, init_cost=1e-3, multiplier=2.0, patience=2)
    for _ in range(4):
        schedule.update(reached)
    np.testing.assert_allclose(schedule.cost, [1e-3 * 2**2, 1e-3 / 2**3])  # ×2 and ÷2^1.5 every 2 rounds
    assert schedule.went_up.tolist() == [True, False] and schedule.went_down.tolist() == [False, True]
    # Reset to zero: λ stays 0 while failing, and is set to init_cost after 2 successful rounds in a row.
    schedule = CostSchedule(2, init_cost=1e-3, multiplier=2.0, patience=2, reset_cost=True)
    schedule.update(reached)
    assert schedule.cost.tolist() == [0.0, 0.0]
    schedule.update(reached)
    assert schedule.cost.tolist() == [1e-3, 0.0]
    assert not schedule.went_up[0]  # the counters start afresh at init_cost
    schedule.update(reached)
    schedule.update(reached)
    assert schedule.cost[0] == 2e-3 and schedule.cost[1] == 0.0


def clean_images(backdoored, count: int = 200) -> torch.Tensor:
    chosen = backdoored.context.trusted_clean[:count]
    return torch.from_numpy(backdoored.poisoned.x[chosen]).permute(0, 3, 1, 2).float() / 255


def test_reversed_trigger_of_the_target_sits_on_the_patch(backdoored) -> None:
    # Four restarts for the target class in one batch: the small CNN pools globally, so one restart may also
    # land on a position its pooling grid confuses with the patch's; on average the mass is at the patch.
    x_clean = clean_images(backdoored)
    triggers = reverse_engineer_triggers(backdoored.model, x_clean, 43, classes=[2] * 4, steps=150, batch_size=8)
    assert (triggers.success >= 0.99).all()
    assert (triggers.norms < 16).all()  # a handful of pixels, as the 4-pixel patch
    mask = triggers.masks[:, 0].mean(0).numpy()
    rows, cols = zip(*backdoored.attack.pixels(32, 32))
    window = mask[min(rows) - 4 :, min(cols) - 4 :]  # the patch's 3×3 square with room for ±2 px shifts
    assert window.sum() / mask.sum() > 3 * window.size / mask.size


def test_rounds_with_early_stop_find_the_target_and_stop_before_the_budget(backdoored) -> None:
    """The released code's schedule (rounds of mini-batches, λ from 0, early stop) on the patch-backdoored model:
    the target needs the smallest trigger, and every class stops long before the rounds asked for."""
    x_clean = clean_images(backdoored)
    target = backdoored.attack.target
    classes = [target, *[c for c in range(43) if c != target][::4]]  # the target and 11 others, for speed
    triggers = reverse_engineer_triggers(
        backdoored.model, x_clean, 43, classes=classes, steps=300, round_batches=2, batch_size=8,
        cost_multiplier=2.0, patience=2, reset_cost=True, early_stop_rounds=5,
    )
    assert triggers.rounds < 300
    assert int(np.argmax(anomaly_index(triggers.norms))) == 0  # the target
    assert triggers.success[0] >= 0.99


def test_finds_the_target_and_filters_patch(backdoored) -> None:
    context = backdoored.context
    defense = NeuralCleanse(steps=40, batch_size=8)
    x_clean = defense.clean_images(context)
    triggers = defense.reverse(backdoored.model, x_clean, 43, seed=0)
    assert triggers.classes.tolist() == list(range(43))
    assert int(np.argmax(anomaly_index(triggers.norms))) == backdoored.attack.target
    verdict = defense.filter_examples(context, x_clean, triggers)
    mask = backdoored.poisoned.mask
    # Measured on this fixture over its training seeds 0-2: 0.96-1.00, well above chance, as BaDLoss table 2 has
    # neural cleanse removing the patch backdoor on GTSRB. The target's index at this budget is 1.2-1.5 (the
    # small-cnn fixture's 1.6), under the gate's 2, so the flags are the gate's (none); the scores rank the poison.
    assert roc_auc_score(mask, verdict.scores) > 0.75
    assert verdict.flagged[context.trusted_clean].mean() <= defense.false_positive_rate


def test_flags_nothing_when_no_class_is_an_outlier(backdoored) -> None:
    context = backdoored.context
    masks = torch.zeros(43, 1, 32, 32)
    for row, col in backdoored.attack.pixels(32, 32):
        masks[:, 0, row, col] = 1.0
    patterns = torch.ones(43, 3, 32, 32)
    x_clean = clean_images(backdoored, 100)
    same = ReversedTriggers(np.arange(43), masks, patterns, np.full(43, 50.0), np.ones(43), rounds=1)
    defense = NeuralCleanse()
    gated = defense.filter_examples(context, x_clean, same)
    assert not gated.flagged.any() and gated.details["gate"] == "no class above anomaly index 2"
    # The same triggers with the target's norm an outlier: the patch's neurons filter the poison.
    norms = np.random.default_rng(0).normal(50, 3, 43)
    norms[2] = 4.0
    outlier = ReversedTriggers(np.arange(43), masks, patterns, norms, np.ones(43), rounds=1)
    verdict = defense.filter_examples(context, x_clean, outlier)
    mask = backdoored.poisoned.mask
    assert verdict.flagged[mask].mean() > 0.5 and verdict.flagged[~mask].mean() < 0.1
    assert verdict.details == {}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"steps": 0}, "steps"),
        ({"cost_multiplier": 1.0}, "cost_multiplier"),
        ({"neuron_fraction": 0.0}, "neuron_fraction"),
        ({"round_batches": 0}, "round_batches"),
        ({"early_stop_rounds": -1}, "early_stop_rounds"),
    ],
)
def test_bad_parameters_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(BenchbdError, match=field):
        NeuralCleanse(**params)


def test_bad_draws_name_the_field() -> None:
    with pytest.raises(BenchbdError, match="draws"):
        NeuralCleanseModel(draws=0)
