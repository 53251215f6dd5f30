"""The patch attack changes exactly its four pixels, relabels what it poisons, and records the right mask."""

from __future__ import annotations

import numpy as np
import pytest

from benchbd.data.images import ImageData
from benchbd.errors import BenchbdError
from benchbd.attacks import apply_trigger_uint8
from benchbd.harness.poisoning import CLEAN, assign_targets, poison_training_set
from benchbd_builtins.attacks.patch import PatchAttack


def random_data(n: int = 400, classes: int = 5) -> ImageData:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 200, (n, 32, 32, 3), dtype=np.uint8),
        "y_train": rng.integers(0, classes, n),
        "x_test": rng.integers(0, 200, (50, 32, 32, 3), dtype=np.uint8),
        "y_test": rng.integers(0, classes, 50),
    }
    return ImageData.from_arrays("random", arrays, family="gtsrb", num_classes=classes)


def test_trigger_changes_exactly_the_checkerboard_pixels() -> None:
    x = np.random.default_rng(0).integers(0, 200, (3, 32, 32, 3), dtype=np.uint8)
    out = apply_trigger_uint8(PatchAttack(target=0), x)
    changed = np.argwhere((out != x).any(axis=(0, 3)))
    assert sorted(map(tuple, changed)) == [(28, 29), (29, 28), (29, 30), (30, 29)]
    assert (out[:, [28, 29, 29, 30], [29, 28, 30, 29]] == 255).all()


def test_probe_goes_to_the_opposite_corner() -> None:
    probe = PatchAttack(target=0).probe(np.random.default_rng(0))
    assert probe.pixels(32, 32) == [(1, 2), (2, 1), (2, 3), (3, 2)]


def test_poisoning_relabels_and_masks_exactly_the_chosen_examples() -> None:
    data = random_data()
    attack = PatchAttack(ratio=0.05)
    assign_targets([attack], data)
    poisoned = poison_training_set(data, [attack], np.random.default_rng(0))
    mask = poisoned.mask
    assert mask.sum() == 20
    assert (data.y_train[mask] != attack.target).all()
    assert (poisoned.y[mask] == attack.target).all()
    assert (poisoned.y[~mask] == data.y_train[~mask]).all()
    assert (poisoned.x[~mask] == data.x_train[~mask]).all()
    assert (poisoned.x[mask][:, 29, 28] == 255).all()
    assert set(np.unique(poisoned.source)) == {CLEAN, 0}


def test_several_attacks_get_distinct_targets_and_disjoint_examples() -> None:
    data = random_data()
    attacks = [PatchAttack(ratio=0.1), PatchAttack(ratio=0.1, corner="top-left")]
    assign_targets(attacks, data)
    assert attacks[0].target != attacks[1].target
    poisoned = poison_training_set(data, attacks, np.random.default_rng(0))
    assert (poisoned.source == 0).sum() == 40 and (poisoned.source == 1).sum() == 40
    assert (poisoned.y[poisoned.source == 1] == attacks[1].target).all()


@pytest.mark.parametrize(
    ("params", "message"),
    [({"ratio": 0.0}, "ratio"), ({"ratio": 1.5}, "ratio"), ({"margin": -1}, "margin")],
)
def test_bad_parameters_name_the_field(params: dict, message: str) -> None:
    with pytest.raises(BenchbdError, match=message):
        PatchAttack(**params)


def test_patch_must_fit_the_image() -> None:
    with pytest.raises(BenchbdError, match="does not fit"):
        PatchAttack(margin=30).check_dataset(43, (32, 32, 3))
    with pytest.raises(BenchbdError, match="target"):
        PatchAttack(target=43).check_dataset(43, (32, 32, 3))
