"""``benchbd check-plugin NAME``: runs one attack or defense plugin through the contract on tiny data.

The checks cover both kinds of attack, the three units of defense and the undefended baseline; each is cheap, and
the tiny model that example and model defenses judge is trained once per process. ``params`` (values as ``-P NAME.FIELD=VALUE``
gives them) replace a plugin's defaults where these would make the checks slow; tests/test_conformance.py runs
the kit over every registered plugin so. Third parties can call :func:`assert_conforms` from their own tests::

    from benchbd.conformance import assert_conforms

    def test_my_attack_follows_the_contract():
        assert_conforms("my-attack")
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable

import numpy as np
import torch

from benchbd import params as plugin_params
from benchbd.attacks import Attack, DataPoisoningAttack, TrainingCodeAttack, float_images
from benchbd.data.images import ImageData
from benchbd.data.synth_signs import NUM_CLASSES, generate_synth_signs
from benchbd.defenses import (
    Defense,
    ExampleContext,
    ExampleDefense,
    ModelContext,
    ModelDefense,
    ModelVerdict,
    TrainingRunContext,
    TrainingRunDefense,
    TrainingRunVerdict,
)
from benchbd.errors import BenchbdError
from benchbd.harness.poisoning import PoisonedTrainingSet, assign_targets, poison_training_set
from benchbd.harness.servers import build_servers
from benchbd.harness.config import trusted_count
from benchbd.harness.units.example import checked_scores, example_context, trusted_sample
from benchbd.harness.units.model import checked_verdict, model_context
from benchbd.harness.units.training_run import training_run_context
from benchbd.models import ImageClassifier
from benchbd.registry import NOT_INSTALLED_HINT, Registry, default_registry
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import LossComputation, StepInfo, Trainer, TrainingRun, cross_entropy_loss

Params = dict[str, Any]
#: The tiny model's training: two epochs of the fast profile, on the CPU.
PROFILE = dataclasses.replace(PROFILES["fast"], epochs=2)
DEVICE = torch.device("cpu")
#: The simulated servers of the training-run checks, the first one malicious, and their client's job: one epoch
#: over this many tiny training images (two steps).
MALICIOUS = np.array([True, False, False])
JOB_IMAGES = 128


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@cache
def tiny_data() -> ImageData:
    """430 synth-signs training images, 430 test images."""
    return ImageData.from_arrays("synth-signs-tiny", generate_synth_signs(seed=0, n_train=430, n_test=430), "gtsrb", NUM_CLASSES)


@cache
def _job_data() -> ImageData:
    """The first :data:`JOB_IMAGES` training images of :func:`tiny_data`, and all its test images."""
    data = tiny_data()
    arrays = {"x_train": data.x_train[:JOB_IMAGES], "y_train": data.y_train[:JOB_IMAGES], "x_test": data.x_test, "y_test": data.y_test}
    return ImageData.from_arrays("synth-signs-tiny-job", arrays, data.family, data.num_classes)


def _run(name: str, check: Callable[[], str]) -> Check:
    try:
        return Check(name, True, check())
    except AssertionError as exc:
        return Check(name, False, str(exc))
    except Exception as exc:  # noqa: BLE001 - the report names what the plugin raised
        return Check(name, False, f"{type(exc).__name__}: {exc}")


def _defaults_build(cls: type) -> Callable[[], str]:
    def check() -> str:
        assert dataclasses.is_dataclass(cls), f"{cls.__name__} is not a dataclass"
        for attribute in ("name", "description"):
            assert isinstance(getattr(cls, attribute, None), str), f"class attribute '{attribute}' missing"
        instance = plugin_params.build(cls, {})
        return f"defaults: {plugin_params.as_dict(instance)}"
    return check


def _new_model() -> ImageClassifier:
    torch.manual_seed(0)
    return default_registry().model("small-cnn").build(tiny_data().num_classes)


def _loss_check(wrap: Callable[[LossComputation], LossComputation | None]) -> str:
    """``wrap(honest)`` on a 16-image batch: a finite scalar, computed with a call of ``honest``, whose gradients
    reach the model and are finite."""
    calls: list[int] = []

    def honest(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, step: StepInfo) -> torch.Tensor:
        calls.append(len(x))
        return cross_entropy_loss(model, x, y, step)

    data, trainer = tiny_data(), Trainer(PROFILE, DEVICE, seed=0)
    model = trainer.place(_new_model()).train()
    x, y = trainer.images(data.x_train[:16]).float() / 255, trainer.labels(data.y_train[:16])
    computation = wrap(honest)
    assert computation is not None, "no loss computation returned"
    loss = computation(model, x, y, StepInfo(epoch=0, epochs=1, batch=0, batches=1, index=torch.arange(16)))
    assert isinstance(loss, torch.Tensor) and loss.ndim == 0, f"the loss is {type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}, not a scalar tensor"
    assert torch.isfinite(loss), f"the loss is {loss.item()}"
    assert calls, "the honest loss computation was never called"
    assert loss.requires_grad, "the loss has no gradient"
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads), "no finite gradient reached the model's parameters"
    return f"loss {loss.item():.3g}, the honest loss called {len(calls)} time(s)"


# -- attacks ----------------------------------------------------------------------------------------------------
def _prepared(cls: type[Attack], params: Params, seed: int) -> tuple[Attack, np.random.Generator]:
    """The attack built from ``params``, its target assigned and its trigger prepared, as the harness does."""
    data = tiny_data()
    attack = plugin_params.build(cls, params)
    attack.check_dataset(data.num_classes, data.image_shape)
    assign_targets([attack], data)
    rng = np.random.default_rng(seed)
    attack.prepare(data.x_train, data.y_train, data.num_classes, rng)
    return attack, rng


def _poison_once(cls: type[DataPoisoningAttack], params: Params, seed: int) -> PoisonedTrainingSet:
    attack, rng = _prepared(cls, params, seed)
    return poison_training_set(tiny_data(), [attack], rng)


def _check_triggered(out: torch.Tensor, x: torch.Tensor, when: str = "") -> None:
    """A trigger's output ``out`` on images ``x`` keeps their shape, dtype and [0, 1] range and changes them."""
    assert out.shape == x.shape and out.dtype == x.dtype, f"trigger{when} returned {out.dtype} {tuple(out.shape)}"
    assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, f"triggered pixels{when} outside [0, 1]"
    assert not torch.equal(out, x), f"the trigger{when} left every image as it was"


