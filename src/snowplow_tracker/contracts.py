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
from collections.abc import Collection, Hashable, Mapping
from typing import NoReturn

from .exceptions import InvalidTypeError, InvalidValueError

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
    raise InvalidTypeError(f"{where}: {name} must be {expected}, got {_describe(value)}")


def fail_value(where: str, name: str, expected: str, value: object) -> NoReturn:
    raise InvalidValueError(f"{where}: {name} must be {expected}, got {_describe(value)}")


def non_empty_string(where: str, name: str, value: object) -> None:
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


def one_of(where: str, name: str, value: object, choices: Collection[str]) -> None:
    if not isinstance(value, Hashable):  # `in` a set would raise a plain TypeError
        fail_type(where, name, "one of " + ", ".join(sorted(choices)), value)
    if value not in choices:
        fail_value(where, name, "one of " + ", ".join(sorted(choices)), value)


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


__all__ = ["contracts_enabled", "disable_contracts", "enable_contracts"]
