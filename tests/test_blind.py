"""The blind code-poisoning attack: MGDA's min-norm solver, the loss hook's contract (data untouched, batch-norm
statistics kept, schedule), and a backdoor learned from a clean training set on small synth-signs."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchbd import ImageData
from benchbd.data.images import load_npz
from benchbd.errors import BenchbdError
from benchbd.harness.metrics import attack_success_rate, clean_accuracy
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import StepInfo, Trainer, cross_entropy_loss
from benchbd_builtins.attacks.blind import BlindAttack, frozen_batchnorm
from benchbd_builtins.attacks.mgda import NORMALIZATIONS, gram_matrix, mgda_scales, normalizers
from benchbd_builtins.models import narrow_cnn, small_cnn


# -- the min-norm solver ------------------------------------------------------------------------------------------
def random_task_gradients(rng: np.random.Generator, tasks: int, case: str) -> list[list[torch.Tensor]]:
    """Per-task gradients over two parameter tensors; ``case`` shapes where the min-norm point lies."""
    flat = rng.normal(size=(tasks, 24)) * rng.uniform(0.2, 5.0, size=(tasks, 1))
    if case == "inside":  # the origin is (nearly) in the hull: an interior minimiser
        flat[-1] = -flat[:-1].mean(axis=0) + 0.05 * rng.normal(size=24)
    elif case == "vertex":  # one short gradient that the others point along: the minimiser is that vertex
        flat[1:] = flat[0] * rng.uniform(2, 4, size=(tasks - 1, 1)) + 0.1 * rng.normal(size=(tasks - 1, 24))
    tensors = torch.from_numpy(flat.astype(np.float32))
    return [[row[:10].reshape(2, 5), row[10:]] for row in tensors]


def simplex_grid(tasks: int, steps: int) -> np.ndarray:
    """Every point of the simplex whose coordinates are multiples of 1/steps."""
    points = [c for c in itertools.product(range(steps + 1), repeat=tasks - 1) if sum(c) <= steps]
    grid = np.array([[*c, steps - sum(c)] for c in points], dtype=np.float64)
    return grid / steps


@pytest.mark.parametrize("tasks", [2, 3])
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_min_norm_solver_matches_brute_force_over_the_simplex(tasks: int, normalization: str) -> None:
    rng = np.random.default_rng(tasks)
    grid = simplex_grid(tasks, 2000 if tasks == 2 else 200)
    for case in ("random", "inside", "vertex") * 3:
        grads = random_task_gradients(rng, tasks, case)
        losses = rng.uniform(0.05, 4.0, size=tasks).tolist()
        alpha = mgda_scales(gram_matrix(grads), losses, normalization)
        assert alpha.shape == (tasks,) and (alpha >= 0).all() and alpha.sum() == pytest.approx(1.0)
        # Brute force straight from the tensors: ‖Σ α_i g_i / n_i‖² for every grid point.
        flat = np.stack([torch.cat([g.reshape(-1) for g in task]).double().numpy() for task in grads])
        norms = np.linalg.norm(flat, axis=1)
        n = {"l2": norms, "loss": np.array(losses), "loss+": np.array(losses) * norms, "none": np.ones(tasks)}[normalization]
        scaled = flat / n[:, None]
        best = np.min(np.sum((grid @ scaled) ** 2, axis=1))
        assert np.sum((alpha @ scaled) ** 2) <= best + 1e-6 * np.max(norms / n) ** 2


def test_normalizers_follow_their_definitions() -> None:
    gram = np.array([[4.0, 1.0], [1.0, 9.0]])
    assert normalizers(gram, [0.5, 2.0], "l2") == pytest.approx([2.0, 3.0])
    assert normalizers(gram, [0.5, 2.0], "loss") == pytest.approx([0.5, 2.0])
    assert normalizers(gram, [0.5, 2.0], "loss+") == pytest.approx([1.0, 6.0])
    assert normalizers(gram, [0.5, 2.0], "none") == pytest.approx([1.0, 1.0])


# -- μ, ν and parameters ------------------------------------------------------------------------------------------
def prepared(num_classes: int = 5, **params: object) -> BlindAttack:
    attack = BlindAttack(target=1, **params)
    attack.prepare(np.zeros((4, 32, 32, 3), np.uint8), np.zeros(4, np.int64), num_classes, np.random.default_rng(0))
    return attack


def test_trigger_overlays_a_black_and_white_pattern_in_the_corner_only() -> None:
    x = torch.rand(6, 3, 32, 32) * 0.5 + 0.25
    before = x.clone()
    out = prepared(corner="bottom-right", margin=2).trigger(x)
    assert torch.equal(x, before)
    changed = (out != x).any(dim=(0, 1)).nonzero().tolist()
    assert {tuple(p) for p in changed} == {(r, c) for r in range(27, 30) for c in range(27, 30)}
    patch = out[:, :, 27:30, 27:30]
    assert set(patch.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(patch, patch[:1, :1].expand_as(patch))
    assert torch.equal(out, prepared(corner="bottom-right", margin=2).trigger(x))


def test_backdoor_labels_target_or_next_class() -> None:
    y = torch.tensor([0, 1, 4])
    assert prepared().backdoor_labels(y).tolist() == [1, 1, 1]
    assert prepared(labels="next-class").backdoor_labels(y).tolist() == [1, 2, 0]


@pytest.mark.parametrize(
    ("params", "field"),
    [({"pattern_size": 0}, "pattern_size"), ({"mgda_every": 0}, "mgda_every"), ({"weight_backdoor": 0.0}, "weight_backdoor"),
     ({"weight_main": -1.0}, "weight_main"), ({"last_epochs": 0}, "last_epochs"), ({"loss_threshold": 0.0}, "loss_threshold")],
)
def test_bad_parameters_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(BenchbdError, match=field):
        BlindAttack(**params)


def test_pattern_must_fit_and_prepare_comes_first() -> None:
    with pytest.raises(BenchbdError, match="does not fit"):
        BlindAttack(pattern_size=5, margin=28).check_dataset(43, (32, 32, 3))
    with pytest.raises(BenchbdError, match="prepare"):
        BlindAttack(target=0).trigger(torch.zeros(1, 3, 32, 32))


# -- the loss hook ------------------------------------------------------------------------------------------------
def batch(n: int = 16, classes: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(n, 3, 32, 32, generator=generator), torch.randint(0, classes, (n,), generator=generator)


def fresh_model(classes: int = 5) -> torch.nn.Module:
    torch.manual_seed(0)
    return small_cnn(classes).train()


STEP = StepInfo(epoch=0, epochs=1, batch=0, batches=1)


@pytest.mark.parametrize("params", [{}, {"balance": "fixed"}, {"evade_neural_cleanse": True, "labels": "next-class"}])
def test_hook_leaves_the_data_untouched(params: dict) -> None:
    x, y = batch()
    x_before, y_before = x.clone(), y.clone()
    loss = prepared(**params).loss_computation(cross_entropy_loss)(fresh_model(), x, y, STEP)
    loss.backward()
    assert torch.equal(x, x_before) and torch.equal(y, y_before)


@pytest.mark.parametrize("params", [{}, {"evade_neural_cleanse": True}])
def test_backdoor_passes_leave_batch_norm_statistics_as_the_honest_pass_does(params: dict) -> None:
    x, y = batch()
    honest_model, blind_model = fresh_model(), fresh_model()
    cross_entropy_loss(honest_model, x, y, STEP)
    attack = prepared(**params)
    attack.loss_computation(cross_entropy_loss)(blind_model, x, y, STEP)
    assert attack.stats()["attacked_batches"] == 1
    buffers = dict(honest_model.named_buffers())
    assert buffers and all(torch.equal(buffers[name], value) for name, value in blind_model.named_buffers())
    assert all(m.training for m in blind_model.modules())
    assert all(m.track_running_stats for m in blind_model.modules() if isinstance(m, torch.nn.BatchNorm2d))


def twin_task_losses(attack: BlindAttack, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.nn.Module, list[torch.Tensor]]:
    """The main and backdoor losses recomputed on a fresh twin model the way the hook computes them."""
    twin = fresh_model()
    main = F.cross_entropy(twin(x), y)
    with frozen_batchnorm(twin):
        backdoor = F.cross_entropy(twin(attack.trigger(x)), attack.backdoor_labels(y))
    return twin, [main, backdoor]


def test_fixed_balance_returns_the_normalised_weighted_sum() -> None:
    x, y = batch()
    attack = prepared(balance="fixed", weight_main=3.0, weight_backdoor=1.0)
    loss = attack.loss_computation(cross_entropy_loss)(fresh_model(), x, y, STEP)
    _, (main, backdoor) = twin_task_losses(attack, x, y)
    assert float(loss.detach()) == pytest.approx(0.75 * float(main.detach()) + 0.25 * float(backdoor.detach()), rel=1e-5)


def test_mgda_loss_gradient_is_the_min_norm_combination_of_the_task_gradients() -> None:
    x, y = batch()
    attack = prepared(normalization="none")
    model = fresh_model()
    loss = attack.loss_computation(cross_entropy_loss)(model, x, y, STEP)
    combined = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, list(model.parameters()))])
    twin, losses = twin_task_losses(attack, x, y)
    gram = gram_matrix([torch.autograd.grad(task, list(twin.parameters()), retain_graph=True) for task in losses])
    gamma = np.linspace(0, 1, 2001)
    squared_norms = gamma**2 * gram[0, 0] + 2 * gamma * (1 - gamma) * gram[0, 1] + (1 - gamma) ** 2 * gram[1, 1]
    assert float(combined.double().norm()) ** 2 <= squared_norms.min() * (1 + 1e-4)


def schedule_run(attack: BlindAttack, epoch_losses: list[float], batches: int = 3) -> list[bool]:
    """Call the hook for each batch of each epoch with an honest loss of the given value; which were attacked."""
    model, (x, y) = fresh_model(), batch(8)
    outputs: list[torch.Tensor] = []

    def honest(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
        loss = F.cross_entropy(model(x), y)
        outputs.append(loss * (epoch_losses[step.epoch] / float(loss.detach())))
        return outputs[-1]

    loss_computation = attack.loss_computation(honest)
    attacked = []
    for epoch, b in itertools.product(range(len(epoch_losses)), range(batches)):
        loss = loss_computation(model, x, y, StepInfo(epoch, len(epoch_losses), b, batches))
        attacked.append(loss is not outputs[-1])
    return attacked


def test_schedule_last_epochs() -> None:
    attacked = schedule_run(prepared(schedule="last-epochs", last_epochs=2, balance="fixed"), [3.0] * 4)
    assert attacked == [False] * 6 + [True] * 6


def test_schedule_switches_on_after_an_epoch_below_the_threshold_and_stays_on() -> None:
    attack = prepared(schedule="loss-below", loss_threshold=1.0, balance="fixed")
    attacked = schedule_run(attack, [3.0, 0.8, 2.0, 2.0])
    assert attacked == [False] * 6 + [True] * 6
    assert attack.stats() == {
        "batches": 12, "attacked_batches": 6, "first_attacked_epoch": 2, "mean_scales": {"main": 0.5, "backdoor": 0.5}
    }


def test_schedule_always() -> None:
    assert all(schedule_run(prepared(balance="fixed"), [3.0, 3.0]))


def test_stats_count_one_training_and_repeat_with_the_seed() -> None:
    """The harness stores stats with every record and restores them on resume: the same seed gives the same
    figures, JSON-serialisable; a new loss computation (a new training) starts its own count."""
    runs = []
    for _ in range(2):
        attack = prepared(schedule="last-epochs", last_epochs=1, evade_neural_cleanse=True, mgda_every=2)
        schedule_run(attack, [3.0, 3.0])
        runs.append(attack.stats())
    stats = runs[0]
    assert stats == runs[1] == json.loads(json.dumps(stats))
    counts = {key: stats[key] for key in ("batches", "attacked_batches", "first_attacked_epoch", "mgda_solves")}
    assert counts == {"batches": 6, "attacked_batches": 3, "first_attacked_epoch": 1, "mgda_solves": 2}
    assert list(stats["mean_scales"]) == ["main", "backdoor", "evasion"]
    assert sum(stats["mean_scales"].values()) == pytest.approx(1.0, abs=1e-3)
    initial_mask_l1 = float(torch.sigmoid(attack._nc_init[0]).sum())
    assert abs(stats["nc_mask_l1"] - initial_mask_l1) > 1.0  # three Adam steps moved the evasion mask
    attack.loss_computation(cross_entropy_loss)
    assert attack.stats() == {}


# -- end to end ---------------------------------------------------------------------------------------------------
def test_blind_attack_backdoors_a_model_trained_on_clean_data(small_signs: Path) -> None:
    """MGDA-balanced blind attack from the first batch, the cpu profile (narrow-cnn): the paper's outcome (table 2) at
    small scale."""
    data = ImageData.from_arrays("small-signs", load_npz(small_signs), family="gtsrb", num_classes=43)
    x_train, y_train = data.x_train.copy(), data.y_train.copy()
    attack = BlindAttack(target=0)
    attack.prepare(data.x_train, data.y_train, data.num_classes, np.random.default_rng(0))
    trainer = Trainer(PROFILES["cpu"], torch.device("cpu"), seed=0)
    models = {}
    for name, loss in (("clean", cross_entropy_loss), ("blind", attack.loss_computation(cross_entropy_loss))):
        torch.manual_seed(0)
        models[name] = trainer.fit(narrow_cnn(data.num_classes), data.x_train, data.y_train, loss_computation=loss)
    assert np.array_equal(data.x_train, x_train) and np.array_equal(data.y_train, y_train)
    accuracy = {name: clean_accuracy(trainer, model, data) for name, model in models.items()}
    asr = {name: attack_success_rate(trainer, model, data, attack, boosted=False) for name, model in models.items()}
    assert asr["clean"] < 0.2, asr
    assert asr["blind"] >= 0.9, asr
    assert accuracy["blind"] >= accuracy["clean"] - 0.03, accuracy
    stats = attack.stats()
    batches = PROFILES["cpu"].epochs * math.ceil(len(data.y_train) / PROFILES["cpu"].batch_size)
    assert stats["batches"] == stats["attacked_batches"] == stats["mgda_solves"] == batches
    assert stats["first_attacked_epoch"] == 0 and 0 < stats["mean_scales"]["backdoor"] < 1