def _trigger(cls: type[Attack], params: Params) -> str:
    attack, _ = _prepared(cls, params, 0)
    x = _test_images()
    for test_time in (False, True):
        _check_triggered(attack.trigger(x.clone(), test_time=test_time), x, " at test time" if test_time else "")
    return "shape, dtype and range kept, the images changed, at training and at test time"


def _test_images() -> torch.Tensor:
    """Four of the tiny test images in the form ``trigger`` takes."""
    return float_images(tiny_data().x_test[:4])


def _probe(cls: type[DataPoisoningAttack], params: Params) -> str:
    """:meth:`DataPoisoningAttack.probe`: a data attack of the same labelling, with another trigger; its target the
    attack's unless its trigger is crafted toward a class of its own."""
    attack, rng = _prepared(cls, params, 0)
    try:
        variant = attack.probe(rng)
    except NotImplementedError:
        return "none: BaDLoss's probes take the flipped patch instead, with a warning in the record"
    assert isinstance(variant, DataPoisoningAttack), f"probe returned {type(variant).__name__}, not a DataPoisoningAttack"
    assert variant.dirty_label == attack.dirty_label, "the probe variant labels its examples otherwise than the attack"
    x = _test_images()
    out = variant.trigger(x.clone(), test_time=False)
    assert not torch.equal(out, attack.trigger(x.clone(), test_time=False)), "the probe's trigger is the attack's own"
    _check_triggered(out, x, " of the probe variant")
    crafted = "" if variant.target == attack.target else f", crafted toward class {variant.target}"
    return f"another trigger{crafted}"


