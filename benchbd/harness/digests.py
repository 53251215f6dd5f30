"""Digests that name what a record depends on: of JSON-able descriptions, of a plugin's source and of benchbd's own
(issue 15, "caches and resume keyed on code"; BaDLoss's released code hashes code and arguments the same way).

A source file's digest reads its code, not its text (:func:`code_text`): an edited comment, docstring or layout
keeps it, an edited statement changes it (ours: documentation is not behaviour, and a run directory should not be
recomputed for it). The code is read in a form that does not depend on the Python version that parses it, so a run
directory resumed, or a seed computed, under another Python names the same code."""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.machinery
import importlib.util
import inspect
import json
import textwrap
from pathlib import Path
from typing import Any, Callable

import benchbd

#: benchbd's modules that no record depends on: they read records, check plugins, talk to the user or turn a file
#: into the config (which the record's identity holds).
NOT_RECORDED = ("benchbd.cli", "benchbd.conformance", "benchbd.harness.config_file", "benchbd.harness.environment",
                "benchbd.harness.progress", "benchbd.harness.records", "benchbd.leaderboard", "benchbd.papers",
                "benchbd.visualize")


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


def module_file(name: str) -> tuple[Path, bool] | None:
    """The file module ``name`` is loaded from (Python source, or compiled: an extension module, a ``.pyc`` without
    its source) and whether it is a package; ``None`` for a name that is no module (a class imported from one), a
    built-in or namespace module, or one that cannot be found."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.has_location or not spec.origin:
        return None
    return Path(spec.origin), spec.submodule_search_locations is not None


def plugin_sources(obj: Any) -> dict[str, Path]:
    """The files of the module that defines ``obj`` and of the modules of its own top-level package it imports,
    directly or through each other (a helper like ``probes.py``), read from their ``import`` statements; a compiled
    module is taken as its file, whose imports cannot be read. Packages' ``__init__`` modules other than the
    starting one are not followed (they import every plugin of the distribution); benchbd's own modules are covered
    by :func:`harness_digest`, not here."""
    start = inspect.getmodule(obj)
    path = getattr(start, "__file__", None)
    if start is None or path is None:
        return {}
    top = start.__name__.split(".")[0]
    sources = {start.__name__: Path(path)}
    pending = [(start.__name__, Path(path), hasattr(start, "__path__"))]
    while pending:
        module, file, is_package = pending.pop()
        if is_compiled(file):
            continue
        for name in sorted(imported_modules(file.read_text(), module, is_package)):
            if name in sources or name.split(".")[0] != top:
                continue
            found = module_file(name)
            if found is not None and not found[1]:
                sources[name] = found[0]
                pending.append((name, *found))
    return dict(sorted(sources.items()))


def is_compiled(path: Path) -> bool:
    """Whether a module's file is compiled: an extension module, or bytecode shipped without its source."""
    return path.name.endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES)) or path.suffix in importlib.machinery.BYTECODE_SUFFIXES


def code_text(path: Path) -> str:
    """The code of a module's file as its digest reads it: a Python source file's syntax tree without its
    docstrings, in :func:`tree_text`'s form, so comments, docstrings and layout do not count; a file that does not
    parse (a module being edited) is read as it is. A compiled module (:func:`is_compiled`) is read as the SHA-256
    of its bytes, a ``.pyc``'s after its 16-byte header (which holds the source's time or hash, not code)."""
    if is_compiled(path):
        data = path.read_bytes()
        return "compiled " + hashlib.sha256(data[16:] if path.suffix in importlib.machinery.BYTECODE_SUFFIXES else data).hexdigest()
    return _code_text(path.read_bytes())


def function_code(function: Callable[..., Any]) -> str:
    """The code of one function or method, read as :func:`code_text` reads a file."""
    return _code_text(textwrap.dedent(inspect.getsource(function)).encode())


@functools.lru_cache(maxsize=512)
def _code_text(source: bytes) -> str:
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source.decode(errors="replace")
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]
    return tree_text(tree)


def tree_text(node: Any) -> str:
    """A syntax tree as text that the same code gives under every Python version: each node's type and the fields
    it sets, leaving out those that are ``None`` or empty, and an f-string's empty parts. Not ``ast.unparse``, which
    writes the same f-string with other quotes from Python 3.12 on, nor ``ast.dump``, which shows fields that newer
    versions add (``type_params``) and, from 3.13 on, leaves out empty ones. A later Python may still parse some
    code into another tree, which then has another digest (docs/architecture.md says what was checked)."""
    if isinstance(node, ast.JoinedStr):  # Python 3.12 adds an empty part to some format specs (CPython gh-110309)
        node = ast.JoinedStr(values=[v for v in node.values if not (isinstance(v, ast.Constant) and v.value == "")])
    if isinstance(node, ast.AST):
        fields = [f"{name}={tree_text(value)}" for name, value in ast.iter_fields(node) if value is not None and value != []]
        return f"{type(node).__name__}({', '.join(fields)})"
    if isinstance(node, list):
        return f"[{', '.join(tree_text(item) for item in node)}]"
    return repr(node)


def sources_digest(sources: dict[str, Path]) -> str:
    """A digest of the code (:func:`code_text`) of modules named by their dotted names."""
    sha = hashlib.sha256()
    for name, path in sorted(sources.items()):
        sha.update(name.encode() + b"\0" + code_text(path).encode() + b"\0")
    return sha.hexdigest()[:16]


def source_digest(obj: Any) -> str:
    """A digest of :func:`plugin_sources` of ``obj`` (a plugin class or function), read now: a plugin whose module
    or helper module is edited gets a new digest."""
    sources = plugin_sources(obj)
    return sources_digest(sources) if sources else "unknown"


def harness_sources() -> dict[str, Path]:
    """Every module of the benchbd package (harness, trainer, data, models, the plugin base classes) but those in
    :data:`NOT_RECORDED`, by dotted name (a package's ``__init__`` as ``benchbd.data.__init__``)."""
    root = Path(benchbd.__file__).parent
    sources = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if not all(part.isidentifier() for part in parts):  # an editor's lock or backup file is no module
            continue
        name = ".".join(("benchbd", *parts))
        if not any(name == excluded or name.startswith(excluded + ".") for excluded in NOT_RECORDED):
            sources[name] = path
    return sources


@functools.cache
def harness_digest() -> str:
    """A digest of :func:`harness_sources`, read once per process (the code it runs): every record depends on this
    code, so a run directory resumed after it changed computes its cells again instead of mixing two harnesses in
    one table."""
    return sources_digest(harness_sources())
