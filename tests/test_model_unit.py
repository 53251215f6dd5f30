"""The harness's model unit: a backdoored model and a clean population judged by a model-level defense (matrices on
the cpu profile's narrow-cnn: the unit's records are under test, not the model)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch

import benchbd
from benchbd import BenchbdError, LossComputation, ModelContext, ModelDefense, ModelVerdict
from benchbd.harness.matrix import Matrix
from benchbd.harness.config import MatrixConfig
from benchbd.harness.plan import Plan
from benchbd.harness.progress import Progress
from benchbd.harness.results import outcome, read_records
from benchbd.harness.records import population_tpr_at_fpr
from benchbd.harness.units.model import checked_verdict, clean_models
from benchbd.leaderboard.tables import build_tables
from benchbd.registry import Registry, default_registry, make_manager
from benchbd_builtins.attacks.patch import PatchAttack


@dataclass
class KnownTriggerDetector(ModelDefense):
    """A test defender that knows the patch trigger: it stamps it on clean images and flags the model when
    most of them go to one class. It sees no ground truth, so the harness's metrics are what is tested."""

    name: ClassVar[str] = "known-trigger"
    description: ClassVar[str] = "test: flags models that send patched images to one class"
    seen: ClassVar[list[int]] = []

    def inspect_model(self, context: ModelContext) -> ModelVerdict:
        patch = PatchAttack(target=0)
        x = context.trainer.images(context.clean_x).float() / 255
        predictions = context.trainer.predict(context.model, (patch.trigger(x) * 255).round().to(torch.uint8))
        counts = np.bincount(predictions.cpu().numpy(), minlength=context.num_classes) / len(predictions)
        KnownTriggerDetector.seen.append(len(context.clean_y))
        context.progress("trigger stamped", 1, 1)
        top = int(counts.argmax())
        return ModelVerdict(score=float(counts.max()), flagged=bool(counts.max() > 0.5), suspect_classes=[top] if counts.max() > 0.5 else [])


@dataclass
class FirstClassesOnly(KnownTriggerDetector):
    """The known-trigger detector that examines classes 0-1 only, and names both on every model."""

    name: ClassVar[str] = "first-classes"
    description: ClassVar[str] = "test: examines classes 0 and 1"

    def inspect_model(self, context: ModelContext) -> ModelVerdict:
        verdict = super().inspect_model(context)
        return ModelVerdict(score=verdict.score, flagged=True, suspect_classes=[0, 1, 1], examined_classes=[0, 1])


@dataclass
class SecondModelRefused(KnownTriggerDetector):
    """The known-trigger detector that cannot judge the second model it is shown (the first clean one)."""

    name: ClassVar[str] = "second-refused"
    description: ClassVar[str] = "test: judges every model but the second"
    shown: ClassVar[int] = 0

    def inspect_model(self, context: ModelContext) -> ModelVerdict:
        SecondModelRefused.shown += 1
        verdict = super().inspect_model(context)
        return replace(verdict, not_judged="test: the second model") if SecondModelRefused.shown == 2 else verdict


@dataclass
class EveryModelRefused(KnownTriggerDetector):
    name: ClassVar[str] = "all-refused"
    description: ClassVar[str] = "test: judges no model"

    def inspect_model(self, context: ModelContext) -> ModelVerdict:
        return ModelVerdict(score=0.0, flagged=False, not_judged="test: assumption does not hold")


@dataclass
class OwnTrainingDetector(KnownTriggerDetector):
    """The known-trigger detector judging models trained with its own (scaled) loss."""

    name: ClassVar[str] = "own-training"
    description: ClassVar[str] = "test: trains the judged models its own way"
    training_fields: ClassVar[tuple[str, ...]] = ("loss_scale",)
    loss_scale: float = 1.0
    threshold: float = 0.5

    def training_loss(self, loss: LossComputation) -> LossComputation:
        return lambda model, x, y, step: self.loss_scale * loss(model, x, y, step)


