"""Typed plugin parameters: every attack and defense is a dataclass whose fields are its parameters.

Values arrive as Python objects (from code or a config file) or as strings (from ``--param``);
:func:`build` converts them and names the offending field in its error. :class:`Plugin`, the base of every
attack and defense, validates an instance however it is built.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from abc import ABCMeta
from functools import cache
from typing import Any, ClassVar, TypeVar

from benchbd.errors import BenchbdError

T = TypeVar("T")


#: The types a parameter may have: what ``-P NAME.FIELD=VALUE`` and a config file can set.
SETTABLE = (bool, int, float, str)


def settable(kind: Any) -> bool:
    """Whether :func:`build` can set a parameter of type ``kind``: one of :data:`SETTABLE`, a ``Literal``, or an
    Optional of one of them (not a union of two: :func:`_convert` would try only the first)."""
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return len(members) == 1 and type(None) in typing.get_args(kind) and settable(members[0])
    return kind in SETTABLE or typing.get_origin(kind) is typing.Literal


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
        _check_choice(owner, field, args, value)
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
    raise BenchbdError(f"{owner}: parameter '{field}' has type {kind}, which benchbd cannot set (see params.settable)")


def build(cls: type[T], values: dict[str, Any]) -> T:
    """Instantiate the parameter dataclass ``cls`` from ``values``, converting and validating them."""
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    owner = owner_name(cls)
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


def _check_choice(owner: str, field: str, choices: tuple[Any, ...], value: Any) -> None:
    """:func:`check` that ``value`` is one of ``choices`` (a ``Literal``'s values)."""
    check(value in choices, owner, field, f"one of {', '.join(map(str, choices))}", value)


def owner_name(cls: type) -> str:
    """The name errors give a plugin class: its registered ``name``, else its class name."""
    return getattr(cls, "name", cls.__name__)


@cache
def _literal_choices(cls: type) -> dict[str, tuple[Any, ...]]:
    """The allowed values of each ``Literal``-typed parameter of the dataclass ``cls`` (``None`` too if Optional)."""
    hints = typing.get_type_hints(cls)
    choices = {}
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        members = typing.get_args(kind) if typing.get_origin(kind) in (typing.Union, types.UnionType) else (kind,)
        values = tuple(v for m in members if typing.get_origin(m) is typing.Literal for v in typing.get_args(m))
        if f.init and values:
            choices[f.name] = values + ((None,) if type(None) in members else ())
    return choices


class _CheckedOnConstruction(ABCMeta):
    """Calls ``_check_base_fields`` on every instance once its ``__init__`` (hence ``__post_init__``) returned."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        instance = super().__call__(*args, **kwargs)
        instance._check_base_fields()
        return instance


class Plugin(metaclass=_CheckedOnConstruction):
    """Base of every attack and defense class: a dataclass whose fields are its parameters.

    Building an instance in any way (``PatchAttack(ratio=2)``, :func:`build`, :func:`dataclasses.replace`) runs
    the dataclass's ``__init__`` with the plugin's own ``__post_init__``, and then, from the metaclass,
    :meth:`_check_base_fields`: every ``Literal``-typed field and the fields the bases declare. No
    ``__post_init__`` can skip these checks (they run after it), so a plugin checks only its own fields there,
    with :func:`check`. Required methods are abstract: a class lacking one cannot be instantiated, and the
    registry refuses it.
    """

    name: ClassVar[str]
    description: ClassVar[str]

    def _check_base_fields(self) -> None:
        """Every ``Literal``-typed parameter holds one of its values. The bases extend this for the fields they
        declare (an attack's ``target``, a poisoning attack's ``ratio``); plugins do not override it."""
        for field, choices in _literal_choices(type(self)).items():
            _check_choice(owner_name(type(self)), field, choices, getattr(self, field))


def as_dict(obj: Any) -> dict[str, Any]:
    """The parameters of a plugin instance, for records and config hashes."""
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj) if f.init}
