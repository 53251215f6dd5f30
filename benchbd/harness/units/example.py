"""The training-example unit: a defense scores every training example; ground truth is the poison mask.

The defender holds a trusted set of known-clean training examples (BaDLoss appendix A.1's C). Detection metrics
(AUROC, TPR, FPR, per-attack AUROC) are computed over the examples the defense really judges: not the trusted ones,
and not those the defense says it could not judge (``ExampleVerdict.judged``; BaDLoss's mislabelled probes
overwrite examples of D). Counting the trusted examples, which a defense may score 0, would report
A + f·(1 − A) instead of the AUROC A, with f the trusted share of clean examples. Mitigation still retrains on
every kept example, trusted ones included.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from benchbd.attacks import Attack, DataPoisoningAttack
from benchbd.data.images import ImageData
from benchbd.defenses import ExampleContext, ExampleDefense, ExampleVerdict
from benchbd.errors import BenchbdError
from benchbd.harness.config import trusted_count
from benchbd.harness.metrics import defense_effectiveness, detection_metrics, per_attack_auroc
from benchbd.harness.poisoning import CLEAN, PoisonedTrainingSet
from benchbd.models import ImageClassifier
from benchbd.training.trainer import Trainer
from benchbd.harness.workbench import PoisonedGroup, Workbench, model_figures


def trusted_sample(poisoned: PoisonedTrainingSet, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` clean examples drawn at random (fewer if the set has fewer, never over half of the clean ones)."""
    clean = np.flatnonzero(~poisoned.mask)
    return np.sort(rng.choice(clean, size=min(count, len(clean) // 2), replace=False))


def example_context(
    data: ImageData,
    poisoned: PoisonedTrainingSet,
    model: ImageClassifier,
    trainer: Trainer,
    new_model: Callable[[], ImageClassifier],
    attacks: list[Attack],
    *,
    rng: np.random.Generator,
    probe_seed: int,
    trusted: np.ndarray,
    single_attack: bool,
    features: Callable[[], np.ndarray] | None = None,
) -> ExampleContext:
    """The :class:`ExampleContext` of one cell, as the harness, the conformance kit and the tests build it. The
    defense gets its own copies of the data, the model, the features, the attacks and the trusted indices: what it
    changes in them cannot reach the group's later cells, whose records would then depend on the order cells ran in."""
    data_attacks = [a for a in attacks if isinstance(a, DataPoisoningAttack)]
    shared_features = features or (lambda: trainer.features(model, poisoned.x))
    return ExampleContext(
        # the training split as delivered (the clean one would show the mask)
        data=replace(data, x_train=poisoned.x.copy(), y_train=poisoned.y.copy(), x_test=data.x_test.copy(), y_test=data.y_test.copy()),
        model=copy.deepcopy(model),
        trainer=trainer,
        new_model=new_model,
        features=lambda: shared_features().copy(),
        attacks=copy.deepcopy(attacks),
        expected_poison_fraction=sum(a.poison_fraction for a in data_attacks),
        rng=rng,
        probe_seed=probe_seed,
        trusted_clean=trusted.copy(),
        single_attack=single_attack,
    )


def checked_scores(defense: ExampleDefense, verdict: ExampleVerdict, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The verdict's scores, flags and judged mask, refused unless there is one finite score and flag per example."""
    scores = np.asarray(verdict.scores, dtype=np.float64)
    flagged = np.asarray(verdict.flagged, dtype=bool)
    # a copy of the defense's mask: judge() marks the trusted examples unjudged on it
    judged = np.ones(n, dtype=bool) if verdict.judged is None else np.array(verdict.judged, dtype=bool)
    if scores.shape != (n,) or flagged.shape != (n,) or judged.shape != (n,):
        raise BenchbdError(f"{defense.name}: expected {n} scores, flags and judged marks, got shapes {scores.shape}, {flagged.shape}, {judged.shape}")
    if not np.isfinite(scores[judged]).all():
        raise BenchbdError(f"{defense.name}: {int((~np.isfinite(scores[judged])).sum())} scores are not finite")
    return scores, flagged, judged


def detection(scores: np.ndarray, flagged: np.ndarray, source: np.ndarray, judged: np.ndarray, attack_names: list[str]) -> dict[str, Any]:
    """Detection over the ``judged`` examples against the poison mask (``source`` != CLEAN), each attack's AUROC
    against the clean examples when there are several, and ``judged``, how many they are; ``removed_frac`` is over
    the whole training set."""
    result = detection_metrics(scores[judged], flagged[judged], source[judged] != CLEAN)
    result.update(removed_frac=float(flagged.mean()), judged=int(judged.sum()))
    if len(attack_names) > 1:
        result["auroc_per_attack"] = {name: per_attack_auroc(scores[judged], source[judged], i) for i, name in enumerate(attack_names)}
    return result


def judge(bench: Workbench, state: PoisonedGroup, defense: ExampleDefense, name: str) -> dict[str, Any]:
    """Score the group's poisoned training set, measure detection, remove the flagged and retrain. Without an attack
    (the clean training set) the record shows what the defense costs: ``fpr`` and ``removed_frac`` are examples
    removed for nothing, ``clean_acc_after`` the accuracy left."""
    if state.attacks and not state.data_attacks:
        return {"status": "not_applicable", "error": "no poisoned examples: the attack does not touch the training data"}
    plan, group = bench.plan, state.group
    single = group.mode == "single"
    count = plan.config.trusted or trusted_count(state.attacks, single)
    trusted = trusted_sample(state.poisoned, count, plan.stream(group, "trusted"))
    context = example_context(
        bench.data, state.poisoned, state.model, state.trainer, lambda: bench.fresh_model(group.seed), state.attacks,
        rng=plan.stream(group, "defense", name), probe_seed=int(plan.stream(group, "probes").integers(2**32)),
        trusted=trusted, single_attack=single, features=state.features,
    )
    verdict = defense.score_examples(context)
    scores, flagged, judged = checked_scores(defense, verdict, len(state.poisoned.y))
    judged[trusted] = False
    result = {
        **detection(scores, flagged, state.poisoned.source, judged, [a.name for a in state.data_attacks]),
        "trusted": len(trusted),
    }
    if verdict.details:
        result["details"] = verdict.details
    model = defense.mitigate(context, verdict)
    if model is None:
        kept = ~flagged
        model = bench.fresh_model(group.seed)
        state.trainer.fit(model, state.poisoned.x[kept], state.poisoned.y[kept], label=f"retrain after {name}")
    after = model_figures(state.trainer, model, bench.data, state.attacks, "_after")
    before = state.summary
    result["der"] = {
        name: defense_effectiveness(before["clean_acc"], after["clean_acc_after"], before["asr"][name], after["asr_after"][name])
        for name in before["asr"]
    }
    return {**result, **after}
