"""RTTD (replicated training to detect): its distances, its KS decision, how it runs the jobs, and end to end on
tiny synth-signs with simulated servers, two of four malicious (patch, blind)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from benchbd import Attack, ImageClassifier, ImageData, TrainingRunContext
from benchbd.data.synth_signs import generate_synth_signs
from benchbd.errors import BenchbdError
from benchbd.harness.config import build_attack
from benchbd.harness.poisoning import assign_targets
from benchbd.harness.servers import build_servers
from benchbd.harness.units.training_run import training_run_context
from benchbd.registry import default_registry
from benchbd.training.profiles import get_profile
from benchbd.training.trainer import Checkpoint, Trainer, TrainingRun
from benchbd_builtins.attacks.blend import RandomBlendAttack
from benchbd_builtins.defenses.rttd import (
    ReplicatedTraining,
    cka_distance,
    judge_sub_run,
    linear_cka,
    output_distance,
    split_distances,
)


# -- distances ------------------------------------------------------------------------------------------------------
def softmax_rows(rng: np.random.Generator, n: int, classes: int) -> np.ndarray:
    logits = rng.normal(size=(n, classes))
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_identical_models_are_at_distance_zero() -> None:
    rng = np.random.default_rng(0)
    probs, features = softmax_rows(rng, 50, 7), rng.normal(size=(50, 20))
    assert output_distance(probs, probs.copy()) == 0.0
    assert linear_cka(features, features.copy()) == pytest.approx(1.0)
    assert cka_distance(features, features.copy()) == pytest.approx(0.0, abs=1e-12)


def test_output_distance_is_the_mean_total_variation() -> None:
    p = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    q = np.array([[0.0, 1.0, 0.0], [0.5, 0.25, 0.25]])
    assert output_distance(p, q) == pytest.approx((1.0 + 0.25) / 2)
    assert output_distance(p, q) == output_distance(q, p)


def test_cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(60, 16))
    y = x @ rng.normal(size=(16, 24)) + 0.5 * rng.normal(size=(60, 24))  # related to x, but not a rotation of it
    rotation, _ = np.linalg.qr(rng.normal(size=(24, 24)))
    base = linear_cka(x, y)
    assert 0.2 < base < 0.99
    assert linear_cka(x, 3.7 * y @ rotation) == pytest.approx(base, rel=1e-9)
    assert linear_cka(0.01 * x @ np.linalg.qr(rng.normal(size=(16, 16)))[0], y) == pytest.approx(base, rel=1e-9)
    assert linear_cka(x, 5.0 * x @ np.linalg.qr(rng.normal(size=(16, 16)))[0]) == pytest.approx(1.0)
    # Not invariant to anisotropic scaling, and unrelated features are far apart: the invariances are not vacuous.
    assert linear_cka(x, x * np.linspace(0.1, 10, 16)) < 0.9
    assert cka_distance(x, rng.normal(size=(60, 16))) > 0.5


def test_split_distances_measure_each_pair_on_each_split() -> None:
    rng = np.random.default_rng(2)
    outputs = [softmax_rows(rng, 40, 5) for _ in range(3)]
    splits = [np.arange(0, 20), np.arange(20, 40)]
    distances = split_distances(outputs, "output", splits)
    assert distances.shape == (2, 3, 3)
    assert np.allclose(distances, distances.transpose(0, 2, 1)) and np.all(distances[:, [0, 1, 2], [0, 1, 2]] == 0)
    assert distances[1, 0, 2] == pytest.approx(output_distance(outputs[0][20:], outputs[2][20:]))


# -- the KS decision --------------------------------------------------------------------------------------------------
def constructed(rng: np.random.Generator, n: int, benign: list[int], primary_shift: float, splits: int = 8) -> np.ndarray:
    """(splits, n, n) distances: benign–benign pairs ~ N(0.10, 0.01); a pair with a malicious member ~ N(0.40, 0.05),
    except that server 0's distances to the servers in ``benign`` are benign–benign ones shifted by ``primary_shift``."""
    d = np.zeros((splits, n, n))
    for i in range(n):
        for j in range(i + 1, n):
            if i in benign and j in benign:
                values = rng.normal(0.10, 0.01, splits)
            else:
                values = rng.normal(0.40, 0.05, splits)
            if i == 0 and j in benign:
                values = rng.normal(0.10, 0.01, splits) + primary_shift
            d[:, i, j] = d[:, j, i] = np.abs(values)
    return d


