"""PGD adversarial training and the AEGIS model-level defense (CPU, seconds)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchbd import BenchbdError, ImageClassifier, ModelContext, ModelVerdict
from benchbd.data.synth_signs import generate_synth_signs
from benchbd.params import build
from benchbd.registry import default_registry
from benchbd.training.adversarial import adversarial_training_loss, pgd_perturb
from benchbd.training.profiles import get_profile
from benchbd.training.trainer import StepInfo, Trainer, cross_entropy_loss
from benchbd_builtins.defenses.aegis import (
    AEGIS, binomial_interval, cluster_labels, count_clusters, extra_mass, majority, parse_classes, translate_toward,
    translation_clusters,
)

CLASSES = 4
Signs = dict[str, np.ndarray]


def tiny_cnn(num_classes: int) -> ImageClassifier:
    def block(channels_in: int, channels_out: int) -> list[nn.Module]:
        return [nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False), nn.BatchNorm2d(channels_out), nn.ReLU()]

    backbone = nn.Sequential(
        *block(3, 8), nn.MaxPool2d(2), *block(8, 16), nn.MaxPool2d(2), *block(16, 32),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    return ImageClassifier(backbone, 32, num_classes)


@pytest.fixture(scope="module")
def signs() -> dict[str, np.ndarray]:
    """Four frequent, dissimilar synth-signs classes (speed limit 30, priority road, yield, keep right) of a small
    draw, relabelled 0-3."""
    data = generate_synth_signs(seed=0, n_train=2150, n_test=430)
    keep = np.array([1, 12, 13, 38])
    out = {}
    for split in ("train", "test"):
        mask = np.isin(data[f"y_{split}"], keep)
        out[f"x_{split}"] = data[f"x_{split}"][mask]
        out[f"y_{split}"] = np.searchsorted(keep, data[f"y_{split}"][mask])
    return out


@pytest.fixture(scope="module")
def trainer() -> Trainer:
    return Trainer(replace(get_profile("fast"), epochs=6), torch.device("cpu"), seed=0)


@pytest.fixture(scope="module")
def trained(signs: dict[str, np.ndarray], trainer: Trainer) -> ImageClassifier:
    torch.manual_seed(0)
    model = trainer.fit(tiny_cnn(CLASSES), signs["x_train"], signs["y_train"])
    accuracy = (trainer.predict(model, signs["x_test"]).numpy() == signs["y_test"]).mean()
    assert accuracy > 0.6, accuracy  # the tests below need a model that has learnt something
    return model


def images(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255


# -- PGD and adversarial training -----------------------------------------------------------------------------------


def test_pgd_stays_in_ball_and_box_and_raises_loss(trained: ImageClassifier, signs: Signs) -> None:
    x, y = images(signs["x_test"][:64]), torch.from_numpy(signs["y_test"][:64])
    eps = 4 / 255
    generator = torch.Generator().manual_seed(0)
    adversarial = pgd_perturb(trained, x, y, eps=eps, step_size=1 / 255, steps=5, generator=generator)
    assert adversarial.dtype == torch.float32 and not adversarial.requires_grad
    assert (adversarial - x).abs().max() <= eps + 1e-6
    assert adversarial.min() >= 0 and adversarial.max() <= 1
    with torch.no_grad():
        assert F.cross_entropy(trained(adversarial), y) > F.cross_entropy(trained(x), y) + 0.1

    l2 = pgd_perturb(trained, x, y, eps=0.5, step_size=0.2, steps=5, generator=generator, norm="l2")
    assert (l2 - x).flatten(1).norm(dim=1).max() <= 0.5 + 1e-5
    assert l2.min() >= 0 and l2.max() <= 1


def test_pgd_restores_mode_and_leaves_batchnorm_statistics(trained: ImageClassifier, signs: Signs) -> None:
    x, y = images(signs["x_test"][:16]), torch.from_numpy(signs["y_test"][:16])
    before = {k: v.clone() for k, v in trained.state_dict().items()}
    trained.train()
    try:
        pgd_perturb(trained, x, y, eps=0.03, step_size=0.01, steps=3, generator=torch.Generator().manual_seed(0))
        assert trained.training
    finally:
        trained.eval()
    after = trained.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_pgd_under_bf16_autocast_returns_float32_in_ball(trained: ImageClassifier, signs: Signs) -> None:
    x, y = images(signs["x_test"][:16]), torch.from_numpy(signs["y_test"][:16])
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        generator = torch.Generator().manual_seed(0)
        adversarial = pgd_perturb(trained, x, y, eps=0.03, step_size=0.01, steps=3, generator=generator)
    assert adversarial.dtype == torch.float32
    assert (adversarial - x).abs().max() <= 0.03 + 1e-6
    assert not torch.equal(adversarial, x)


def test_each_training_seed_draws_its_own_random_starts() -> None:
    """The backdoored model and each clean model train with their own seeds: their PGD random starts differ too
    (all of them drew seed 0's before), and one seed's starts are the same at every call."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 4))
    x, y = torch.full((4, 3, 8, 8), 0.5), torch.zeros(4, dtype=torch.long)
    seen: list[torch.Tensor] = []

    def recording(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, step: StepInfo) -> torch.Tensor:
        seen.append(xb.detach().clone())
        return cross_entropy_loss(model, xb, yb, step)

    loss = adversarial_training_loss(recording, eps=0.1, step_size=0.01, steps=0)  # the random start alone
    for seed in (0, 0, 1):
        loss(model, x, y, StepInfo(epoch=0, epochs=1, batch=0, batches=1, seed=seed))
    assert torch.equal(seen[0], seen[1]) and not torch.equal(seen[0], seen[2])
    assert not torch.equal(seen[0], x)


def test_adversarial_training_loss_attacks_within_ball_and_costs_more(trained: ImageClassifier, signs: Signs) -> None:
    x, y = images(signs["x_test"][:64]), torch.from_numpy(signs["y_test"][:64])
    eps = 8 / 255
    seen: list[torch.Tensor] = []
    modes: list[bool] = []

    def recording(model: nn.Module, xb: torch.Tensor, yb: torch.Tensor, step: StepInfo) -> torch.Tensor:
        seen.append(xb.detach().clone())
        modes.append(model.training)
        return cross_entropy_loss(model, xb, yb, step)

    loss = adversarial_training_loss(recording, eps=eps, step_size=2 / 255, steps=7)
    step = StepInfo(epoch=0, epochs=1, batch=0, batches=1)
    state = {k: v.clone() for k, v in trained.state_dict().items()}
    trained.train()
    try:
        adversarial_loss = loss(trained, x, y, step)
        assert modes == [True]  # the wrapped loss runs in the caller's mode
        trained.load_state_dict(state)  # the train-mode forward moved BatchNorm's running statistics
        loss(trained, x, y, step)
        trained.load_state_dict(state)
        trained.eval()
        with torch.no_grad():
            clean_loss = cross_entropy_loss(trained, x, y, step)
    finally:
        trained.load_state_dict(state)
        trained.eval()
    assert (seen[0] - x).abs().max() <= eps + 1e-6
    assert seen[0].min() >= 0 and seen[0].max() <= 1
    assert torch.equal(seen[0], seen[1])  # the random start depends only on the seed and the step
    assert adversarial_loss.requires_grad
    # BatchNorm in train mode normalises with the batch's own statistics; compare both in train mode's terms.
    trained.train()
    try:
        with torch.no_grad():
            clean_train_mode = cross_entropy_loss(trained, x, y, step)
    finally:
        trained.load_state_dict(state)
        trained.eval()
    assert float(adversarial_loss.detach()) >= float(clean_train_mode)
    assert float(adversarial_loss.detach()) > float(clean_loss)


def test_adversarial_training_runs_in_the_trainer(signs: Signs) -> None:
    trainer = Trainer(replace(get_profile("fast"), epochs=1), torch.device("cpu"), seed=0)
    torch.manual_seed(0)
    loss = AEGIS(train_steps=2).training_loss(cross_entropy_loss)
    model = trainer.fit(tiny_cnn(CLASSES), signs["x_train"][:256], signs["y_train"][:256], loss_computation=loss)
    assert not model.training
    assert all(torch.isfinite(p).all() for p in model.parameters())


# -- translation and clustering -------------------------------------------------------------------------------------


def test_translation_raises_target_probability_within_ball(trained: ImageClassifier, signs: Signs) -> None:
    x, y = images(signs["x_test"]), signs["y_test"]
    target = 2
    seeds = x[y != target][:48]
    eps = 8 / 255
    translated = translate_toward(trained, seeds, target, eps=eps, step_size=2 / 255, steps=10, batch_size=20)
    assert translated.shape == seeds.shape
    assert (translated - seeds).abs().max() <= eps + 1e-6
    assert translated.min() >= 0 and translated.max() <= 1
    with torch.no_grad():
        before = trained(seeds).softmax(1)[:, target]
        after = trained(translated).softmax(1)[:, target]
    assert after.mean() > before.mean() + 0.3
    assert (after > before).float().mean() > 0.9


def blobs(rng: np.random.Generator, sizes: list[int], dim: int = 16, gap: float = 12.0) -> np.ndarray:
    """Gaussian blobs of unit spread whose centres are ``gap`` apart along distinct axes."""
    parts = []
    for index, size in enumerate(sizes):
        centre = np.zeros(dim)
        centre[index % dim] = gap * (index > 0)
        parts.append(rng.normal(size=(size, dim)) + centre)
    return np.concatenate(parts)


@pytest.mark.parametrize("method", ["mean-shift", "hdbscan"])
def test_count_clusters_one_and_two_blobs(method: str) -> None:
    rng = np.random.default_rng(0)
    assert count_clusters(blobs(rng, [100]), method, seed=0) == 1
    assert count_clusters(blobs(rng, [50, 50]), method, seed=0) == 2


def test_mean_shift_labels_do_not_depend_on_its_jobs() -> None:
    rng = np.random.default_rng(0)
    points = np.concatenate([rng.normal(centre, 1.0, (150, 2)) for centre in (0, 6, 12)])
    one = cluster_labels(points, jobs=1)
    assert len(set(one.tolist())) == 3 and np.array_equal(one, cluster_labels(points, jobs=2))


def test_extra_mass_and_class_parsing() -> None:
    labels = np.array([0] * 6 + [1] * 3 + [2] * 1)
    assert extra_mass(labels, 2) == pytest.approx(0.1)
    assert extra_mass(labels, 3) == 0
    assert extra_mass(np.array([0, 0, -1, -1]), 1) == pytest.approx(0.5)
    assert parse_classes("all", 3) == [0, 1, 2]
    assert parse_classes("2, 0", 3) == [0, 2]
    with pytest.raises(BenchbdError):
        parse_classes("3", 3)


def test_the_binomial_interval_is_wilsons() -> None:
    assert binomial_interval(0.5, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    low, high = binomial_interval(0.7, 500)
    assert high - low == pytest.approx(0.08, abs=0.002)  # ± 4 points at 500 images
    assert binomial_interval(0.0, 20)[0] == 0 and 0.1 < binomial_interval(0.0, 20)[1] < 0.2


def class_features(rng: np.random.Generator, poisoned: set[int]) -> tuple[dict[int, np.ndarray], dict[int, int]]:
    """Per class of three: 30 clean-image features and 60 translation features, two separate blobs (a clean
    class in AEGIS section IV); a poisoned class's translations split into two blobs (the backdoor's own)."""
    features, own = {}, {}
    for c in range(3):
        features[c] = blobs(rng, [30, 30, 30] if c in poisoned else [30, 60])
        own[c] = 30
    return features, own


def test_judge_flags_the_class_with_an_extra_cluster() -> None:
    rng = np.random.default_rng(1)
    aegis = AEGIS()
    clean = aegis.judge(*class_features(rng, set()), seed=0)
    assert not clean.flagged and clean.suspect_classes == []
    assert clean.details["cluster_counts"] == {str(c): 2 for c in range(3)}
    poisoned = aegis.judge(*class_features(rng, {1}), seed=0)
    assert poisoned.flagged and poisoned.suspect_classes == [1]
    assert poisoned.details["cluster_counts"]["1"] == 3
    assert poisoned.score > clean.score
    # the median rule flags the same class without assuming that clean classes show two clusters
    median = AEGIS(rule="median", clusterer="hdbscan", min_cluster_size=15).judge(*class_features(rng, {2}), seed=0)
    assert median.suspect_classes == [2]


def test_the_translations_rule_counts_the_translated_set_alone() -> None:
    """RQ2's infected class: one cluster of training images, at least two of translations. A class whose own images
    split in two is flagged by the count of all clusters, not by the translations rule; a class whose translations
    split is flagged by both."""
    rng = np.random.default_rng(2)
    split_own = {0: blobs(rng, [30, 30, 60]), 1: blobs(rng, [60, 30, 30])}  # own: 60 = 30 + 30 in 0, one blob in 1
    own = {0: 60, 1: 60}
    every = AEGIS().judge(split_own, own, seed=0)
    assert every.details["cluster_counts"] == {"0": 3, "1": 3} and every.suspect_classes == [0, 1]
    assert every.details["translation_cluster_counts"] == {"0": 1, "1": 2}
    translated = AEGIS(rule="translations").judge(split_own, own, seed=0)
    assert translated.suspect_classes == [1] and translated.details["bounds"] == {"0": 1.0, "1": 1.0}
    assert translated.details["class_scores"]["0"] == 0 and 1 < translated.details["class_scores"]["1"] < 2
    labels = np.array([0, 0, 1, 1, 1, 2, 2, 0])  # 3 own images, then 5 translations
    assert translation_clusters(labels, 3).tolist() == [1, 1, 2, 2, -1]  # cluster 0 holds more own images


def model_context(model: ImageClassifier, trainer: Trainer, signs: Signs) -> ModelContext:
    return ModelContext(
        model=model, trainer=trainer, num_classes=CLASSES, clean_x=signs["x_test"][:120], clean_y=signs["y_test"][:120],
        train_x=signs["x_train"], train_y=signs["y_train"], rng=np.random.default_rng(0),
    )


def test_a_model_below_the_robustness_bar_is_not_judged(trained: ImageClassifier, trainer: Trainer, signs: Signs) -> None:
    """AEGIS assumes a robust model (section III): the check is the accuracy under the training budget's PGD, and a
    model below the bar gets the reason instead of a cluster count. (This 4-class standard model keeps about 0.2
    under PGD, near chance; the bar is set above it.)"""
    check = AEGIS(seeds=40, translate_steps=5, classes="0", class_images=20, min_adversarial_accuracy=0.5)
    clean_accuracy = (trainer.predict(trained, signs["x_test"][:120]).numpy() == signs["y_test"][:120]).mean()
    verdict = check.inspect_model(model_context(trained, trainer, signs))
    assert verdict.not_judged.startswith("not robust: adversarial accuracy")
    assert "min_adversarial_accuracy 50%" in verdict.not_judged
    assert verdict.details["adversarial_accuracy"] < min(0.5, clean_accuracy - 0.2)  # PGD took accuracy away
    assert "runs" not in verdict.details and not verdict.flagged
    judged = replace(check, min_adversarial_accuracy=0.0).inspect_model(model_context(trained, trainer, signs))
    assert not judged.not_judged and judged.details["runs"][0]["cluster_counts"].keys() == {"0"}
    assert judged.details["adversarial_accuracy"] == verdict.details["adversarial_accuracy"]  # same context seed


def test_inspect_model_end_to_end(trained: ImageClassifier, trainer: Trainer, signs: Signs) -> None:
    context = model_context(trained, trainer, signs)
    # L2 steps of length 1, the default; no robustness required of this standard model; two runs
    aegis = AEGIS(seeds=60, translate_steps=10, classes="0,2", class_images=30, min_adversarial_accuracy=0, runs=2)
    verdict = aegis.inspect_model(context)
    assert not verdict.not_judged
    low, high = verdict.details["adversarial_accuracy_interval"]
    assert 0 <= low <= verdict.details["adversarial_accuracy"] <= high <= 1 and high - low > 0.05  # 120 images
    first, second = verdict.details["runs"]
    for run in (first, second):
        assert run["clean_images"] == {"0": 30, "2": 30}  # the classes' training images, at most 30
        assert set(run["cluster_counts"]) == {"0", "2"}
        assert all(count >= 1 for count in run["cluster_counts"].values())
        assert run["seeds"] == 60
        assert min(run["translation_success"].values()) > 0.9
    assert first["class_scores"] != second["class_scores"] or first["bandwidth"] != second["bandwidth"]  # own draws
    assert np.isfinite(verdict.score)
    assert verdict.flagged == bool(verdict.suspect_classes)
    assert set(verdict.suspect_classes) <= {0, 2} and verdict.examined_classes == [0, 2]
    assert all(0 <= votes <= 2 for votes in verdict.details["flag_votes"].values())


def test_runs_combine_by_majority() -> None:
    """A class is flagged when more than half of the runs flag it; its score is the runs' lower median, positive
    exactly when it is flagged."""
    def run(suspects: list[int], scores: list[float]) -> ModelVerdict:
        return ModelVerdict(score=max(scores), flagged=bool(suspects), suspect_classes=suspects,
                            details={"class_scores": {str(c): s for c, s in enumerate(scores)}})

    runs = [run([1], [0, 1.5, 0]), run([1, 2], [0, 1.2, 1.1]), run([], [0, 0, 0])]
    verdict = majority(runs, [0, 1, 2])
    assert verdict.suspect_classes == [1] and verdict.flagged  # class 2: one vote of three
    assert verdict.details["flag_votes"] == {"0": 0, "1": 2, "2": 1}
    assert verdict.score == 1.2 and verdict.details["class_scores"] == {"0": 0, "1": 1.2, "2": 0}
    two = majority(runs[1:], [0, 1, 2])
    assert not two.flagged and two.score == 0  # one vote of two is not a majority
    assert majority(runs[:1], [0, 1, 2]).suspect_classes == [1]  # one run: its own verdict


def test_parameters_are_validated_and_registered() -> None:
    with pytest.raises(BenchbdError, match="seeds"):
        build(AEGIS, {"seeds": 0})
    with pytest.raises(BenchbdError, match="runs"):
        build(AEGIS, {"runs": 0})
    with pytest.raises(BenchbdError, match="clusterer"):
        build(AEGIS, {"clusterer": "kmeans"})
    with pytest.raises(BenchbdError, match="classes"):
        build(AEGIS, {"classes": "one,two"})
    assert build(AEGIS, {"classes": "1,3", "bandwidth": "none"}).bandwidth is None
    registry = default_registry()
    assert registry.defense("aegis") is AEGIS
    assert registry.tables["defenses"]["aegis"].kind == "model"
