"""Plugin discovery with pluggy: every plugin, built-in or third-party, comes through the ``benchbd`` entry points,
or, named with ``benchbd -p MODULE``, as a module imported without installing it.

The registry refuses, naming the object and its distribution, what breaks the contract of :mod:`benchbd.hookspecs`
(:func:`check_contract`), so that a plugin fails when it is loaded, not in the middle of a matrix.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.machinery
import importlib.util
import inspect
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any, Literal, NoReturn

import pluggy

from benchbd import hookspecs
from benchbd.attacks import Attack, DataPoisoningAttack, TrainingCodeAttack
from benchbd.data.images import DatasetSpec
from benchbd.defenses import Defense, ExampleDefense, ModelDefense, NoDefense, TrainingRunDefense
from benchbd.errors import BenchbdError
from benchbd.models import ModelSpec
from benchbd.params import settable

ENTRY_POINT_GROUP = "benchbd"
Category = Literal["attacks", "defenses", "datasets", "models"]
CATEGORIES: tuple[Category, ...] = ("attacks", "defenses", "datasets", "models")

#: What each category's objects must be: subclasses of exactly one of these (attacks, defenses) or instances.
BASES: dict[Category, tuple[type, ...]] = {
    "attacks": (DataPoisoningAttack, TrainingCodeAttack),
    "defenses": (ExampleDefense, ModelDefense, TrainingRunDefense, NoDefense),
    "datasets": (DatasetSpec,),
    "models": (ModelSpec,),
}
#: The class attribute in which an attack's or defense's base states its kind (shown as ``Entry.kind``).
KIND_ATTRIBUTE: dict[Category, str] = {"attacks": "kind", "defenses": "unit"}


@dataclass(frozen=True)
class Entry:
    """One registered plugin object and where it came from."""

    name: str
    kind: str
    description: str
    distribution: str
    obj: Any


def _label(obj: Any) -> str:
    """``'patch' (benchbd_builtins.attacks.patch.PatchAttack)``: how errors name a registered object."""
    where = f"{obj.__module__}.{obj.__qualname__}" if isinstance(obj, type) else type(obj).__name__
    name = getattr(obj, "name", None)
    return f"'{name}' ({where})" if isinstance(name, str) else where


def check_contract(category: Category, obj: Any, distribution: str) -> None:
    """Refuse, with one line naming ``obj`` and ``distribution``, an object that breaks the hook's contract: an
    attack or defense must be a dataclass subclassing exactly one base of :data:`BASES`, with ``name`` and
    ``description`` class attributes (``ClassVar``, not fields), the kind its base gives, and every abstract method
    implemented; a dataset or model must be a :class:`DatasetSpec` or :class:`ModelSpec`."""

    def refuse(problem: str) -> NoReturn:
        raise BenchbdError(f"{category[:-1]} {_label(obj)} from {distribution} {problem}")

    bases = BASES[category]
    expected = " or ".join(f"benchbd.{base.__name__}" for base in bases)
    if category in ("datasets", "models"):
        if not isinstance(obj, bases):
            refuse(f"is not a {expected}")
        return
    if not (isinstance(obj, type) and issubclass(obj, bases)):
        refuse(f"is not a subclass of {expected}")
    own = [base for base in bases if issubclass(obj, base)]
    if len(own) > 1:
        refuse(f"subclasses {' and '.join(f'benchbd.{base.__name__}' for base in own)}; it must subclass one")
    if "__dataclass_fields__" not in vars(obj):
        refuse("is not a dataclass: decorate it with @dataclass")
    fields = {f.name for f in dataclasses.fields(obj)}
    for attribute in ("name", "description"):
        if attribute in fields:
            refuse(f"declares '{attribute}' as a dataclass field; declare it as `{attribute}: ClassVar[str] = ...`")
        if not isinstance(getattr(obj, attribute, None), str) or not getattr(obj, attribute).strip():
            refuse(f"has no class attribute '{attribute}' (a non-empty str)")
    attribute, base = KIND_ATTRIBUTE[category], own[0]
    if getattr(obj, attribute) != getattr(base, attribute):
        refuse(
            f"sets {attribute} = {getattr(obj, attribute)!r}, but it subclasses benchbd.{base.__name__}, whose "
            f"{attribute} is {getattr(base, attribute)!r}: the base decides, remove the attribute"
        )
    if inspect.isabstract(obj):
        refuse(f"does not implement {', '.join(sorted(obj.__abstractmethods__))} (abstract in benchbd.{base.__name__})")
    try:
        hints = typing.get_type_hints(obj)
    except (NameError, TypeError) as exc:
        refuse(f"has parameter annotations benchbd cannot resolve ({exc}): import their types at run time")
    unsettable = [f"{f.name} ({hints[f.name]})" for f in dataclasses.fields(obj) if f.init and not settable(hints[f.name])]
    if unsettable:
        refuse(f"has parameters -P cannot set: {', '.join(unsettable)}; use bool, int, float, str, a Literal or an Optional of these")


class Registry:
    """The name → plugin tables, built from a pluggy plugin manager."""

    def __init__(self, manager: pluggy.PluginManager, distributions: dict[str, str], autoloaded: frozenset[str] = frozenset()) -> None:
        """``distributions``: each registered plugin's distribution, by plugin name; ``autoloaded``: the plugins
        loaded only because autoload is on, whose errors say how to run without them."""
        self.manager = manager
        self.tables: dict[Category, dict[str, Entry]] = {category: {} for category in CATEGORIES}
        for category in CATEGORIES:
            hook = getattr(manager.hook, f"benchbd_{category}")
            for impl in hook.get_hookimpls():
                distribution = distributions.get(impl.plugin_name, impl.plugin_name)
                try:
                    for obj in _loaded(impl.plugin_name, impl.function, f"benchbd_{category}, from {distribution}") or []:
                        self._add(category, obj, distribution)
                except BenchbdError as exc:
                    raise _with_autoload_hint(exc, impl.plugin_name in autoloaded) from None

    def _add(self, category: Category, obj: Any, distribution: str) -> None:
        check_contract(category, obj, distribution)
        name = obj.name
        description = obj.description.strip().splitlines()[0]
        table = self.tables[category]
        if name in table:
            raise BenchbdError(
                f"two plugins register the {category[:-1]} '{name}': {table[name].distribution} and {distribution}"
            )
        kind = getattr(obj, KIND_ATTRIBUTE[category]) if category in KIND_ATTRIBUTE else "-"
        table[name] = Entry(name, kind, description, distribution, obj)

    def get(self, category: Category, name: str) -> Any:
        """The registered object, or an error that lists the valid names."""
        try:
            return self.tables[category][name].obj
        except KeyError:
            valid = ", ".join(sorted(self.tables[category]))
            raise BenchbdError(f"unknown {category[:-1]} '{name}'; valid: {valid}; {NOT_INSTALLED_HINT}") from None

    def names(self, category: Category) -> list[str]:
        return sorted(self.tables[category])

    def provenance(self, category: Category, name: str) -> str:
        """The distribution that registered the plugin, with its installed version: ``"benchbd 0.1.0"``."""
        distribution = self.tables[category][name].distribution
        try:
            return f"{distribution} {metadata.version(distribution)}"
        except metadata.PackageNotFoundError:  # registered in-process, not from an installed distribution
            return distribution

    def attack(self, name: str) -> type[Attack]:
        return self.get("attacks", name)

    def defense(self, name: str) -> type[Defense]:
        return self.get("defenses", name)

    def dataset(self, name: str) -> DatasetSpec:
        return self.get("datasets", name)

    def model(self, name: str) -> ModelSpec:
        return self.get("models", name)


def make_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager(ENTRY_POINT_GROUP)
    manager.add_hookspecs(hookspecs)
    return manager


AUTOLOAD_OFF = "BENCHBD_DISABLE_PLUGIN_AUTOLOAD"
#: The end of an unknown plugin name's error.
NOT_INSTALLED_HINT = "a plugin module not installed loads with PYTHONPATH=ITS_FOLDER benchbd -p MODULE COMMAND ..."
BUILTIN_DISTRIBUTION = "benchbd"


@cache
def default_registry(requested: tuple[str, ...] = ()) -> Registry:
    """The registry of the installed plugins (entry-point group ``benchbd``), loaded once per process.

    With ``BENCHBD_DISABLE_PLUGIN_AUTOLOAD`` set (as pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), only the
    built-ins and the entry points named in ``requested`` (``benchbd -p NAME``) are loaded. A name in ``requested``
    that is no entry point is imported as a module from ``sys.path`` (``PYTHONPATH``), as pytest's ``-p`` does: a
    plugin module loaded without installing it, which the tables name as ``NAME (module, not installed)`` (or by
    the installed distribution that ships it, if one does).
    """
    autoload = not os.environ.get(AUTOLOAD_OFF)
    manager = make_manager()
    distributions = {}
    found = set()
    autoloaded = set()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist.name if entry_point.dist else "?"
        found.add(entry_point.name)
        builtin_or_requested = distribution == BUILTIN_DISTRIBUTION or entry_point.name in requested
        if not (autoload or builtin_or_requested) or manager.has_plugin(entry_point.name):
            continue
        if not builtin_or_requested:
            autoloaded.add(entry_point.name)
        try:
            plugin = _loaded(entry_point.name, entry_point.load, f"{entry_point.value}, from {distribution}")
        except BenchbdError as exc:
            raise _with_autoload_hint(exc, entry_point.name in autoloaded) from None
        manager.register(plugin, name=entry_point.name)
        distributions[entry_point.name] = distribution
    for name in dict.fromkeys(requested):
        if name not in found:
            label = _register_module(manager, name)
            if label:
                distributions[name] = label
    return Registry(manager, distributions, frozenset(autoloaded))


def _with_autoload_hint(error: BenchbdError, autoloaded: bool) -> BenchbdError:
    """The error of a plugin that autoload brought in says how to run without it; others' stay as they are."""
    return BenchbdError(f"{error} ({AUTOLOAD_OFF}=1 loads only the built-ins and the plugins named with -p)") if autoloaded else error