@pytest.mark.parametrize("n_benign", [2, 4])
def test_primary_drawn_from_the_benign_distribution_is_not_flagged(n_benign: int) -> None:
    rng = np.random.default_rng(3)
    n = 2 * n_benign
    benign = list(range(n_benign))  # server 0, the primary, is benign
    pvalues = [judge_sub_run(constructed(rng, n, benign, 0.0), 0, n_benign).pvalue for _ in range(40)]
    assert np.mean(np.array(pvalues) <= 0.05) <= 0.15
    test = judge_sub_run(constructed(rng, n, benign, 0.0), 0, n_benign)
    assert sorted(j for _, j in test.primary_pairs) == benign[1:]  # the r·n − 1 nearest: its benign peers
    assert len(test.reference_pairs) == max(1, math.comb(n_benign - 1, 2))
    assert all(0 not in pair for pair in test.reference_pairs)


@pytest.mark.parametrize("n_benign", [2, 4])
def test_primary_far_from_the_benign_cluster_is_flagged(n_benign: int) -> None:
    rng = np.random.default_rng(4)
    n = 2 * n_benign
    benign = list(range(n - n_benign, n))  # server 0, the primary, is malicious
    test = judge_sub_run(constructed(rng, n, [0, *benign], 0.15), 0, n_benign)
    assert test.pvalue < 1e-3 and test.statistic == 1.0
    # The reference cluster is made of benign pairs only, the C(r·n − 1, 2) smallest among the others.
    assert all(i in benign and j in benign for i, j in test.reference_pairs)
    # A shift within the benign spread is not enough.
    assert judge_sub_run(constructed(rng, n, [0, *benign], 0.002), 0, n_benign).pvalue > 0.01


def test_one_sided_test_ignores_a_primary_closer_than_the_reference_pair() -> None:
    d = np.zeros((8, 4, 4))
    d[:, 0, 1] = d[:, 1, 0] = np.linspace(0.01, 0.02, 8)  # the primary and its peer: very close
    for i, j in [(0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]:
        d[:, i, j] = d[:, j, i] = np.linspace(0.3, 0.4, 8)
    assert judge_sub_run(d, 0, 2, one_sided=True).pvalue == 1.0
    assert judge_sub_run(d, 0, 2, one_sided=False).pvalue < 1e-3


# -- parameters and the client's plan ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "field"),
    [({"distance": "lpips"}, "distance"), ({"sub_run_steps": 0}, "sub_run_steps"), ({"lime_samples": 1}, "lime_samples"),
     ({"replicated": 0}, "replicated"), ({"earliest": 1.0}, "earliest"), ({"alpha": 0.0}, "alpha"),
     ({"benign_fraction": 0.0}, "benign_fraction"), ({"splits": 0}, "splits"), ({"reference_size": 4}, "reference_size")],
)
def test_bad_parameters_name_the_field(params: dict, field: str) -> None:
    with pytest.raises(BenchbdError, match=field):
        ReplicatedTraining(**params)


def test_assumed_benign_count_and_replicable_sub_runs() -> None:
    assert ReplicatedTraining().benign_count(4, malicious_fraction=0.5) == 2
    assert ReplicatedTraining().benign_count(8, malicious_fraction=0.25) == 6
    assert ReplicatedTraining(benign_fraction=0.6).benign_count(5, malicious_fraction=0.5) == 3
    assert ReplicatedTraining(benign_fraction=0.1).benign_count(5, malicious_fraction=0.5) == 2
    starts, eligible = ReplicatedTraining(sub_run_steps=10, earliest=0.5).sub_runs(0, 95)
    assert starts == list(range(0, 95, 10)) and [starts[i] for i in eligible] == [50, 60, 70, 80, 90]
    _, eligible = ReplicatedTraining(sub_run_steps=10, earliest=0.0).sub_runs(0, 95)
    assert 0 not in eligible and len(eligible) == 9
    starts, eligible = ReplicatedTraining(sub_run_steps=10, earliest=0.5).sub_runs(40, 100)
    assert starts[0] == 40 and [starts[i] for i in eligible] == [70, 80, 90]