def attack_checks(cls: type[Attack], params: Params | None = None) -> list[Check]:
    params = params or {}
    checks = [_run("parameters: defaults build", _defaults_build(cls))]
    if issubclass(cls, TrainingCodeAttack):
        def loss() -> str:
            attack, _ = _prepared(cls, params, 0)
            return _loss_check(attack.loss_computation)

        return checks + [_run("loss: a finite scalar with a gradient, from the honest loss", loss),
                         _run("trigger: shape, dtype, range, changes the images", lambda: _trigger(cls, params))]

    def poisoning() -> str:
        data = tiny_data()
        started = time.perf_counter()
        attack, rng = _prepared(cls, params, 0)
        poisoned = poison_training_set(data, [attack], rng)
        seconds = time.perf_counter() - started
        mask = poisoned.mask
        assert poisoned.x.dtype == np.uint8 and poisoned.x.shape == data.x_train.shape, "poisoned images changed dtype or shape"
        assert mask.any(), "no example was poisoned"
        expected = attack.poison_count(len(mask)) + attack.extra_count(len(mask))
        assert mask.sum() == expected, (f"poison changed {int(mask.sum())} examples, not poison_count + extra_count = "
                                        f"{expected} (the eligibility check of multi-attack sets counts on them)")
        assert (poisoned.x[~mask] == data.x_train[~mask]).all(), "examples outside the mask were changed"
        assert (poisoned.y[~mask] == data.y_train[~mask]).all(), "labels outside the mask were changed"
        relabelled = int((poisoned.y[mask] != data.y_train[mask]).sum())
        if attack.dirty_label:
            at_target = int((poisoned.y[mask] == attack.target).sum())
            assert at_target >= attack.poison_count(len(mask)), (
                f"{at_target} changed examples carry the target {attack.target}, not poison_count = "
                f"{attack.poison_count(len(mask))} (a dirty-label attack relabels what it poisons)")
        else:
            assert relabelled == 0, f"a clean-label attack relabelled {relabelled} examples"
        return f"{int(mask.sum())} of {len(mask)} poisoned ({relabelled} relabelled) in {seconds:.2f} s"

    def determinism() -> str:
        first, second = _poison_once(cls, params, 7), _poison_once(cls, params, 7)
        assert (first.x == second.x).all() and (first.y == second.y).all(), "the same seed gave different poisoned sets"
        return "same seed, same poisoned set"

    return checks + [_run("poisoning: mask and labels consistent", poisoning), _run("poisoning: deterministic", determinism),
                     _run("trigger: shape, dtype, range, changes the images", lambda: _trigger(cls, params)),
                     _run("probe variant: none, or another trigger", lambda: _probe(cls, params))]


# -- defenses ---------------------------------------------------------------------------------------------------
@cache
def _poisoned_model() -> tuple[PoisonedTrainingSet, ImageClassifier, np.ndarray, DataPoisoningAttack]:
    """The tiny training set poisoned by 5% patch, the small-cnn trained on it and its features: once per process."""
    from benchbd_builtins.attacks.patch import PatchAttack

    attack = PatchAttack(target=1, ratio=0.05)
    poisoned = poison_training_set(tiny_data(), [attack], np.random.default_rng(0))
    trainer = Trainer(PROFILE, DEVICE, seed=0)
    model = trainer.fit(_new_model(), poisoned.x, poisoned.y)
    return poisoned, model, trainer.features(model, poisoned.x), attack


