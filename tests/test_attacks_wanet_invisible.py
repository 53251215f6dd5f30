"""WaNet's warping field and noise mode, and the invisible perturbations' budget, labels and surrogate UAP."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchbd.attacks import apply_trigger_uint8
from benchbd.data.images import ImageData
from benchbd.errors import BenchbdError
from benchbd.harness.metrics import attack_success_rate, clean_accuracy
from benchbd.harness.poisoning import assign_targets, poison_training_set
from benchbd.registry import default_registry
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import Trainer
from benchbd import float_images
from benchbd_builtins.attacks.invisible import InvisibleAttack
from benchbd_builtins.attacks.wanet import WaNetAttack, identity_grid
from benchbd_builtins.models import small_cnn

SIZE = 32


def random_data(n: int = 400, classes: int = 5) -> ImageData:
    rng = np.random.default_rng(1)
    arrays = {
        "x_train": rng.integers(0, 256, (n, SIZE, SIZE, 3), dtype=np.uint8),
        "y_train": rng.integers(0, classes, n),
        "x_test": rng.integers(0, 256, (50, SIZE, SIZE, 3), dtype=np.uint8),
        "y_test": rng.integers(0, classes, 50),
    }
    return ImageData.from_arrays("random", arrays, family="gtsrb", num_classes=classes)


def prepared(attack: WaNetAttack | InvisibleAttack, data: ImageData, seed: int = 0) -> WaNetAttack | InvisibleAttack:
    assign_targets([attack], data)
    attack.prepare(data.x_train, data.y_train, data.num_classes, np.random.default_rng(seed))
    return attack


def displacement(attack: WaNetAttack) -> torch.Tensor:
    """The field minus the identity grid, (H, W, 2), in units of s / image size."""
    return (attack.sampling_grid - identity_grid(SIZE, SIZE))[0] / (attack.strength / SIZE)


def test_both_attacks_are_registered() -> None:
    assert {"wanet", "invisible"} <= set(default_registry().names("attacks"))


# -- WaNet ------------------------------------------------------------------------------------------------------
def test_zero_strength_warp_is_the_identity() -> None:
    data = random_data()
    attack = prepared(WaNetAttack(strength=0.0), data)
    x = float_images(data.x_train[:16])
    assert torch.allclose(attack.trigger(x), x, atol=1e-5)
    assert (apply_trigger_uint8(attack, data.x_train[:16]) == data.x_train[:16]).all()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize(("grid_size", "strength"), [(8, 1.0), (6, 0.75), (2, 0.5)])
def test_field_is_smooth_and_of_magnitude_s_over_size(seed: int, grid_size: int, strength: float) -> None:
    attack = prepared(WaNetAttack(strength=strength, grid_size=grid_size), random_data(), seed)
    d = displacement(attack)
    # The control offsets have mean |.| 1 before upsampling; bicubic smoothing lowers it a little.
    assert 0.4 < float(d.abs().mean()) <= 1.05
    assert float(d.abs().max()) < 4
    # Away from the border (where clipping to [-1, 1] cuts the field), neighbouring pixels move alike: the change
    # per pixel is about the control spacing's share, (k - 1) / (size - 1), of the largest displacement.
    inner = d[3:-3, 3:-3]
    step = max(float((inner[1:] - inner[:-1]).abs().max()), float((inner[:, 1:] - inner[:, :-1]).abs().max()))
    assert step <= 3 * (grid_size - 1) / (SIZE - 1) * float(inner.abs().max())


def test_same_seed_same_field_other_seed_other_field() -> None:
    data = random_data()
    a, b, c = (prepared(WaNetAttack(), data, seed) for seed in (0, 0, 1))
    assert torch.equal(a.sampling_grid, b.sampling_grid)
    assert float((a.sampling_grid - c.sampling_grid).abs().max()) > 0.01


def test_trigger_is_batched_and_keeps_dtype() -> None:
    data = random_data()
    attack = prepared(WaNetAttack(strength=1.0, grid_size=8), data)
    x = float_images(data.x_train[:6]).double()
    batched = attack.trigger(x)
    assert batched.dtype == torch.float64
    single = torch.cat([attack.trigger(x[i : i + 1]) for i in range(len(x))])
    assert torch.allclose(batched, single)
    assert float((batched - x).abs().mean()) > 0.01


def test_wanet_poisons_its_fraction_with_dirty_labels() -> None:
    data = random_data()
    attack = WaNetAttack(ratio=0.2, strength=1.0, grid_size=8)
    assign_targets([attack], data)
    attack.prepare(data.x_train, data.y_train, data.num_classes, np.random.default_rng(0))
    poisoned = poison_training_set(data, [attack], np.random.default_rng(0))
    mask = poisoned.mask
    assert mask.sum() == 80
    assert (data.y_train[mask] != attack.target).all() and (poisoned.y[mask] == attack.target).all()
    assert (poisoned.y[~mask] == data.y_train[~mask]).all() and (poisoned.x[~mask] == data.x_train[~mask]).all()
    assert (poisoned.x[mask] == apply_trigger_uint8(attack, data.x_train[mask])).all()


def test_noise_mode_examples_keep_labels_and_are_in_the_mask() -> None:
    data = random_data()
    attack = prepared(WaNetAttack(ratio=0.1, strength=1.0, grid_size=8, noise=True, cross_ratio=2.0), data)
    poisoned = poison_training_set(data, [attack], np.random.default_rng(0))
    mask = poisoned.mask
    assert mask.sum() == 40 + 80 == attack.poison_count(len(mask)) + attack.extra_count(len(mask))
    relabelled = mask & (poisoned.y != data.y_train)
    noisy = mask & ~(apply_trigger_uint8(attack, data.x_train) == poisoned.x).all(axis=(1, 2, 3))
    assert relabelled.sum() == 40 and noisy.sum() == 80
    assert not (relabelled & noisy).any()
    assert (poisoned.y[noisy] == data.y_train[noisy]).all()
    assert (poisoned.x[noisy] != data.x_train[noisy]).any(axis=(1, 2, 3)).all()
    # The noisy fields stay within 1 / size (half a pixel) of the backdoor field.
    noise = np.random.default_rng(0).uniform(-1, 1, (3, SIZE, SIZE, 2)).astype(np.float32)
    gap = (attack.noisy_fields(noise) - attack.sampling_grid).abs()
    assert float(gap.max()) <= 1 / SIZE + 1e-6 and float(gap.mean()) > 0.3 / SIZE


def test_noise_mode_needs_enough_free_examples() -> None:
    data = random_data()
    attack = prepared(WaNetAttack(ratio=0.5, noise=True, cross_ratio=2.0), data)
    with pytest.raises(BenchbdError, match="cross_ratio"):
        poison_training_set(data, [attack], np.random.default_rng(0))


def test_wanet_probe_is_a_new_field_with_the_same_parameters() -> None:
    data = random_data()
    attack = prepared(WaNetAttack(strength=1.0, grid_size=8), data)
    probe = attack.probe(np.random.default_rng(7))
    assert (probe.strength, probe.grid_size) == (1.0, 8)
    assert float((probe.sampling_grid - attack.sampling_grid).abs().max()) > 0.01
    assert 0.4 < float(displacement(probe).abs().mean()) <= 1.05


def test_wanet_backdoor_is_learned_end_to_end(colour_data: ImageData) -> None:
    """A small-cnn trained (fast profile, 24 epochs) on colour classes with 20% warped and relabelled examples. At
    the profile's 8 epochs the backdoor was learned or not with the seed (ASR 0.29-1.0 over seeds 0-3); at 16 it was
    always learned on one 2-core AMD EPYC and on an Intel Xeon, but not on another AMD EPYC host (seeds 0-3: 0.37,
    0.41, 1.0, 1.0: fp32 kernels differ between processors); at 24, 1.0 for seeds 0-3 there."""
    data = colour_data
    x, y, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
    attack = WaNetAttack(target=0, strength=1.0, grid_size=4, ratio=0.2)
    attack.prepare(x, y, data.num_classes, np.random.default_rng(0))
    poisoned = poison_training_set(data, [attack], np.random.default_rng(0))
    trainer = Trainer(replace(PROFILES["fast"], epochs=24), torch.device("cpu"), seed=0)
    torch.manual_seed(0)
    model = trainer.fit(small_cnn(data.num_classes), poisoned.x, poisoned.y)
    assert clean_accuracy(trainer, model, data) > 0.9
    predictions = trainer.predict(model, x_test[y_test != 0]).numpy()
    assert (predictions == 0).mean() < 0.1
    assert attack_success_rate(trainer, model, data, attack, boosted=False) > 0.9


def test_wanet_needs_prepare() -> None:
    with pytest.raises(BenchbdError, match="prepare"):
        WaNetAttack(target=0).trigger(torch.zeros(1, 3, SIZE, SIZE))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"ratio": 0.0}, "ratio"),
        ({"strength": -0.1}, "strength"),
        ({"grid_size": 1}, "grid_size"),
        ({"cross_ratio": -1.0}, "cross_ratio"),
    ],
)
def test_wanet_bad_parameters_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(BenchbdError, match=f"'{field}'"):
        WaNetAttack(**params)


def test_wanet_grid_must_fit_the_image() -> None:
    with pytest.raises(BenchbdError, match="'grid_size'"):
        WaNetAttack(grid_size=33).check_dataset(43, (SIZE, SIZE, 3))


# -- invisible --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("epsilon", [8.0, 5.5])
def test_static_pattern_respects_the_linf_bound_after_rounding(epsilon: float) -> None:
    data = random_data()
    attack = prepared(InvisibleAttack(epsilon=epsilon), data)
    x = data.x_train[:32]
    change = np.abs(apply_trigger_uint8(attack, x).astype(int) - x.astype(int))
    assert change.max() <= epsilon + 0.5
    unclipped = (x >= 16) & (x <= 239)
    assert (change[unclipped] >= epsilon - 0.5).all()
    stats = attack.stats()
    assert stats["linf"] == pytest.approx(epsilon / 255)
    assert stats["l2"] == pytest.approx(epsilon / 255 * np.sqrt(3 * SIZE * SIZE), rel=1e-5)


def test_static_pattern_is_deterministic_and_the_probe_is_another_one() -> None:
    data = random_data()
    a, b, c = (prepared(InvisibleAttack(), data, seed) for seed in (0, 0, 1))
    assert torch.equal(a.delta, b.delta)
    assert not torch.equal(a.delta, c.delta)
    probe = a.probe(np.random.default_rng(3))
    assert not torch.equal(probe.delta, a.delta)
    assert float(probe.delta.abs().max()) == pytest.approx(a.epsilon / 255)


def test_invisible_poisons_30_percent_with_dirty_labels() -> None:
    data = random_data()
    attack = prepared(InvisibleAttack(), data)
    poisoned = poison_training_set(data, [attack], np.random.default_rng(0))
    mask = poisoned.mask
    assert mask.sum() == 120
    assert (data.y_train[mask] != attack.target).all() and (poisoned.y[mask] == attack.target).all()
    assert (poisoned.y[~mask] == data.y_train[~mask]).all()
    assert np.abs(poisoned.x[mask].astype(int) - data.x_train[mask].astype(int)).max() <= attack.epsilon


def test_adversarial_perturbation_pushes_held_out_images_toward_the_target(colour_data: ImageData) -> None:
    torch.manual_seed(0)
    x, y, x_test, y_test = colour_data.x_train, colour_data.y_train, colour_data.x_test, colour_data.y_test
    attack = InvisibleAttack(target=0, perturbation="adversarial", surrogate_size=600, surrogate_epochs=3, uap_steps=10)
    attack.prepare(x, y, 4, np.random.default_rng(0))
    assert float(attack.delta.abs().max()) <= 8 / 255 + 1e-7
    held_out = float_images(x_test[y_test != 0])
    signs = np.random.default_rng(5).integers(0, 2, held_out.shape[1:]) * 2 - 1
    random_pattern = torch.from_numpy(signs).float() * 8 / 255  # the same L∞ norm, and a larger L2 norm

    def target_probability(images: torch.Tensor) -> float:
        with torch.no_grad():
            return float(F.softmax(attack.surrogate(images), dim=1)[:, 0].mean())

    clean = target_probability(held_out)
    randomly_perturbed = target_probability((held_out + random_pattern).clamp(0, 1))
    assert target_probability(attack.trigger(held_out)) > 2 * max(clean, randomly_perturbed)
    change = np.abs(apply_trigger_uint8(attack, x_test).astype(int) - x_test.astype(int))
    assert change.max() <= 8

    probe = attack.probe(np.random.default_rng(1))
    assert probe.target != 0 and probe.surrogate is attack.surrogate
    assert not torch.equal(probe.delta, attack.delta)


def test_invisible_needs_prepare() -> None:
    with pytest.raises(BenchbdError, match="prepare"):
        InvisibleAttack(target=0).trigger(torch.zeros(1, 3, SIZE, SIZE))


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"ratio": 0.0}, "ratio"),
        ({"epsilon": 0.03}, "epsilon"),
        ({"epsilon": 300.0}, "epsilon"),
        ({"perturbation": "dynamic"}, "perturbation"),
        ({"surrogate_size": 1}, "surrogate_size"),
        ({"surrogate_epochs": 0}, "surrogate_epochs"),
        ({"uap_steps": 0}, "uap_steps"),
    ],
)
def test_invisible_bad_parameters_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(BenchbdError, match=f"'{field}'"):
        InvisibleAttack(**params)