class RecordedSteps(Progress):
    def __init__(self) -> None:
        super().__init__()
        self.steps: list[tuple[str, int, int]] = []

    def step(self, label: str, done: int, total: int) -> None:
        self.steps.append((label, done, total))
        super().step(label, done, total)


def registry_with_detector() -> Registry:
    manager = make_manager()
    for name, plugin in default_registry().manager.list_name_plugin():
        manager.register(plugin, name=name)
    defenses = [KnownTriggerDetector, SecondModelRefused, EveryModelRefused, OwnTrainingDetector, FirstClassesOnly]
    manager.register(SimpleNamespace(benchbd_defenses=benchbd.hookimpl(lambda: defenses)), name="test-plugins")
    return Registry(manager, {"test-plugins": "tests"})


def test_model_defense_is_judged_on_the_backdoored_model_and_clean_ones(tiny_signs: Path, tmp_path: Path) -> None:
    config = MatrixConfig(dataset=f"npz:{tiny_signs}", profile="cpu", attacks=["patch"], defenses=["known-trigger"], device="cpu", out=tmp_path,
                          mode="single", clean_models=2, params={"patch": {"ratio": 0.2, "target": 3}})
    progress = RecordedSteps()
    summary = Matrix(config, registry_with_detector(), progress).run()
    assert not summary.failed
    (record,) = read_records(tmp_path / "results.jsonl")
    assert record["unit"] == "model" and record["status"] == "ok"
    assert ("known-trigger on model 3/3: trigger stamped", 1, 1) in progress.steps  # the defense's own progress
    assert ("clean model 2: epoch", 8, 8) in progress.steps  # and the trainings' epochs
    assert record["asr"]["patch"] > 0.8, "the fixture's attack must work for the test to mean anything"
    assert record["tpr"] == 1.0 and record["target_found"] == {"patch": True}
    assert record["fpr"] == 0.0 and record["class_fpr"] == 0.0
    assert record["auroc"] == 1.0
    assert len(record["model_scores"]["clean"]) == 2
    assert record["tpr_at_fpr"] == population_tpr_at_fpr(record) == {"0.01": None, "0.05": None}  # 2 clean models
    assert KnownTriggerDetector.seen == [215, 215, 215]  # the defender's clean images: the test split here
    # the poisoned and the two clean models, cached, each with its attacks' stats beside it
    assert len(list((tmp_path / "models").glob("*.pt"))) == 3 and len(list((tmp_path / "models").glob("*.json"))) == 3
    table = next(t for t in build_tables([record]) if t.title.startswith("Table 4"))
    judged = [f"{100 * record['clean_acc']:.2f}", f"{100 * record['asr']['patch']:.2f}"]  # no model of its own: the cell's
    # two clean models measure FPR in steps of 50%: no TPR at 1% or 5% FPR
    assert table.rows == [["known-trigger", "patch", "100.00", "100.00", "0.00", "0.00", "1.00", "n/a (1)", "n/a (1)", *judged]]
    assert "too few clean models judged to measure that FPR" in table.notes[0]


def test_a_defense_that_examines_some_classes_is_measured_on_those(tiny_signs: Path, tmp_path: Path) -> None:
    """A target it did not examine is neither found nor missed; wrongly named classes are counted among the
    examined ones, each once."""
    config = MatrixConfig(dataset=f"npz:{tiny_signs}", profile="cpu", attacks=["patch"], defenses=["first-classes"], device="cpu",
                          out=tmp_path, mode="single", clean_models=1, params={"patch": {"ratio": 0.2, "target": 3}}, epochs=2)
    assert not Matrix(config, registry_with_detector(), RecordedSteps()).run().failed
    (record,) = read_records(tmp_path / "results.jsonl")
    assert record["target_found"] == {"patch": None}
    # each model names both classes it examined, neither the target 3 (a repeated class counts once): 4 of 4, where
    # counting every class as examined would give (2 + 3) / (42 + 43)
    assert record["class_fpr"] == 1.0
    table = next(t for t in build_tables([record]) if t.title.startswith("Table 4"))
    assert table.rows[0][3].startswith("n/a")  # "Target named": not examined


