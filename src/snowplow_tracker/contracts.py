"""Argument checks for every public call, switchable at run time.

The 0.4/0.5 trackers used PyContracts for this; it no longer runs on modern
Python. These checks keep the same switch (:func:`disable_contracts` /
:func:`enable_contracts`) and raise :class:`~snowplow_tracker.exceptions.InvalidTypeError`
or :class:`~snowplow_tracker.exceptions.InvalidValueError` naming the call, the
parameter and the value, so a mistake is reported where it is made.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Mapping, Sized
from typing import Any, NoReturn

from .exceptions import ContractError, InvalidTypeError, InvalidValueError
from .typing import FORM_NODE_NAMES, FORM_TYPES

_enabled = True

#: ``iglu:vendor/name/format/MODEL-REVISION-ADDITION``
IGLU_URI = re.compile(
    r"^iglu:[a-zA-Z0-9_.-]+/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/[1-9][0-9]*-(?:0|[1-9][0-9]*)-(?:0|[1-9][0-9]*)$"
)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
#: Schema URIs that matched :data:`IGLU_URI`: an app uses a handful, so each is matched once.
_VALID_SCHEMAS: set[str] = set()
_MAX_VALID_SCHEMAS = 4096


def disable_contracts() -> None:
    """Skip every argument check (the 0.5.0 switch, for speed in production)."""
    global _enabled
    _enabled = False


def enable_contracts() -> None:
    """Turn argument checks back on (the default)."""
    global _enabled
    _enabled = True


def contracts_enabled() -> bool:
    """Whether argument checks are on."""
    return _enabled


def _describe(value: object) -> str:
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def fail_type(where: str, name: str, expected: str, value: object) -> NoReturn:
    raise _labelled(InvalidTypeError, where, f"{name} must be {expected}, got {_describe(value)}")


def fail_value(where: str, name: str, expected: str, value: object) -> NoReturn:
    raise _labelled(InvalidValueError, where, f"{name} must be {expected}, got {_describe(value)}")


def _labelled(cls: type[ContractError], where: str, text: str) -> ContractError:
    error = cls(f"{where}: {text}")
    error.where = where
    error.text = text
    return error


def relabel(
    error: ContractError, where: str, renamed: Mapping[str, str] | None = None
) -> ContractError:
    """``error`` as raised by ``where``: an event class checked for a ``track_*`` method,
    whose parameters ``renamed`` maps to the method's names."""
    text = error.text
    if not text or error.where == where:
        return error
    for old, new in (renamed or {}).items():
        text = text.replace(old, new)
    return _labelled(type(error), where, text)


def non_empty_string(*args: Any) -> None:
    """``(where, name, value)``; the 1.x form ``non_empty_string(value)`` works too."""
    if len(args) != 3:
        if not _enabled:
            return
        args = ("non_empty_string()", "value", *args)
    where, name, value = args
    if not isinstance(value, str):
        fail_type(where, name, "a non-empty string", value)
    if not value:
        fail_value(where, name, "a non-empty string", value)


