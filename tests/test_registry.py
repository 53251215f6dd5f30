"""Plugins are found through the ``benchbd`` entry points: the built-ins, and a third party's. The registry and the
base classes hold them to the contract."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar, Literal

import pytest

import benchbd
from benchbd.errors import BenchbdError
from benchbd.params import build
from benchbd.registry import Registry, default_registry, make_manager
from benchbd_builtins.attacks.patch import PatchAttack


def test_builtins_come_from_entry_points() -> None:
    registry = default_registry()
    assert "patch" in registry.names("attacks")
    assert {"none", "spectral"} <= set(registry.names("defenses"))
    assert {"synth-signs", "gtsrb", "cifar10", "npz"} <= set(registry.names("datasets"))
    assert {"small-cnn", "preact-resnet18", "resnet50"} <= set(registry.names("models"))
    entry = registry.tables["attacks"]["patch"]
    assert (entry.kind, entry.distribution) == ("data", "benchbd")
    assert registry.tables["defenses"]["spectral"].kind == "example"


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(BenchbdError, match=r"unknown attack 'nope'; valid: .*patch"):
        default_registry().attack("nope")


THIRD_PARTY_MODULE = '''
from dataclasses import dataclass
from typing import ClassVar

import benchbd


@dataclass
class CornerDot(benchbd.DataPoisoningAttack):
    name: ClassVar[str] = "corner-dot"
    description: ClassVar[str] = "a third party's attack"

    def trigger(self, x, *, test_time=False):
        x = x.clone()
        x[..., 0, 0] = 1.0
        return x


@benchbd.hookimpl
def benchbd_attacks():
    return [CornerDot]
'''

THIRD_PARTY_PYPROJECT = '''
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "benchbd-corner-dot"
version = "0.1"

[project.entry-points.benchbd]
corner-dot = "corner_dot"
'''


def test_third_party_plugin_is_discovered(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "pyproject.toml").write_text(textwrap.dedent(THIRD_PARTY_PYPROJECT))
    (package / "corner_dot.py").write_text(textwrap.dedent(THIRD_PARTY_MODULE))
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(package)],
        check=True,
    )
    def list_attacks(*options: str, autoload: bool = True) -> str:
        env = {"PYTHONPATH": str(target), "COLUMNS": "200", "PATH": "/usr/bin:/bin"}
        if not autoload:
            env["BENCHBD_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        listing = subprocess.run([sys.executable, "-m", "benchbd.cli", *options, "list", "attacks"],
                                 capture_output=True, text=True, env=env)
        assert listing.returncode == 0, listing.stderr
        return listing.stdout

    row = next(line for line in list_attacks().splitlines() if "corner-dot" in line)
    assert "benchbd-corner-dot" in row and "data" in row
    without_autoload = list_attacks(autoload=False)
    assert "corner-dot" not in without_autoload and "patch" in without_autoload
    assert "corner-dot" in list_attacks("-p", "corner-dot", autoload=False)


def test_a_plugin_module_is_loaded_with_p_without_installing_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``-p MODULE`` imports a plugin module from PYTHONPATH when no entry point has that name, as pytest's ``-p``
    does; the tables name it as not installed; a module that is missing or implements no hook is one line."""
    (tmp_path / "corner_dot.py").write_text(textwrap.dedent(THIRD_PARTY_MODULE))
    (tmp_path / "no_hooks.py").write_text("def benchbd_attacks():\n    return []\n")  # not marked @hookimpl
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        registry = default_registry.__wrapped__(("corner_dot",))  # not the cached registry of the other tests
        assert "corner-dot" in registry.names("attacks") and "patch" in registry.names("attacks")
        assert registry.provenance("attacks", "corner-dot") == "corner_dot (module, not installed)"
        with pytest.raises(BenchbdError, match=r"^-p no_hooks: module .*no_hooks.py implements none of benchbd's hooks"):
            default_registry.__wrapped__(("no_hooks",))
        with pytest.raises(BenchbdError, match=r"^-p absent: no entry point of that name in group 'benchbd', and no module"):
            default_registry.__wrapped__(("absent",))
        with pytest.raises(BenchbdError, match=r"^-p absent.inner: no entry point"):
            default_registry.__wrapped__(("absent.inner",))
    finally:
        for name in ("corner_dot", "no_hooks"):
            sys.modules.pop(name, None)
    (tmp_path / "failing_pkg").mkdir()
    (tmp_path / "failing_pkg" / "__init__.py").write_text("raise RuntimeError('half written')\n")
    (tmp_path / "namespace_pkg").mkdir()  # no __init__.py
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(BenchbdError, match=r"^plugin 'failing_pkg.attack' \(its package\) failed to load: RuntimeError: half written$"):
            default_registry.__wrapped__(("failing_pkg.attack",))  # one line, and no autoload hint: it was asked for
        with pytest.raises(BenchbdError, match=r"^-p namespace_pkg: a namespace package .*-p namespace_pkg.plugin$"):
            default_registry.__wrapped__(("namespace_pkg",))
        from benchbd import registry as registry_module

        sys.modules.pop("corner_dot", None)
        monkeypatch.setattr(registry_module.metadata, "packages_distributions", lambda: {"corner_dot": ["acme-corner"]})
        registry = default_registry.__wrapped__(("corner_dot",))  # a module an installed distribution ships
        assert registry.provenance("attacks", "corner-dot") == "acme-corner"
    finally:
        for name in [name for name in sys.modules if name.startswith(("failing_pkg", "namespace_pkg", "corner_dot"))]:
            del sys.modules[name]
    listing = subprocess.run([sys.executable, "-m", "benchbd.cli", "-p", "corner_dot", "list", "attacks"],
                             capture_output=True, text=True, env={"PYTHONPATH": str(tmp_path), "COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert listing.returncode == 0, listing.stderr
    assert "corner_dot (module, not installed)" in next(line for line in listing.stdout.splitlines() if "corner-dot" in line)


def test_a_plugin_that_fails_to_load_is_named_with_the_way_to_run_without_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """One broken installed plugin stops every command; the error names it and says how to load only the others."""
    from benchbd import registry as registry_module

    broken = SimpleNamespace(name="broken", value="broken_module", dist=SimpleNamespace(name="acme-broken"),
                             load=lambda: (_ for _ in ()).throw(ImportError("No module named 'torchvision2'")))
    installed = registry_module.metadata.entry_points
    def with_plugin(plugin: SimpleNamespace) -> Any:
        return lambda **where: [*installed(**where), plugin] if where.get("group") == "benchbd" else installed(**where)

    monkeypatch.setattr(registry_module.metadata, "entry_points", with_plugin(broken))
    with pytest.raises(BenchbdError) as error:
        default_registry.__wrapped__()
    assert str(error.value) == ("plugin 'broken' (broken_module, from acme-broken) failed to load: ImportError: No module "
                                "named 'torchvision2' (BENCHBD_DISABLE_PLUGIN_AUTOLOAD=1 loads only the built-ins and "
                                "the plugins named with -p)")
    monkeypatch.setenv("BENCHBD_DISABLE_PLUGIN_AUTOLOAD", "1")
    assert "patch" in default_registry.__wrapped__().names("attacks")
    monkeypatch.delenv("BENCHBD_DISABLE_PLUGIN_AUTOLOAD")

    class NotAnAttack:
        @benchbd.hookimpl
        def benchbd_attacks(self):
            return [object]

    breaking = SimpleNamespace(name="breaking", value="breaking_module", dist=SimpleNamespace(name="acme-breaking"),
                               load=NotAnAttack)
    monkeypatch.setattr(registry_module.metadata, "entry_points", with_plugin(breaking))
    with pytest.raises(BenchbdError, match=r"^attack .* from acme-breaking .*\(BENCHBD_DISABLE_PLUGIN_AUTOLOAD=1 loads only"):
        default_registry.__wrapped__()


# -- the bases validate their own fields, however an instance is built --------------------------------------------


@dataclass
class Stamp(benchbd.DataPoisoningAttack):
    """A plugin that checks only its own field, in a ``__post_init__`` that does not call ``super()``."""

    name: ClassVar[str] = "stamp"
    description: ClassVar[str] = "test"

    shape: Literal["square", "cross"] = "square"
    outline: Literal["thin", "thick"] | None = None
    size: int = 1

    def __post_init__(self) -> None:
        benchbd.check(self.size >= 1, self.name, "size", ">= 1", self.size)

    def trigger(self, x, *, test_time=False):
        return x


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: PatchAttack(ratio=2), "patch: parameter 'ratio' must be in (0, 1]; got 2"),
        (lambda: Stamp(ratio=0), "stamp: parameter 'ratio' must be in (0, 1]; got 0"),
        (lambda: Stamp(target=-1), "stamp: parameter 'target' must be a class index >= 0 or none; got -1"),
        (lambda: Stamp(shape="circle"), "stamp: parameter 'shape' must be one of square, cross; got 'circle'"),
        (lambda: Stamp(outline="dotted"), "stamp: parameter 'outline' must be one of thin, thick, None; got 'dotted'"),
        (lambda: Stamp(size=0), "stamp: parameter 'size' must be >= 1; got 0"),
        (lambda: build(Stamp, {"ratio": "1.5"}), "stamp: parameter 'ratio' must be in (0, 1]; got 1.5"),
        (lambda: dataclasses.replace(Stamp(), shape="circle"), "parameter 'shape' must be one of square, cross"),
    ],
)
def test_the_bases_check_ratio_target_and_literal_fields(make: Any, message: str) -> None:
    with pytest.raises(BenchbdError) as refused:
        make()
    assert message in str(refused.value)