# -- how the jobs are run: scripted servers ---------------------------------------------------------------------------
def linear_classifier() -> ImageClassifier:
    torch.manual_seed(0)
    return ImageClassifier(nn.Sequential(nn.Flatten(), nn.Linear(8 * 8 * 3, 12), nn.Tanh()), 12, 5)


class ScriptedServer:
    """Moves every weight by ``drift`` per step (the honest training process, shared by all), plus, if malicious, its
    own direction scaled by ``push`` per step and, always, a little server-specific noise; logs every call."""

    def __init__(self, index: int, malicious: bool, log: list) -> None:
        generator = torch.Generator().manual_seed(100 + index)
        template = linear_classifier().state_dict()
        self.direction = {k: torch.randn(v.shape, generator=generator) for k, v in template.items()}
        self.noise = {k: torch.randn(v.shape, generator=generator) for k, v in template.items()}
        self.index, self.malicious, self.log = index, malicious, log

    def run(self, checkpoint: Checkpoint, steps: int) -> Checkpoint:
        steps = min(steps, 60 - checkpoint.step)
        model = {}
        for key, value in checkpoint.model.items():
            delta = 0.002 * steps * torch.ones_like(value) + 1e-5 * self.noise[key] * torch.randn(()).item()
            if self.malicious:
                delta = delta + 0.01 * steps * self.direction[key]
            model[key] = value + delta
        result = Checkpoint(checkpoint.step + steps, model, {}, {})
        self.log.append((self.index, checkpoint, checkpoint.step, result))  # keeps them alive: identities stay unique
        return result


def scripted_context(malicious: list[bool], log: list, seed: int = 0) -> TrainingRunContext:
    torch.manual_seed(seed)
    initial = Checkpoint(0, linear_classifier().state_dict(), {}, {})
    reference = np.random.default_rng(seed).integers(0, 256, (96, 8, 8, 3), dtype=np.uint8)
    return TrainingRunContext(
        servers=[ScriptedServer(i, m, log) for i, m in enumerate(malicious)],
        initial=initial,
        total_steps=60,
        new_model=linear_classifier,
        trainer=Trainer(get_profile("fast"), torch.device("cpu"), 0),
        reference_x=reference,
        rng=np.random.default_rng(seed),
        malicious_fraction=sum(malicious) / len(malicious),
    )


@pytest.mark.parametrize("distance", ["output", "cka", "zest"])
def test_each_primary_runs_its_own_chained_job_and_replicates_m_sub_runs(distance: str) -> None:
    log: list = []
    malicious = [False, True, False, True]
    defense = ReplicatedTraining(
        distance=distance, sub_run_steps=5, replicated=2, earliest=0.4, splits=6, reference_size=96, lime_samples=1000
    )
    context, reports = scripted_context(malicious, log), []
    context.progress = lambda what, done, total: reports.append((what, done, total))
    verdict = defense.judge_servers(context)
    assert verdict.flagged.tolist() == malicious
    assert min(verdict.scores[[1, 3]]) > max(verdict.scores[[0, 2]]) and np.isfinite(verdict.scores).all()
    n, m, k = 4, 2, 5
    details = verdict.details
    drawn = [len(record["start_step"]) for record in details["per_server"]]
    assert min(drawn) >= 1, drawn  # this seed's draws judge every primary
    assert verdict.extra_steps == sum(drawn) * k * (n - 1)
    assert [(done, total) for _, done, total in reports] == [(j, n) for _ in range(sum(drawn)) for j in range(1, n + 1)]
    assert reports[-1][0] == f"server 4/4's job, replicated sub-run {drawn[3]}/{drawn[3]}: models measured"
    assert (details["m"], details["k"], details["splits"], details["reference_inputs"]) == (m, k, 6, 96)
    assert details["replication_probability"] == pytest.approx(2 / 7)  # sub-runs 5..11 start at step 24 or later
    assert details["overhead_fraction"] == pytest.approx(m * k * (n - 1) / 60)
    made_by = {id(result): server for server, _, _, result in log}
    # Split the log into jobs: a job starts when its primary runs from the initial checkpoint (step 0).
    jobs: list[list] = []
    for call in log:
        if call[2] == 0:
            jobs.append([])
        jobs[-1].append(call)
    assert [job[0][0] for job in jobs] == [0, 1, 2, 3]
    for primary, job in enumerate(jobs):
        own = [c for c in job if c[0] == primary]
        # Chained: each sub-run starts from the checkpoint the primary returned last; no sub-run is run twice.
        assert [c[2] for c in own] == list(range(0, 5 * len(own), 5))
        assert all(later[1] is earlier[3] for earlier, later in zip(own, own[1:]))
        replicas = [c for c in job if c[0] != primary]
        starts = sorted({c[2] for c in replicas})
        assert len(starts) == drawn[primary] and all(s >= 0.4 * 60 for s in starts)
        for s in starts:
            same = [c for c in replicas if c[2] == s]
            # Every other server got the primary's own checkpoint: no checkpoint of another job leaks in.
            assert sorted(c[0] for c in same) == [j for j in range(n) if j != primary]
            assert len({id(c[1]) for c in same}) == 1 and made_by[id(same[0][1])] == primary
        # The job stops after its last replicated sub-run.
        assert own[-1][2] == max(starts)
        record = details["per_server"][primary]
        assert record["start_step"] == starts and len(record["pvalue"]) == drawn[primary]
        assert len(record["distances_to_others"][0]) == n - 1
    assert details["steps_run_by_primaries"] == sum(5 * len([c for c in job if c[0] == p]) for p, job in enumerate(jobs))


