"""Digests that name what a record depends on: of JSON-able descriptions, and of a plugin's source (issue 15,
"caches and resume keyed on code"; BaDLoss's released code hashes code and arguments the same way)."""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import inspect
import json
from pathlib import Path
from typing import Any


def digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Every name an ``import`` statement of ``source`` (the text of ``module``) could import, anywhere in it
    (function bodies too): ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a`` and ``a.b``; relative
    imports are resolved against ``module``'s package."""
    package = (module if is_package else module.rpartition(".")[0]).split(".")
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = ".".join(package[: len(package) - node.level + 1])
                base = f"{parent}.{base}" if base else parent
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def module_source(name: str) -> tuple[Path, bool] | None:
    """The Python source file of module ``name`` and whether it is a package; ``None`` for a name that is no
    module (a class imported from one), a compiled module, or one that cannot be found."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return None
    return Path(spec.origin), spec.submodule_search_locations is not None


def plugin_sources(obj: Any) -> dict[str, Path]:
    """The source files of the module that defines ``obj`` and of the modules of its own top-level package it
    imports, directly or through each other (a helper like ``probes.py``), read from their ``import`` statements.
    Packages' ``__init__`` modules other than the starting one are not followed (they import every plugin of the
    distribution); compiled modules are left out; benchbd's own modules are covered by its version, not here."""
    start = inspect.getmodule(obj)
    path = inspect.getsourcefile(start) if start is not None else None
    if start is None or path is None:
        return {}
    top = start.__name__.split(".")[0]
    sources = {start.__name__: Path(path)}
    pending = [(start.__name__, Path(path), hasattr(start, "__path__"))]
    while pending:
        module, file, is_package = pending.pop()
        for name in sorted(imported_modules(file.read_text(), module, is_package)):
            if name in sources or name.split(".")[0] != top:
                continue
            source = module_source(name)
            if source is not None and not source[1]:
                sources[name] = source[0]
                pending.append((name, *source))
    return dict(sorted(sources.items()))


def source_digest(obj: Any) -> str:
    """A digest of :func:`plugin_sources` of ``obj`` (a plugin class or function), read now: a plugin whose module
    or helper module is edited gets a new digest."""
    sources = plugin_sources(obj)
    if not sources:
        return "unknown"
    sha = hashlib.sha256()
    for name, path in sources.items():
        sha.update(name.encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()[:16]