def test_valid_values_pass_and_defenses_get_the_literal_check_too() -> None:
    assert Stamp(target=0, ratio=1, outline=None, shape="cross").shape == "cross"

    @dataclass
    class Picky(benchbd.ExampleDefense):
        name: ClassVar[str] = "picky"
        description: ClassVar[str] = "test"

        mode: Literal["fast", "slow"] = "fast"

        def score_examples(self, context):
            raise NotImplementedError

    with pytest.raises(BenchbdError, match="picky: parameter 'mode' must be one of fast, slow; got 'medium'"):
        Picky(mode="medium")


def test_a_class_missing_a_required_method_cannot_be_instantiated() -> None:
    @dataclass
    class NoTrigger(benchbd.DataPoisoningAttack):
        name: ClassVar[str] = "no-trigger"
        description: ClassVar[str] = "test"

    with pytest.raises(TypeError, match="trigger"):
        NoTrigger()


# -- the registry refuses what breaks the contract, naming the object and its distribution ------------------------


@dataclass
class NotAnAttack:
    name: ClassVar[str] = "not-an-attack"
    description: ClassVar[str] = "test"


@dataclass
class NameAsField(benchbd.DataPoisoningAttack):
    name: str = "name-as-field"
    description: ClassVar[str] = "test"

    def trigger(self, x, *, test_time=False):
        return x