def _context() -> tuple[ExampleContext, np.ndarray]:
    """A fresh example context (the harness's: its own copies of the model, data and features; its own random
    streams) over the cached poisoned model."""
    poisoned, model, features, attack = _poisoned_model()
    trainer = Trainer(PROFILE, DEVICE, seed=0)
    trusted = trusted_sample(poisoned, trusted_count([attack], True), np.random.default_rng(0))
    context = example_context(
        tiny_data(), poisoned, model, trainer, _new_model, [attack], rng=np.random.default_rng(0), probe_seed=0,
        trusted=trusted, single_attack=True, features=lambda: features,
    )
    return context, poisoned.mask


def _model_context() -> ModelContext:
    """The context of the poisoned model of :func:`_context`; the defender's training set is the clean one."""
    context, _ = _context()
    return model_context(tiny_data(), context.model, context.trainer, clean_stream=np.random.default_rng(0), rng=np.random.default_rng(0))


def _training_run_context() -> TrainingRunContext:
    """Three fresh simulated servers (one malicious, running 5% patch) for the client's job of :func:`_job_data`."""
    from benchbd_builtins.attacks.patch import PatchAttack

    data, profile = _job_data(), dataclasses.replace(PROFILE, epochs=1)
    servers = build_servers(
        data, lambda: [PatchAttack(target=1, ratio=0.05)], MALICIOUS, lambda seed: Trainer(profile, DEVICE, seed),
        _new_model, 1.0, np.random.default_rng(0), job_seed=0,
    )
    trainer = Trainer(profile, DEVICE, seed=0)
    job = TrainingRun(trainer, _new_model(), data.x_train, data.y_train, label="client job")
    return training_run_context(
        list(servers), job, _new_model, reference_x=data.x_test, rng=np.random.default_rng(0), malicious_fraction=float(MALICIOUS.mean()),
    )


def _example_defense_checks(cls: type[ExampleDefense], params: Params) -> list[Check]:
    verdicts: list[np.ndarray] = []

    def scores() -> str:
        context, mask = _context()
        started = time.perf_counter()
        defense = plugin_params.build(cls, params)
        verdict = defense.score_examples(context)
        seconds = time.perf_counter() - started
        assert np.asarray(verdict.flagged).dtype == bool, f"flags of dtype {np.asarray(verdict.flagged).dtype}, not bool"
        scores, flagged, _ = checked_scores(defense, verdict, len(mask))  # the harness's own check
        verdicts.append(scores)
        model = defense.mitigate(context, verdict)
        assert model is None or isinstance(model, torch.nn.Module), f"mitigate returned {type(model).__name__}"
        repaired = "mitigate: None, the harness retrains without the flagged" if model is None else "mitigate: its own repaired model"
        return f"{len(mask)} finite scores, {int(flagged.sum())} flagged, in {seconds:.1f} s; {repaired}"

    def determinism() -> str:
        assert verdicts, "no scores to compare"
        again = plugin_params.build(cls, params).score_examples(_context()[0]).scores
        assert np.allclose(verdicts[0], again, equal_nan=True), "the same seed gave different scores"
        return "same seed, same scores"

    return [_run("scores and mitigate: one finite score per example, a model or None", scores),
            _run("scores: deterministic", determinism)]


