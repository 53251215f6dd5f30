"""Plugin discovery with pluggy: every plugin, built-in or third-party, comes through the ``benchbd`` entry points."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib import metadata
from typing import Any, Literal

import pluggy

from benchbd import hookspecs
from benchbd.attacks import Attack
from benchbd.data.images import DatasetSpec
from benchbd.defenses import Defense
from benchbd.errors import BenchbdError
from benchbd.models import ModelSpec

ENTRY_POINT_GROUP = "benchbd"
Category = Literal["attacks", "defenses", "datasets", "models"]
CATEGORIES: tuple[Category, ...] = ("attacks", "defenses", "datasets", "models")


@dataclass(frozen=True)
class Entry:
    """One registered plugin object and where it came from."""

    name: str
    category: Category
    kind: str
    description: str
    distribution: str
    obj: Any


def _kind(category: Category, obj: Any) -> str:
    if category == "attacks":
        return obj.kind
    if category == "defenses":
        return obj.unit
    return "-"


class Registry:
    """The name → plugin tables, built from a pluggy plugin manager."""

    def __init__(self, manager: pluggy.PluginManager, distributions: dict[str, str]) -> None:
        self.manager = manager
        self.tables: dict[Category, dict[str, Entry]] = {category: {} for category in CATEGORIES}
        for category in CATEGORIES:
            hook = getattr(manager.hook, f"benchbd_{category}")
            for impl in hook.get_hookimpls():
                for obj in impl.function() or []:
                    self._add(category, obj, distributions.get(impl.plugin_name, impl.plugin_name))

    def _add(self, category: Category, obj: Any, distribution: str) -> None:
        name = obj.name
        description = (obj.description or "").strip().splitlines()[0] if obj.description else ""
        table = self.tables[category]
        if name in table:
            raise BenchbdError(
                f"two plugins register the {category[:-1]} '{name}': {table[name].distribution} and {distribution}"
            )
        table[name] = Entry(name, category, _kind(category, obj), description, distribution, obj)

    def get(self, category: Category, name: str) -> Any:
        """The registered object, or an error that lists the valid names."""
        try:
            return self.tables[category][name].obj
        except KeyError:
            valid = ", ".join(sorted(self.tables[category]))
            raise BenchbdError(f"unknown {category[:-1]} '{name}'; valid: {valid}") from None

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
BUILTIN_DISTRIBUTION = "benchbd"


@cache
def default_registry(requested: tuple[str, ...] = ()) -> Registry:
    """The registry of the installed plugins (entry-point group ``benchbd``), loaded once per process.

    With ``BENCHBD_DISABLE_PLUGIN_AUTOLOAD`` set (as pytest's ``PYTEST_DISABLE_PLUGIN_AUTOLOAD``), only the
    built-ins and the entry points named in ``requested`` (``benchbd -p NAME``) are loaded.
    """
    autoload = not os.environ.get(AUTOLOAD_OFF)
    manager = make_manager()
    distributions = {}
    found = set()
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = entry_point.dist.name if entry_point.dist else "?"
        found.add(entry_point.name)
        wanted = autoload or distribution == BUILTIN_DISTRIBUTION or entry_point.name in requested
        if not wanted or manager.has_plugin(entry_point.name):
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:  # noqa: BLE001 - any import failure of a third-party plugin
            raise BenchbdError(
                f"plugin '{entry_point.name}' ({entry_point.value}, from {distribution}) failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        manager.register(plugin, name=entry_point.name)
        distributions[entry_point.name] = distribution
    missing = sorted(set(requested) - found)
    if missing:
        raise BenchbdError(f"-p {', '.join(missing)}: no such entry point in group '{ENTRY_POINT_GROUP}'")
    return Registry(manager, distributions)