def test_every_distance_and_reference_set_replicates_the_same_sub_runs() -> None:
    """Common random numbers: the reference inputs, their splits and Zest's perturbations come from their own
    streams, so the same seed replicates the same sub-runs of the same jobs whichever distance judges them, on
    however many reference inputs in however many splits."""
    drawn = {}
    for distance, reference_size, splits in [("output", 96, 6), ("cka", 96, 6), ("zest", 96, 6), ("output", 48, 6),
                                             ("output", 96, 3)]:
        defense = ReplicatedTraining(
            distance=distance, sub_run_steps=5, earliest=0.4, splits=splits, reference_size=reference_size, lime_samples=100
        )
        verdict = defense.judge_servers(scripted_context([False, True, False, True], [], seed=3))
        drawn[distance, reference_size, splits] = [record["start_step"] for record in verdict.details["per_server"]]
    first = drawn["output", 96, 6]
    assert any(first) and all(steps == first for steps in drawn.values())


def test_each_sub_run_is_replicated_with_probability_m_over_the_eligible_count() -> None:
    """Figure 1's probabilistic submission: m replicated sub-runs in expectation, any eligible one equally likely,
    sometimes none; all of them when m is at least their count."""
    eligible = [3, 4, 5, 6, 7, 8, 9, 10]
    rng = np.random.default_rng(0)
    draws = [ReplicatedTraining(replicated=2).replicated_sub_runs(eligible, rng) for _ in range(20000)]
    counts = np.array([len(d) for d in draws])
    assert counts.mean() == pytest.approx(2, abs=0.03)
    assert np.mean(counts == 0) == pytest.approx((1 - 2 / 8) ** 8, abs=0.01)  # 0.100
    chosen = np.bincount([i for d in draws for i in d], minlength=11)
    assert chosen[:3].sum() == 0 and np.allclose(chosen[3:] / len(draws), 2 / 8, atol=0.015)
    assert ReplicatedTraining(replicated=9).replicated_sub_runs(eligible, rng) == eligible


def test_a_job_that_draws_no_replicated_sub_run_is_not_judged() -> None:
    class NoDraw(ReplicatedTraining):
        def replicated_sub_runs(self, eligible: list[int], rng: np.random.Generator) -> list[int]:
            return []

    log: list = []
    verdict = NoDraw(sub_run_steps=5, splits=6, reference_size=96).judge_servers(scripted_context([False, True, False], log))
    assert not verdict.flagged.any() and (verdict.scores == 0).all()
    assert verdict.extra_steps == 0 and log == []  # no job is run: nothing it returned could change a verdict
    assert [record["pvalue"] for record in verdict.details["per_server"]] == [[], [], []]


def test_needs_enough_reference_inputs() -> None:
    context = scripted_context([False, True, False], [])
    context.reference_x = context.reference_x[:10]
    with pytest.raises(BenchbdError, match="reference inputs"):
        ReplicatedTraining(splits=8, reference_size=64).judge_servers(context)


