"""Digests that name what a record depends on: of JSON-able descriptions, and of a plugin's source (issue 15,
"caches and resume keyed on code"; BaDLoss's released code hashes code and arguments the same way)."""

from __future__ import annotations

import hashlib
import inspect
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plugin_modules(obj: Any) -> list[ModuleType]:
    """The module that defines ``obj`` and the modules of its own top-level package it uses, directly or through
    each other (a helper like ``probes.py``): every module named by, or defining a value named by, a module's
    globals. Packages' ``__init__`` modules are not followed (they import every plugin of the distribution);
    benchbd's own modules are covered by its version, not here."""
    start = inspect.getmodule(obj)
    if start is None:
        return []
    package = start.__name__.split(".")[0]
    found = {start.__name__: start}
    pending = [start]
    while pending:
        for value in list(vars(pending.pop()).values()):
            name = value.__name__ if isinstance(value, ModuleType) else getattr(value, "__module__", None)
            module = sys.modules.get(name) if isinstance(name, str) else None
            if module is None or name in found or hasattr(module, "__path__") or name.split(".")[0] != package:
                continue
            found[name] = module
            pending.append(module)
    return [found[name] for name in sorted(found)]


def source_digest(obj: Any) -> str:
    """A digest of the source of :func:`plugin_modules` of ``obj`` (a plugin class or function), read now: a
    plugin whose module or helper module is edited gets a new digest."""
    modules = plugin_modules(obj)
    paths = [inspect.getsourcefile(module) for module in modules]
    if not modules or None in paths:
        return "unknown"
    sha = hashlib.sha256()
    for module, path in zip(modules, paths):
        sha.update(module.__name__.encode() + b"\0" + Path(path).read_bytes())  # type: ignore[arg-type]
    return sha.hexdigest()[:16]