class Undecorated(Stamp):
    name: ClassVar[str] = "undecorated"
    width: int = 2


@dataclass
class WrongKind(Stamp):
    name: ClassVar[str] = "wrong-kind"
    kind: ClassVar[str] = "training-code"


@dataclass
class NoLoss(benchbd.TrainingCodeAttack):
    name: ClassVar[str] = "no-loss"
    description: ClassVar[str] = "test"

    def trigger(self, x, *, test_time=False):
        return x


@dataclass
class WrongUnit(benchbd.ExampleDefense):
    name: ClassVar[str] = "wrong-unit"
    description: ClassVar[str] = "test"
    unit: ClassVar[str] = "model"

    def score_examples(self, context):
        raise NotImplementedError


@dataclass
class Nameless(benchbd.ModelDefense):
    description: ClassVar[str] = "test"

    def inspect_model(self, context):
        raise NotImplementedError


@dataclass
class ListParameter(benchbd.ModelDefense):
    name: ClassVar[str] = "list-parameter"
    description: ClassVar[str] = "test"
    sizes: list[int] = dataclasses.field(default_factory=list)

    def inspect_model(self, context):
        raise NotImplementedError


@dataclass
class TwoTypes(benchbd.ModelDefense):
    name: ClassVar[str] = "two-types"
    description: ClassVar[str] = "test"
    scale: int | float = 1  # -P could set it only as an int

    def inspect_model(self, context):
        raise NotImplementedError


