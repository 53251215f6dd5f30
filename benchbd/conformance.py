"""``benchbd check-plugin NAME``: runs one attack or defense plugin through the contract on tiny data.

Third parties can call :func:`assert_conforms` from their own tests::

    from benchbd.conformance import assert_conforms

    def test_my_attack_follows_the_contract():
        assert_conforms("my-attack")
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from functools import cache
from typing import Callable

import numpy as np
import torch

from benchbd import params as plugin_params
from benchbd.attacks import Attack, DataPoisoningAttack
from benchbd.data.images import ImageData
from benchbd.data.synth_signs import NUM_CLASSES, generate_synth_signs
from benchbd.defenses import Defense, ExampleContext, ExampleDefense, ModelContext, ModelDefense, ModelVerdict
from benchbd.errors import BenchbdError
from benchbd.harness.poisoning import assign_targets, poison_training_set, trusted_clean_sample
from benchbd.registry import Registry, default_registry
from benchbd.training.profiles import PROFILES
from benchbd.training.trainer import Trainer


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@cache
def tiny_data() -> ImageData:
    """860 synth-signs training images, 430 test images."""
    return ImageData.from_arrays("synth-signs-tiny", generate_synth_signs(seed=0, n_train=860, n_test=430), "gtsrb", NUM_CLASSES)


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


def _bad_ratio_refused(cls: type[DataPoisoningAttack]) -> str:
    for bad in (0.0, 1.5):
        try:
            plugin_params.build(cls, {"ratio": bad})
        except BenchbdError as exc:
            assert "ratio" in str(exc), f"the error for ratio={bad} does not name the field: {exc}"
        else:
            raise AssertionError(f"ratio={bad} was accepted")
    return "ratio 0 and 1.5 refused with the field named"


def _poison_once(cls: type[DataPoisoningAttack], seed: int):
    data = tiny_data()
    attack = plugin_params.build(cls, {})
    attack.check_dataset(data.num_classes, data.image_shape)
    assign_targets([attack], data)
    rng = np.random.default_rng(seed)
    attack.prepare(data.x_train, data.y_train, data.num_classes, rng)
    return attack, poison_training_set(data, [attack], rng)


def attack_checks(cls: type[Attack]) -> list[Check]:
    checks = [_run("parameters: defaults build", _defaults_build(cls))]
    if not issubclass(cls, DataPoisoningAttack):
        return checks
    checks.append(_run("parameters: bad ratio refused", lambda: _bad_ratio_refused(cls)))

    def poisoning() -> str:
        data = tiny_data()
        started = time.perf_counter()
        attack, poisoned = _poison_once(cls, 0)
        seconds = time.perf_counter() - started
        mask = poisoned.mask
        assert poisoned.x.dtype == np.uint8 and poisoned.x.shape == data.x_train.shape, "poisoned images changed dtype or shape"
        assert mask.any(), "no example was poisoned"
        assert (poisoned.x[~mask] == data.x_train[~mask]).all(), "examples outside the mask were changed"
        assert (poisoned.y[~mask] == data.y_train[~mask]).all(), "labels outside the mask were changed"
        return f"{int(mask.sum())} of {len(mask)} poisoned in {seconds:.2f} s"

    def determinism() -> str:
        first, second = _poison_once(cls, 7)[1], _poison_once(cls, 7)[1]
        assert (first.x == second.x).all() and (first.y == second.y).all(), "the same seed gave different poisoned sets"
        return "same seed, same poisoned set"

    def trigger() -> str:
        attack, _ = _poison_once(cls, 0)
        x = torch.rand(4, 3, 32, 32)
        out = attack.trigger(x.clone(), test_time=True)
        assert out.shape == x.shape and out.dtype == x.dtype, f"trigger returned {out.dtype} {tuple(out.shape)}"
        assert torch.isfinite(out).all() and out.min() >= 0 and out.max() <= 1, "triggered pixels outside [0, 1]"
        return "shape, dtype and range kept"

    checks += [_run("poisoning: mask consistent", poisoning), _run("poisoning: deterministic", determinism),
               _run("trigger: shape, dtype, range", trigger)]
    return checks


def _context(seed: int) -> tuple[ExampleContext, np.ndarray]:
    from benchbd_builtins.attacks.patch import PatchAttack

    data = tiny_data()
    attack = PatchAttack(target=1, ratio=0.05)
    poisoned = poison_training_set(data, [attack], np.random.default_rng(0))
    trainer = Trainer(dataclasses.replace(PROFILES["fast"], epochs=2), torch.device("cpu"), seed=seed)
    build = default_registry().model("small-cnn").build
    torch.manual_seed(seed)
    model = trainer.fit(build(data.num_classes), poisoned.x, poisoned.y)
    context = ExampleContext(
        data=data, x_train=poisoned.x, y_train=poisoned.y, model=model, trainer=trainer,
        new_model=lambda: build(data.num_classes), features=lambda: trainer.features(model, poisoned.x),
        attacks=[attack], expected_poison_fraction=attack.ratio, rng=np.random.default_rng(seed),
        trusted_clean=trusted_clean_sample(poisoned, np.random.default_rng(seed)), single_attack=True,
    )
    return context, poisoned.mask


def _model_context(seed: int) -> ModelContext:
    context, _ = _context(seed)
    data = context.data
    return ModelContext(context.model, context.trainer, data.num_classes, data.x_test, data.y_test, np.random.default_rng(seed))


def model_defense_checks(cls: type[ModelDefense]) -> list[Check]:
    verdicts: list[ModelVerdict] = []

    def verdict() -> str:
        started = time.perf_counter()
        result = plugin_params.build(cls, {}).inspect_model(_model_context(0))
        seconds = time.perf_counter() - started
        assert isinstance(result, ModelVerdict), f"inspect_model returned {type(result).__name__}, not ModelVerdict"
        assert np.isfinite(result.score), f"score {result.score} is not finite"
        assert isinstance(result.flagged, bool), f"flagged is {type(result.flagged).__name__}, not bool"
        classes = tiny_data().num_classes
        assert all(isinstance(c, int) and 0 <= c < classes for c in result.suspect_classes), f"suspect classes {result.suspect_classes}"
        verdicts.append(result)
        return f"score {result.score:.3g}, flagged {result.flagged}, suspects {result.suspect_classes}, in {seconds:.1f} s"

    def determinism() -> str:
        assert verdicts, "no verdict to compare"
        again = plugin_params.build(cls, {}).inspect_model(_model_context(0))
        assert np.isclose(again.score, verdicts[0].score), "the same seed gave different scores"
        return "same seed, same score"

    return [_run("verdict: a finite score and valid classes", verdict), _run("verdict: deterministic", determinism)]


def defense_checks(cls: type[Defense]) -> list[Check]:
    checks = [_run("parameters: defaults build", _defaults_build(cls))]
    if issubclass(cls, ModelDefense):
        return checks + model_defense_checks(cls)
    if not issubclass(cls, ExampleDefense):
        return checks
    verdicts = []

    def scores() -> str:
        context, mask = _context(0)
        started = time.perf_counter()
        verdict = plugin_params.build(cls, {}).score_examples(context)
        seconds = time.perf_counter() - started
        n = len(mask)
        scores, flagged = np.asarray(verdict.scores), np.asarray(verdict.flagged)
        assert scores.shape == (n,), f"{scores.shape} scores for {n} examples"
        assert flagged.shape == (n,) and flagged.dtype == bool, f"flags: {flagged.dtype} {flagged.shape}"
        assert np.isfinite(scores).all(), "scores not all finite"
        verdicts.append(scores)
        return f"{n} finite scores, {int(flagged.sum())} flagged, in {seconds:.1f} s"

    def determinism() -> str:
        assert verdicts, "no scores to compare"
        again = plugin_params.build(cls, {}).score_examples(_context(0)[0]).scores
        assert np.allclose(verdicts[0], again), "the same seed gave different scores"
        return "same seed, same scores"

    checks += [_run("scores: one finite score per example", scores), _run("scores: deterministic", determinism)]
    return checks


def check_plugin(name: str, registry: Registry | None = None) -> list[Check]:
    """Run the contract checks for the attack or defense ``name``."""
    registry = registry or default_registry()
    if name in registry.tables["attacks"]:
        return attack_checks(registry.attack(name))
    if name in registry.tables["defenses"]:
        return defense_checks(registry.defense(name))
    valid = ", ".join(registry.names("attacks") + registry.names("defenses"))
    raise BenchbdError(f"no attack or defense named '{name}'; valid: {valid}")


def assert_conforms(name: str) -> None:
    """pytest helper: fail with every failed check listed."""
    failed = [f"{c.name}: {c.detail}" for c in check_plugin(name) if not c.passed]
    assert not failed, f"{name} does not follow the benchbd contract:\n" + "\n".join(failed)