def optional_string(where: str, name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        fail_type(where, name, "a string or None", value)


def number(where: str, name: str, value: object, *, optional: bool = False) -> None:
    """An int or a finite float; bool is refused because ``str(True)`` is not a number."""
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail_type(where, name, "an int or a float", value)
    if isinstance(value, float) and not math.isfinite(value):
        fail_value(where, name, "a finite number", value)


def positive(where: str, name: str, value: object) -> None:
    """A number above zero (a duration: zero would mean "for ever" to Redis, or "never")."""
    number(where, name, value)
    if value <= 0:  # type: ignore[operator]
        fail_value(where, name, "a number > 0", value)


def integer(where: str, name: str, value: object, *, minimum: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        fail_type(where, name, "an int", value)
    if minimum is not None and value < minimum:
        fail_value(where, name, f"an int >= {minimum}", value)


def one_of(*args: Any) -> None:
    """``(where, name, value, choices)``; the 1.x form ``one_of(value, supported)`` works too."""
    if len(args) != 4:
        if not _enabled:
            return
        args = ("one_of()", "value", *args)
    where, name, value, choices = args
    if not isinstance(value, Hashable):  # `in` a set would raise a plain TypeError
        fail_type(where, name, "one of " + ", ".join(sorted(map(str, choices))), value)
    if value not in choices:
        fail_value(where, name, "one of " + ", ".join(sorted(map(str, choices))), value)


def optional_callable(where: str, name: str, value: object) -> None:
    if value is not None and not callable(value):
        fail_type(where, name, "callable or None", value)


def uuid_string(where: str, name: str, value: object) -> None:
    if not isinstance(value, str):
        fail_type(where, name, "a UUID string", value)
    if not _UUID.match(value):
        fail_value(where, name, "a canonical lowercase UUID", value)


def self_describing(where: str, name: str, value: object) -> None:
    """A ``{"schema": "iglu:...", "data": {...}}`` mapping."""
    if not isinstance(value, Mapping):
        fail_type(where, name, 'a self-describing JSON dict {"schema": ..., "data": ...}', value)
    schema = value.get("schema")
    if not _is_iglu_uri(schema):
        fail_value(
            where, name + '["schema"]', "an Iglu URI like iglu:com.acme/x/jsonschema/1-0-0", schema
        )
    if "data" not in value:
        fail_value(where, name, 'a dict with a "data" key', value)
    if set(value) - {"schema", "data"}:
        fail_value(where, name, 'a dict with only "schema" and "data" keys', sorted(value))


def _is_iglu_uri(schema: object) -> bool:
    exact = schema.__class__ is str  # a str subclass may compare equal yet behave differently
    if exact and schema in _VALID_SCHEMAS:
        return True
    if not isinstance(schema, str) or not IGLU_URI.match(schema):
        return False
    if exact:
        if len(_VALID_SCHEMAS) >= _MAX_VALID_SCHEMAS:
            _VALID_SCHEMAS.clear()
        _VALID_SCHEMAS.add(schema)
    return True


def checked_contexts(value: object) -> bool:
    """True for the usual valid ``context``: None, or a list of ``{"schema", "data"}`` dicts
    whose schemas have been seen valid before. False means: run :func:`contexts`."""
    if value is None:
        return True
    if value.__class__ is not list or not value:
        return False
    for entity in value:
        if entity.__class__ is not dict or len(entity) != 2 or "data" not in entity:
            return False
        schema = entity.get("schema")
        if schema.__class__ is not str or schema not in _VALID_SCHEMAS:
            return False
    return True


def contexts(where: str, name: str, value: object) -> None:
    """None, or a non-empty list of self-describing JSON dicts."""
    if value is None:
        return
    if not isinstance(value, (list, tuple)):
        fail_type(where, name, "a non-empty list of self-describing JSON dicts", value)
    if not value:
        fail_value(where, name, "a non-empty list of self-describing JSON dicts", value)
    for index, entity in enumerate(value):
        self_describing(where, f"{name}[{index}]", entity)


def mapping(where: str, name: str, value: object) -> None:
    if not isinstance(value, Mapping):
        fail_type(where, name, "a dict", value)


# -- the 1.x helpers: a check of one value, skipped while contracts are disabled --------------


def greater_than(value: Any, compared_to: Any) -> None:
    """1.x: ``value > compared_to``, else :class:`InvalidValueError`."""
    if _enabled and not value > compared_to:
        fail_value("greater_than()", "value", f"greater than {compared_to!r}", value)


def non_empty(seq: Sized) -> None:
    """1.x: a sequence with at least one item."""
    if _enabled and len(seq) == 0:
        fail_value("non_empty()", "value", "non-empty", seq)


def satisfies(value: Any, check: Callable[[Any], bool]) -> None:
    """1.x: ``check(value)`` is true."""
    if _enabled and not check(value):
        fail_value("satisfies()", "value", "accepted by the check", value)


def form_element(element: Any, where: str = "form_element()", name: str = "element") -> None:
    """1.x: a submit_form/change_form element: ``name``, ``value``, a known ``nodeName``
    and, if present, a known ``type``."""
    if not _enabled:
        return
    if not isinstance(element, Mapping):
        fail_type(where, name, "a dict", element)
    missing = [key for key in ("name", "value", "nodeName") if key not in element]
    if missing:
        fail_value(where, name, f"a dict with {', '.join(missing)}", element)
    one_of(where, f'{name}["nodeName"]', element["nodeName"], FORM_NODE_NAMES)
    if "type" in element:
        one_of(where, f'{name}["type"]', element["type"], FORM_TYPES)


__all__ = [
    "FORM_NODE_NAMES",
    "FORM_TYPES",
    "contracts_enabled",
    "disable_contracts",
    "enable_contracts",
    "form_element",
    "greater_than",
    "non_empty",
    "non_empty_string",
    "one_of",
    "satisfies",
]