@dataclass
class Unresolvable(benchbd.ModelDefense):
    name: ClassVar[str] = "unresolvable"
    description: ClassVar[str] = "test"
    helper: ImportedOnlyWhileTypeChecking | None = None  # noqa: F821

    def inspect_model(self, context):
        raise NotImplementedError


@dataclass
class Undescribed(benchbd.ModelDefense):
    name: ClassVar[str] = "undescribed"
    description: ClassVar[str] = "  "

    def inspect_model(self, context):
        raise NotImplementedError


@pytest.mark.parametrize(
    ("hook", "obj", "message"),
    [
        ("benchbd_attacks", NotAnAttack, "attack 'not-an-attack' (test_registry.NotAnAttack) from benchbd-broken is not "
                                         "a subclass of benchbd.DataPoisoningAttack or benchbd.TrainingCodeAttack"),
        ("benchbd_attacks", NameAsField, "declares 'name' as a dataclass field; declare it as `name: ClassVar[str] = ...`"),
        ("benchbd_attacks", Undecorated, "attack 'undecorated' (test_registry.Undecorated) from benchbd-broken is not a dataclass"),
        ("benchbd_attacks", WrongKind, "sets kind = 'training-code', but it subclasses benchbd.DataPoisoningAttack, whose kind is 'data'"),
        ("benchbd_attacks", NoLoss, "from benchbd-broken does not implement loss_computation (abstract in benchbd.TrainingCodeAttack)"),
        ("benchbd_defenses", PatchAttack, "defense 'patch' (benchbd_builtins.attacks.patch.PatchAttack) from benchbd-broken is not a "
                                          "subclass of benchbd.ExampleDefense or benchbd.ModelDefense or benchbd.TrainingRunDefense or benchbd.NoDefense"),
        ("benchbd_defenses", WrongUnit, "sets unit = 'model', but it subclasses benchbd.ExampleDefense, whose unit is 'example'"),
        ("benchbd_defenses", Nameless, "defense test_registry.Nameless from benchbd-broken has no class attribute 'name' (a non-empty str)"),
        ("benchbd_defenses", ListParameter, "has parameters -P cannot set: sizes (list[int]); use bool, int, float, str"),
        ("benchbd_defenses", TwoTypes, "has parameters -P cannot set: scale (int | float)"),
        ("benchbd_defenses", Unresolvable, "has parameter annotations benchbd cannot resolve (name 'ImportedOnlyWhileTypeChecking' is not defined)"),
        ("benchbd_defenses", Undescribed, "defense 'undescribed' (test_registry.Undescribed) from benchbd-broken has no class attribute 'description' (a non-empty str)"),
        ("benchbd_datasets", {"name": "dict-data"}, "dataset dict from benchbd-broken is not a benchbd.DatasetSpec"),
        ("benchbd_models", PatchAttack, "is not a benchbd.ModelSpec"),
    ],
)
def test_the_registry_refuses_objects_that_break_the_contract(hook: str, obj: object, message: str) -> None:
    manager = make_manager()
    manager.register(SimpleNamespace(**{hook: benchbd.hookimpl(lambda: [obj])}), name="broken")
    with pytest.raises(BenchbdError) as refused:
        Registry(manager, {"broken": "benchbd-broken"})
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_plugin_needs_nothing_from_benchbd_submodules() -> None:
    for name in ("check", "TrainingCodeAttack", "LossComputation", "StepInfo", "Checkpoint", "Trainer", "apply_trigger_uint8"):
        assert name in benchbd.__all__ and hasattr(benchbd, name), name
    example = Path(__file__).parents[1] / "examples" / "benchbd-example-plugin" / "benchbd_example_plugin.py"
    assert not re.findall(r"^(?:from|import) benchbd\.", example.read_text(), flags=re.MULTILINE)
