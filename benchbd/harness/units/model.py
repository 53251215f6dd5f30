"""The model unit: a defense judges whole trained models; ground truth is which model is backdoored.

The defense sees the cell's backdoored model and ``--clean-models`` clean models of the same architecture and
profile, one at a time. A defense that needs models trained its own way (:meth:`ModelDefense.training_loss`,
AEGIS's adversarial training) gets all of them trained with it: the backdoored one on the group's poisoned set
with attack objects of its own, the clean ones on the clean training set.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np

from benchbd import params as plugin_params
from benchbd.defenses import ModelContext, ModelDefense, ModelVerdict, no_progress
from benchbd.data.images import ImageData
from benchbd.errors import BenchbdError
from benchbd.harness.config import CLEAN_MODEL_SEED
from benchbd.harness.metrics import detection_metrics
from benchbd.harness.digests import digest, function_code
from benchbd.models import ImageClassifier
from benchbd.training.trainer import Trainer, cross_entropy_loss
from benchbd.harness.plan import Group, Plan
from benchbd.harness.poisoning import poisoned_loss
from benchbd.harness.workbench import PoisonedGroup, Workbench, model_figures


#: Held-out clean images a model or training-run defender holds: up to this many of the test split.
DEFENDER_CLEAN = 2000

def defender_clean(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Up to :data:`DEFENDER_CLEAN` held-out clean images (of the test split) and their labels."""
    index = np.sort(rng.choice(len(y), size=min(DEFENDER_CLEAN, len(y)), replace=False))
    return x[index], y[index]


def model_context(
    data: ImageData, model: ImageClassifier, trainer: Trainer, *, clean_stream: np.random.Generator, rng: np.random.Generator,
    progress: Callable[[str, int, int], None] = no_progress,
) -> ModelContext:
    """The :class:`ModelContext` of one judged model, as the harness, the conformance kit and the tests build it:
    ``data`` is the clean dataset (its training split as the defender handed it over, before poisoning), the
    defender's held-out images are :func:`defender_clean`'s draw from its test split with ``clean_stream``. The
    defense gets its own copies of the model and the data: the judged models are cached for the group's later cells."""
    clean_x, clean_y = defender_clean(data.x_test, data.y_test, clean_stream)
    return ModelContext(copy.deepcopy(model), trainer, data.num_classes, clean_x, clean_y, data.x_train.copy(),
                        data.y_train.copy(), rng, progress)


def checked_verdict(defense: ModelDefense, verdict: ModelVerdict, num_classes: int) -> ModelVerdict:
    if not np.isfinite(verdict.score):
        raise BenchbdError(f"{defense.name}: the model score is not finite ({verdict.score})")
    examined_classes = [] if verdict.examined_classes is None else list(verdict.examined_classes)
    for name, classes in (("suspect_classes", list(verdict.suspect_classes)), ("examined_classes", examined_classes)):
        if not all(isinstance(c, (int, np.integer)) and 0 <= c < num_classes for c in classes):
            raise BenchbdError(f"{defense.name}: {name} must be class indices below {num_classes}; got {classes}")
    unexamined = set(verdict.suspect_classes) - examined(verdict, num_classes)
    if unexamined:
        raise BenchbdError(f"{defense.name}: it names classes it did not examine: {sorted(unexamined)}")
    return verdict


def examined(verdict: ModelVerdict, num_classes: int) -> set[int]:
    """The classes a verdict looked at for a target: ``examined_classes``, else all."""
    return set(range(num_classes)) if verdict.examined_classes is None else set(verdict.examined_classes)


def labelled(step: Callable[[str, int, int], None], label: str) -> Callable[[str, int, int], None]:
    """``step`` with every report's text prefixed by ``label``."""
    return lambda what, done, total: step(f"{label}: {what}", done, total)


def training_identity(defense: ModelDefense) -> dict[str, Any]:
    """What a defense's own training of the judged models depends on: the code of its ``training_loss`` method
    (the functions it calls are benchbd's, covered by the harness digest in the model key, or the plugin's own, not
    followed) and the fields named in ``training_fields`` (all of them when ``None``)."""
    params = plugin_params.as_dict(defense)
    fields = params if defense.training_fields is None else {f: params[f] for f in defense.training_fields}
    return {"defense": defense.name, "fields": fields, "training_loss": function_code(type(defense).training_loss)}


def backdoored_model_trained_by(bench: Workbench, group: Group, x: np.ndarray, y: np.ndarray, defense: ModelDefense,
                                name: str) -> ImageClassifier:
    """The group's backdoored model trained on its poisoned set (``x``, ``y``) with the defense's own
    ``training_loss`` (which must not be None), cached under the key every matrix with that training uses."""
    attacks, _ = bench.prepared_attacks(group)
    loss = defense.training_loss(poisoned_loss(attacks))
    key = bench.plan.model_key(group, training=training_identity(defense))
    return bench.trained_model(key, group.seed, x, y, loss, f"backdoored model for {name}", attacks)[0]