def _model_defense_checks(cls: type[ModelDefense], params: Params) -> list[Check]:
    verdicts: list[ModelVerdict] = []

    def training_loss() -> str:
        defense = plugin_params.build(cls, params)
        if defense.training_loss(cross_entropy_loss) is None:
            return "none: the usual training"
        return _loss_check(defense.training_loss)

    def verdict() -> str:
        started = time.perf_counter()
        defense = plugin_params.build(cls, params)
        result = defense.inspect_model(_model_context())
        seconds = time.perf_counter() - started
        assert isinstance(result, ModelVerdict), f"inspect_model returned {type(result).__name__}, not ModelVerdict"
        checked_verdict(defense, result, tiny_data().num_classes)  # the harness's own check
        assert isinstance(result.flagged, bool), f"flagged is {type(result.flagged).__name__}, not bool"
        assert isinstance(result.not_judged, str), f"not_judged is {type(result.not_judged).__name__}, not str"
        verdicts.append(result)
        if result.not_judged:
            return f"not judged ({result.not_judged}), in {seconds:.1f} s"
        return f"score {result.score:.3g}, flagged {result.flagged}, suspects {result.suspect_classes}, in {seconds:.1f} s"

    def determinism() -> str:
        assert verdicts, "no verdict to compare"
        again = plugin_params.build(cls, params).inspect_model(_model_context())
        assert np.isclose(again.score, verdicts[0].score), "the same seed gave different scores"
        return "same seed, same score"

    return [_run("training loss: none, or a finite scalar with a gradient", training_loss),
            _run("verdict: a finite score and valid classes", verdict), _run("verdict: deterministic", determinism)]


def _training_run_defense_checks(cls: type[TrainingRunDefense], params: Params) -> list[Check]:
    verdicts: list[TrainingRunVerdict] = []

    def verdict() -> str:
        started = time.perf_counter()
        result = plugin_params.build(cls, params).judge_servers(_training_run_context())
        seconds = time.perf_counter() - started
        assert isinstance(result, TrainingRunVerdict), f"judge_servers returned {type(result).__name__}, not TrainingRunVerdict"
        n = len(MALICIOUS)
        scores, flagged = np.asarray(result.scores), np.asarray(result.flagged)
        assert scores.shape == (n,) and np.isfinite(scores).all(), f"scores {scores} for {n} servers, not one finite each"
        assert flagged.shape == (n,) and flagged.dtype == bool, f"flags: {flagged.dtype} {flagged.shape}"
        assert int(result.extra_steps) >= 0, f"extra_steps {result.extra_steps} < 0"
        verdicts.append(result)
        return f"scores {np.round(scores, 3).tolist()}, flagged {flagged.tolist()}, {result.extra_steps} extra steps, in {seconds:.1f} s"

    def determinism() -> str:
        assert verdicts, "no verdict to compare"
        again = plugin_params.build(cls, params).judge_servers(_training_run_context())
        assert np.allclose(again.scores, verdicts[0].scores), "the same seed gave different scores"
        return "same seed, same scores"

    return [_run("verdict: one finite score and flag per server", verdict), _run("verdict: deterministic", determinism)]


def defense_checks(cls: type[Defense], params: Params | None = None) -> list[Check]:
    params = params or {}
    checks = [_run("parameters: defaults build", _defaults_build(cls))]
    if issubclass(cls, ExampleDefense):
        return checks + _example_defense_checks(cls, params)
    if issubclass(cls, ModelDefense):
        return checks + _model_defense_checks(cls, params)
    if issubclass(cls, TrainingRunDefense):
        return checks + _training_run_defense_checks(cls, params)
    return checks  # NoDefense: the harness calls nothing


def check_plugin(name: str, registry: Registry | None = None, params: Params | None = None) -> list[Check]:
    """Run the contract checks for the attack or defense ``name``, built from ``params`` instead of its defaults."""
    registry = registry or default_registry()
    if name in registry.tables["attacks"]:
        return attack_checks(registry.attack(name), params)
    if name in registry.tables["defenses"]:
        return defense_checks(registry.defense(name), params)
    valid = ", ".join(registry.names("attacks") + registry.names("defenses"))
    raise BenchbdError(f"no attack or defense named '{name}'; valid: {valid}; {NOT_INSTALLED_HINT}")


def assert_conforms(name: str, params: Params | None = None) -> None:
    """pytest helper: fail with every failed check listed."""
    failed = [f"{c.name}: {c.detail}" for c in check_plugin(name, params=params) if not c.passed]
    assert not failed, f"{name} does not follow the benchbd contract:\n" + "\n".join(failed)
