"""Frequency analysis: DCT spectra show high-frequency triggers, and the spectrum CNN learns to spot them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from benchbd.errors import BenchbdError
from benchbd_builtins.defenses import probes
from benchbd_builtins.defenses.frequency import FrequencyAnalysis, dct_spectra, train_detector, triggered_probability


def smooth_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 (n, 32, 32, 3) images with low-frequency content only: 4×4 random colour fields, upsampled."""
    coarse = torch.from_numpy(rng.uniform(40, 215, (n, 3, 4, 4))).float()
    fine = torch.nn.functional.interpolate(coarse, size=(32, 32), mode="bicubic", align_corners=False)
    return fine.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def blend(x: np.ndarray, pattern: np.ndarray, alpha: float) -> np.ndarray:
    """Blend-R (Chen et al. 2017): (1 − α)·x + α·pattern, pattern uniform random noise."""
    return ((1 - alpha) * x + alpha * pattern).round().astype(np.uint8)


def high_frequency_energy(spectra: torch.Tensor) -> torch.Tensor:
    """Energy of the DCT coefficients (u, v) with u + v ≥ 32, per image."""
    u, v = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    return (spectra**2)[..., u + v >= 32].sum((1, 2))


def test_a_checkerboard_adds_high_frequency_energy() -> None:
    x = smooth_images(4, np.random.default_rng(0))
    checkered = x.copy()
    checkered[:, 24:32:2, 24:32:2] = 255
    clean, triggered = dct_spectra(x), dct_spectra(checkered)
    assert clean.shape == (4, 3, 32, 32)
    # Orthonormal: the DCT keeps the images' energy (Parseval).
    pixel_energy = torch.from_numpy((x / 255.0) ** 2).float().sum((1, 2, 3))
    torch.testing.assert_close((clean**2).sum((1, 2, 3)), pixel_energy, rtol=1e-4, atol=1e-3)
    assert (high_frequency_energy(triggered) > 10 * high_frequency_energy(clean)).all()


def test_the_detector_trained_on_one_blend_pattern_spots_another() -> None:
    rng = np.random.default_rng(0)
    train_pattern, test_pattern = rng.uniform(0, 255, (2, 32, 32, 3))
    clean = smooth_images(120, rng)
    detector = train_detector(clean, blend(clean, train_pattern, 0.075), epochs=3, seed=0)
    held_out = smooth_images(100, rng)
    scores = triggered_probability(detector, np.concatenate([held_out, blend(held_out, test_pattern, 0.075)]))
    assert roc_auc_score(np.repeat([0, 1], 100), scores) > 0.9


def test_scores_every_training_example_and_flags_above_one_half(backdoored) -> None:
    # BaDLoss Table 1 measured AUROC 0.08 for frequency analysis against patch on GTSRB (the flipped-patch
    # probe does not teach the CNN the attack's spectrum), so only the verdict's form is checked here.
    verdict = FrequencyAnalysis(epochs=1).score_examples(backdoored.context)
    n = len(backdoored.poisoned.y)
    assert verdict.scores.shape == (n,) and ((verdict.scores >= 0) & (verdict.scores <= 1)).all()
    assert (verdict.flagged == (verdict.scores > 0.5)).all()


def test_trains_on_the_probe_set_badloss_uses(backdoored, monkeypatch: pytest.MonkeyPatch) -> None:
    """Section 5.1: frequency analysis gets BaDLoss's probes, not the whole trusted set. Each defense's call of
    inject_probes is captured and the defense stopped there."""
    from benchbd_builtins.defenses import badloss, frequency

    class Captured(Exception):
        pass

    captured = {}
    for name, module in (("badloss", badloss), ("frequency", frequency)):
        def capture(context, n, name=name):
            captured[name] = probes.inject_probes(context, n)
            raise Captured

        monkeypatch.setattr(module, "inject_probes", capture)
    for defense in (badloss.BaDLoss(), FrequencyAnalysis()):
        with pytest.raises(Captured):
            defense.score_examples(backdoored.context)
    ours, theirs = captured["frequency"], captured["badloss"]
    assert len(ours.clean) == len(ours.backdoor) > 0
    assert all(np.array_equal(getattr(ours, part), getattr(theirs, part)) for part in ("clean", "backdoor", "mislabeled"))
    assert np.array_equal(ours.x, theirs.x)


@pytest.mark.parametrize(("params", "field"), [({"epochs": 0}, "epochs"), ({"threshold": 1.0}, "threshold")])
def test_bad_parameters_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(BenchbdError, match=field):
        FrequencyAnalysis(**params)