# -- end to end: real simulated servers on tiny synth-signs ------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_data() -> ImageData:
    """128 training and 128 reference images of the first ten synth-signs classes, downscaled to 16×16 pixels."""
    arrays = generate_synth_signs(seed=0, n_train=600, n_test=600)

    def first_classes(x: np.ndarray, y: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        keep = np.flatnonzero(y < 10)[:count]
        small = x[keep].reshape(-1, 16, 2, 16, 2, 3).mean(axis=(2, 4)).round().astype(np.uint8)
        return small, y[keep]

    x_train, y_train = first_classes(arrays["x_train"], arrays["y_train"], 128)
    x_test, y_test = first_classes(arrays["x_test"], arrays["y_test"], 128)
    assert len(y_train) == 128 and len(y_test) == 128
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}
    return ImageData.from_arrays("tiny-signs", arrays, family="gtsrb", num_classes=10)


@pytest.mark.parametrize(("attack_name", "params"), [("patch", {"ratio": 0.1}), ("blind", {})])
def test_flags_the_malicious_servers_and_not_the_benign_ones(tiny_data: ImageData, attack_name: str, params: dict) -> None:
    """Four servers built as the harness builds them, two malicious (their own poisoned examples; blind: its own
    pattern); every server runs the client's batch order from a checkpoint perturbed by non-deterministic-kernel
    noise (``variation="kernels"``). The job: the fast profile in batches of 32, 32 steps; sub-runs of 4 steps, 2 of
    them replicated."""
    registry = default_registry()
    data = tiny_data

    def new_attacks() -> list[Attack]:
        attack = build_attack(registry, attack_name, data, params)
        assign_targets([attack], data)
        return [attack]

    profile = dataclasses.replace(get_profile("fast"), batch_size=32)
    spec = registry.model("small-cnn")

    def new_model() -> ImageClassifier:
        return spec.build(data.num_classes)

    def make_trainer(seed: int) -> Trainer:
        return Trainer(profile, torch.device("cpu"), seed)

    torch.manual_seed(0)
    job = TrainingRun(make_trainer(0), new_model(), data.x_train, data.y_train)
    assert job.total_steps == 32
    malicious = np.array([True, False, True, False])
    servers = build_servers(data, new_attacks, malicious, make_trainer, new_model, 1.0, np.random.default_rng(1), job_seed=0)
    context = training_run_context(
        list(servers), job, new_model, reference_x=data.x_test, rng=np.random.default_rng(2), malicious_fraction=0.5,
    )
    defense = ReplicatedTraining(sub_run_steps=4, replicated=2, earliest=0.5, reference_size=128, splits=8)
    verdict = defense.judge_servers(context)
    assert verdict.flagged.tolist() == malicious.tolist(), verdict.details["per_server"]
    assert min(verdict.scores[malicious]) > max(verdict.scores[~malicious])
    drawn = [len(record["start_step"]) for record in verdict.details["per_server"]]
    assert min(drawn) >= 1, drawn  # this seed's draws judge every primary
    assert verdict.extra_steps == sum(drawn) * 4 * 3
    assert verdict.details["overhead_fraction"] == pytest.approx(2 * 4 * 3 / 32)
    for record, bad in zip(verdict.details["per_server"], malicious):
        if bad:  # in every replicated sub-run, its nearest model is much further away than the benign pair
            assert all(p > 3 * r > 0 for p, r in zip(record["primary_distance"], record["reference_distance"]))
        else:  # and a benign primary's nearest model, its benign peer, is closer than any pair of the others
            assert all(p < r for p, r in zip(record["primary_distance"], record["reference_distance"]))


def test_a_malicious_servers_attacks_draw_from_one_stream(tiny_data: ImageData) -> None:
    """A server's attacks draw their triggers and then the poisoned examples from one stream, as the matrix's
    training does: two attacks that draw noise get two patterns (each drew from a fresh copy of one stream before)."""
    made: list[list[RandomBlendAttack]] = []

    def new_attacks() -> list[Attack]:
        made.append([RandomBlendAttack(target=0, ratio=0.05), RandomBlendAttack(target=1, ratio=0.05)])
        return list(made[-1])

    def make_trainer(seed: int) -> Trainer:
        return Trainer(get_profile("fast"), torch.device("cpu"), seed)

    build_servers(tiny_data, new_attacks, np.array([True]), make_trainer, lambda: nn.Identity(), 1.0,
                  np.random.default_rng(0), job_seed=0)
    [(first, second)] = made
    assert not np.array_equal(first.noise, second.noise)