def test_a_verdict_naming_a_class_it_did_not_examine_is_refused() -> None:
    defense = FirstClassesOnly()
    with pytest.raises(BenchbdError, match=r"names classes it did not examine: \[2\]"):
        checked_verdict(defense, ModelVerdict(score=1.0, flagged=True, suspect_classes=[0, 2], examined_classes=[0, 1]), 4)
    assert checked_verdict(defense, ModelVerdict(score=1.0, flagged=True, suspect_classes=[3]), 4).suspect_classes == [3]
    with pytest.raises(BenchbdError, match="must be class indices below 4"):
        checked_verdict(defense, ModelVerdict(score=1.0, flagged=True, suspect_classes=[4]), 4)


def test_each_seed_has_its_own_clean_models_and_its_cells_share_them(tiny_signs: Path) -> None:
    """Seeds repeat the whole population: an interval over seeds must not treat one set of clean models as several."""
    plan = Plan(MatrixConfig(dataset=f"npz:{tiny_signs}", attacks=["patch", "blend-random"], defenses=["known-trigger"],
                             device="cpu", mode="single", seeds=2, clean_models=3), registry_with_detector())
    by_seed: dict[int, set[tuple[tuple[str, ...], tuple[int, ...]]]] = {}
    for group in plan.groups:
        keys, seeds = clean_models(plan, group, "profile", stacked=False)
        by_seed.setdefault(group.seed, set()).add((tuple(keys), tuple(seeds)))
    assert sorted(by_seed) == [0, 1] and all(len(populations) == 1 for populations in by_seed.values())  # shared
    (keys_0, seeds_0), (keys_1, seeds_1) = (next(iter(by_seed[seed])) for seed in (0, 1))
    assert len(set(keys_0) | set(keys_1)) == 6 and len(set(seeds_0) | set(seeds_1)) == 6  # each seed its own


def test_a_defenses_own_models_are_cached_under_its_training_fields_only(tiny_signs: Path, tmp_path: Path) -> None:
    """Changing a field the training does not read reuses the defense's trained models; changing one it reads, or
    the source of training_loss, trains them again (2 epochs: what is cached is the point, not what is learned)."""
    def run(**params: float) -> int:
        config = MatrixConfig(dataset=f"npz:{tiny_signs}", profile="cpu", attacks=["patch"], defenses=["own-training"], device="cpu",
                              out=tmp_path, mode="single", clean_models=1, epochs=2, params={"own-training": params})
        assert not Matrix(config, registry_with_detector(), Progress()).run().failed
        return len(list((tmp_path / "models").glob("*.pt")))

    assert run() == 3  # the cell's poisoned model, and the backdoored and clean models trained the defense's way
    assert run(threshold=0.9) == 3
    assert run(loss_scale=2.0) == 5
    assert len(read_records(tmp_path / "results.jsonl")) == 3