def clean_models(plan: Plan, group: Group, training: Any, stacked: bool) -> tuple[list[str], list[int]]:
    """The cache keys and training seeds of the ``--clean-models`` clean models the cells of ``group``'s seed judge
    (ours): each seed has its own, so that a run's seeds repeat the whole population, and a table's interval over
    seeds covers the draw of clean models too; the cells of one seed share them, whatever their attacks."""
    code = {key: value for key, value in plan.group_code(group).items() if key != "attacks"}
    count = plan.config.clean_models
    keys = [digest({"dataset": plan.config.dataset, "model": plan.model_name, "profile": plan.profile.as_dict(),
                    "seed": group.seed, "clean_model": i, "training": training, "code": code,
                    **({"stacked": count} if stacked else {})})
            for i in range(count)]
    return keys, [CLEAN_MODEL_SEED * (group.seed + 1) + i for i in range(count)]


def judged_models(bench: Workbench, state: PoisonedGroup, defense: ModelDefense, name: str) -> list[ImageClassifier]:
    """The backdoored model, then the clean ones, trained as the defense needs them."""
    plan, group, data = bench.plan, state.group, bench.data
    own_loss = defense.training_loss(cross_entropy_loss)
    training = training_identity(defense) if own_loss is not None else "profile"
    backdoored = state.model
    if own_loss is not None:
        backdoored = backdoored_model_trained_by(bench, group, state.poisoned.x, state.poisoned.y, defense, name)
    stacked = own_loss is None and bench.stacks_populations
    keys, seeds = clean_models(plan, group, training, stacked)
    if stacked:
        return [backdoored, *bench.trained_together(keys, seeds, data.x_train, data.y_train, "clean models")]
    loss = own_loss or cross_entropy_loss
    clean = [bench.trained_model(key, seed, data.x_train, data.y_train, loss, f"clean model {i + 1}")[0]
             for i, (key, seed) in enumerate(zip(keys, seeds))]
    return [backdoored, *clean]


def judge(bench: Workbench, state: PoisonedGroup, defense: ModelDefense, name: str) -> dict[str, Any]:
    """Judge the backdoored model and the clean ones; detection over the population, targets named."""
    plan, group, data = bench.plan, state.group, bench.data
    models = judged_models(bench, state, defense, name)
    rng = plan.stream(group, "defense", name)
    verdicts = []
    for i, model in enumerate(models):
        context = model_context(data, model, state.trainer, clean_stream=plan.stream(group, "defender-clean"),
                                rng=np.random.default_rng(rng.integers(2**32)),
                                progress=labelled(bench.step, f"{name} on model {i + 1}/{len(models)}"))
        verdicts.append(checked_verdict(defense, defense.inspect_model(context), data.num_classes))
    targets = {a.target for a in state.attacks}
    is_backdoored = np.array([bool(state.attacks)] + [False] * (len(models) - 1))  # no attack: every model is clean
    judged = np.array([not v.not_judged for v in verdicts])
    if not judged.any():
        return {"status": "not_applicable", "error": f"{defense.name} judged no model: {verdicts[0].not_judged}",
                "not_judged": [v.not_judged for v in verdicts]}
    scores, flags = np.array([v.score for v in verdicts]), np.array([v.flagged for v in verdicts])
    result: dict[str, Any] = detection_metrics(scores[judged], flags[judged], is_backdoored[judged])
    suspects = [v.suspect_classes if ok else [] for v, ok in zip(verdicts, judged)]
    looked_at = [examined(v, data.num_classes) for v in verdicts]
    false_classes = len(set(suspects[0]) - targets) + sum(len(set(s)) for s in suspects[1:])
    # the backdoored model's wrongly named classes are those outside its targets; every class of a clean model is
    classes_judged = sum(len(looked_at[i] - targets) if i == 0 else len(looked_at[i]) for i in np.flatnonzero(judged))
    model_scores = [float(v.score) if ok else None for v, ok in zip(verdicts, judged)]
    result.update(
        target_found={a.name: a.target in suspects[0] if a.target in looked_at[0] else None for a in state.attacks}
        if judged[0] else {},
        class_fpr=false_classes / classes_judged if classes_judged else None,
        model_scores={"backdoored": model_scores[0], "clean": model_scores[1:]},
        details=verdicts[0].details,
        not_judged=[v.not_judged for v in verdicts],
        clean_details=[v.details for v in verdicts[1:]],
    )
    if models[0] is not state.model:
        result["judged_model"] = model_figures(state.trainer, models[0], data, state.attacks)
    return result