def _loaded(name: str, load: Callable[[], Any], origin: str) -> Any:
    """``load()``, whose failure (a third party's import error) is one line naming the plugin."""
    try:
        return load()
    except Exception as exc:  # noqa: BLE001 - any import failure of a third-party plugin
        raise BenchbdError(f"plugin '{name}' ({origin}) failed to load: {type(exc).__name__}: {exc}") from None


def _find_spec(name: str) -> importlib.machinery.ModuleSpec | None:
    try:
        return importlib.util.find_spec(name)
    except (ModuleNotFoundError, ValueError):  # a missing parent package, a malformed name
        return None


def _register_module(manager: pluggy.PluginManager, name: str) -> str | None:
    """Import and register the module ``-p NAME`` names when no entry point has that name; return the
    distribution it comes from, "NAME (module, not installed)" when none, or None when an entry point registered
    it already. Refused, in one line, unless it is a module that implements one of benchbd's hooks (marked
    ``@benchbd.hookimpl``)."""
    spec = _loaded(name, lambda: _find_spec(name), "its package")  # finding a.b imports a
    if spec is None:
        raise BenchbdError(f"-p {name}: no entry point of that name in group '{ENTRY_POINT_GROUP}', and no module of "
                           "that name to import (put its folder on PYTHONPATH, or install its distribution)")
    if spec.origin is None:
        raise BenchbdError(f"-p {name}: a namespace package (a folder without __init__.py); name the module that "
                           f"implements benchbd's hooks, e.g. -p {name}.plugin")
    module = _loaded(name, lambda: importlib.import_module(name), f"module {spec.origin}")
    if manager.is_registered(module):
        return None
    manager.register(module, name=name)
    if not manager.get_hookcallers(module):
        raise BenchbdError(f"-p {name}: module {spec.origin} implements none of benchbd's hooks with @benchbd.hookimpl "
                           f"({', '.join(f'benchbd_{category}' for category in CATEGORIES)})")
    installed = metadata.packages_distributions().get(name.split(".")[0])
    return installed[0] if installed else f"{name} (module, not installed)"