def test_models_a_defense_cannot_judge_are_left_out_with_the_reason(tiny_signs: Path, tmp_path: Path) -> None:
    config = MatrixConfig(dataset=f"npz:{tiny_signs}", profile="cpu", attacks=["patch"], defenses=["second-refused", "all-refused"],
                          device="cpu", out=tmp_path, mode="single", clean_models=2, params={"patch": {"ratio": 0.2, "target": 3}})
    SecondModelRefused.shown = 0
    summary = Matrix(config, registry_with_detector(), Progress()).run()
    assert not summary.failed
    one, every = sorted(read_records(tmp_path / "results.jsonl"), key=lambda r: r["defense"] != "second-refused")
    assert one["status"] == "ok" and one["not_judged"] == ["", "test: the second model", ""]
    assert one["model_scores"]["clean"][0] is None and one["model_scores"]["clean"][1] is not None
    assert one["tpr"] == 1.0 and one["fpr"] == 0.0  # over the backdoored model and the one clean model judged
    assert one["class_fpr"] == 0.0 and one["target_found"] == {"patch": True}
    assert every["status"] == "not_applicable" and "judged no model: test: assumption does not hold" in every["error"]
    assert every["not_judged"] == ["test: assumption does not hold"] * 3
    table = next(t for t in build_tables([one, every]) if t.title.startswith("Table 4"))
    refused_row = next(row for row in table.rows if row[0] == "all-refused")
    assert all(cell.startswith("n/a") for cell in refused_row[2:])  # with a note that gives the reason


def test_with_no_attack_every_model_is_clean_and_a_flag_is_a_false_positive(tiny_signs: Path, tmp_path: Path) -> None:
    # --attacks none (issue 20): the cell's own model is trained on the clean set too, so the defense is judged on
    # three clean models; the known trigger sends clean models' patched images nowhere in particular.
    config = MatrixConfig(dataset=f"npz:{tiny_signs}", profile="cpu", attacks=["none"], defenses=["known-trigger"], device="cpu",
                          out=tmp_path, mode="single", clean_models=2)
    summary = Matrix(config, registry_with_detector(), Progress()).run()
    assert not summary.failed
    (record,) = read_records(tmp_path / "results.jsonl")
    assert record["status"] == "ok" and record["attacks"] == [] and record["target_found"] == {}
    assert record["tpr"] is None and record["auroc"] is None  # nothing backdoored to find
    assert record["tpr_at_fpr"] is None and population_tpr_at_fpr(record) is None
    assert record["fpr"] == 0.0 and len(record["model_scores"]["clean"]) == 2
    table = next(t for t in build_tables([record]) if t.title.startswith("Table 4"))
    (row,) = table.rows
    assert row[:2] == ["known-trigger", "No attack"] and row[4] == "0.00"  # clean models flagged


def test_a_stacked_clean_population_is_judged_cached_and_trained_whole(tiny_signs: Path, tmp_path: Path, monkeypatch) -> None:
    """The CUDA path of the clean population (Workbench.stacks_populations), forced on the CPU (3 epochs, for time):
    the two clean models train as one stacked model, are judged and cached; a resume loads them and makes the same
    record; with one of them lost, both train again (a population always trains whole)."""
    from benchbd.harness import workbench

    trainings: list[int] = []
    stacked = workbench.fit_stacked
    monkeypatch.setattr(workbench.Workbench, "stacks_populations", property(lambda self: True))
    monkeypatch.setattr(workbench, "fit_stacked", lambda trainers, models, *a, **k: (trainings.append(len(models)), stacked(trainers, models, *a, **k)))

    def run() -> dict:
        config = MatrixConfig(dataset=f"npz:{tiny_signs}", profile="cpu", attacks=["patch"], defenses=["known-trigger"], device="cpu", out=tmp_path,
                              mode="single", clean_models=2, epochs=3, params={"patch": {"ratio": 0.2, "target": 3}})
        assert not Matrix(config, registry_with_detector(), Progress()).run().failed
        (record,) = read_records(tmp_path / "results.jsonl")
        return outcome(record)

    record = run()
    assert trainings == [2]
    assert record["status"] == "ok" and record["model_scores"]["clean"][1] is not None and len(list((tmp_path / "models").glob("*.pt"))) == 3
    (tmp_path / "results.jsonl").unlink()
    assert run() == record and trainings == [2]  # loaded from the cache
    clean_models = sorted((tmp_path / "models").glob("*.pt"), key=lambda p: p.stat().st_mtime)[-2:]
    clean_models[0].unlink()
    (tmp_path / "results.jsonl").unlink()
    run()
    assert trainings == [2, 2]
