"""Typed plugin parameters: every attack and defense is a dataclass whose fields are its parameters.

Values arrive as Python objects (from code or a config file) or as strings (from ``--param``);
:func:`build` converts and validates them and names the offending field in its error.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, TypeVar

from benchbd.errors import BenchbdError

T = TypeVar("T")


def _convert(owner: str, field: str, kind: Any, value: Any) -> Any:
    """Convert ``value`` to the field's annotated type (bool, int, float, str, their Optional, Literal)."""
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "")):
            if type(None) in args:
                return None
        inner = [a for a in args if a is not type(None)]
        return _convert(owner, field, inner[0], value)
    if origin is typing.Literal:
        if value not in args:
            raise BenchbdError(f"{owner}: parameter '{field}' must be one of {', '.join(map(str, args))}; got {value!r}")
        return value
    try:
        if kind is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind is float:
            return float(value)
        if kind is str:
            return str(value)
    except (TypeError, ValueError):
        raise BenchbdError(
            f"{owner}: parameter '{field}' must be {kind.__name__}; got {value!r}"
        ) from None
    return value


def build(cls: type[T], values: dict[str, Any]) -> T:
    """Instantiate the parameter dataclass ``cls`` from ``values``, converting and validating them."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    owner = getattr(cls, "name", cls.__name__)
    if unknown:
        raise BenchbdError(
            f"{owner}: unknown parameter(s) {', '.join(unknown)}; valid: {', '.join(fields) or '(none)'}"
        )
    hints = typing.get_type_hints(cls)
    converted = {k: _convert(owner, k, hints[k], v) for k, v in values.items()}
    return cls(**converted)


def check(condition: bool, owner: str, field: str, requirement: str, value: Any) -> None:
    """Raise a :class:`BenchbdError` naming ``field`` unless ``condition`` holds."""
    if not condition:
        raise BenchbdError(f"{owner}: parameter '{field}' must be {requirement}; got {value!r}")


def as_dict(obj: Any) -> dict[str, Any]:
    """The parameters of a plugin instance, for records and config hashes."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
