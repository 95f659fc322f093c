"""Schemas compiled for validation, as the Iglu clients validate: JSON Schema Draft 4
with ``format`` checks (``uuid`` included, which Draft 4 validators lack).

A compiled fast path (hand-made checks for the tracker protocol's own shapes, else
fastjsonschema) answers "valid" for the common case; only invalid data pays for
jsonschema's complete error report."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from itertools import chain
from typing import Any

import fastjsonschema
from jsonschema import Draft4Validator, FormatChecker

from .iglu_keys import SchemaKey

_DRAFT4 = "http://json-schema.org/draft-04/schema#"


# -- formats ------------------------------------------------------------------------------------
# One set of format checks for both validators, so the fast path and the full
# report never disagree about a format.

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATE_TIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):?[0-5]\d)$"
)
_URI_FORMAT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _ip(version: int) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return check


def _regex_format(pattern: re.Pattern[str]) -> Callable[[object], bool]:
    return lambda value: not isinstance(value, str) or pattern.match(value) is not None


FORMATS: dict[str, Callable[[object], bool]] = {
    "uuid": _regex_format(_UUID),
    "date-time": _regex_format(_DATE_TIME),
    "uri": _regex_format(_URI_FORMAT),
    "email": _regex_format(_EMAIL),
    "hostname": _regex_format(_HOSTNAME),
    "ipv4": _ip(4),
    "ipv6": _ip(6),
}
_format_checker = FormatChecker(formats=["regex"])
for _name, _check in FORMATS.items():
    _format_checker.checks(_name)(_check)


@dataclass(frozen=True)
class DataReport:
    """One validation failure, in the Iglu client's ``dataReports`` shape."""

    path: str
    message: str
    keyword: str | None

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "path": self.path, "keyword": self.keyword, "targets": []}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class CompiledSchema:
    """A schema ready to validate: a compiled fast path plus jsonschema for the full report."""

    def __init__(self, key: SchemaKey, schema: dict[str, Any]) -> None:
        self.key = key
        self.schema = schema
        self._full = Draft4Validator(schema, format_checker=_format_checker)
        self._fast = (
            _string_records_check(schema) or _wrapper_check(schema) or _compile_fast(schema)
        )

    def reports(self, instance: Any) -> list[DataReport]:
        if self._fast is not None:
            try:
                self._fast(instance)
                return []
            except Exception:
                pass
        # jsonschema is the reference: it gives every error, and wins if the two disagree.
        return [_report(error) for error in self._full.iter_errors(instance)]


def _string_records_check(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """A hand-made check for payload_data's shape: a non-empty array of flat objects of strings.

    Every tracker-protocol request is validated against it, so it is worth ten
    times the speed of the generic compiled check. None if the schema is any other shape.
    """
    items = schema.get("items")
    if (
        set(schema) - {"$schema", "self", "description", "type", "items", "minItems"}
        or schema.get("type") != "array"
        or schema.get("minItems", 0) > 1
        or not isinstance(items, dict)
        or set(items) - {"type", "properties", "required", "additionalProperties"}
        or items.get("type") != "object"
        or items.get("additionalProperties") is not False
        or not isinstance(items.get("properties"), dict)
        or any(p != {"type": "string"} for p in items["properties"].values())
    ):
        return None
    allowed = frozenset(items["properties"])
    required = frozenset(items.get("required", ()))
    non_empty = schema.get("minItems", 0) == 1

    def check(instance: Any) -> None:
        if type(instance) is not list or (non_empty and not instance):
            raise ValueError("not a non-empty array")
        for item in instance:
            if type(item) is not dict or not item.keys() <= allowed or not required <= item.keys():
                raise ValueError("invalid item")
        # Every value a string, in one C loop: join raises TypeError on anything else.
        "".join(chain.from_iterable(map(dict.values, instance)))

    return check


_ANNOTATIONS = {"$schema", "self", "description"}


def _wrapper_check(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """A hand-made check for the self-describing wrappers (unstruct_event, contexts).

    An object of ``schema`` (a string matching a pattern) and ``data`` (anything),
    or an array of them: the shapes every self-describing event and every entity
    list is validated against. It raises where the schema fails; jsonschema makes
    the report. None if the schema is any other shape.
    """
    shape = schema
    array = schema.get("type") == "array"
    if array:
        if set(schema) - _ANNOTATIONS - {"type", "items"} or not isinstance(
            schema.get("items"), dict
        ):
            return None
        shape = schema["items"]
    properties = shape.get("properties")
    if (
        set(shape) - _ANNOTATIONS - {"type", "properties", "required", "additionalProperties"}
        or shape.get("type") != "object"
        or shape.get("additionalProperties") is not False
        or not isinstance(properties, dict)
        or set(properties) != {"schema", "data"}
        or properties["data"] != {}
        or set(properties["schema"]) != {"type", "pattern"}
        or properties["schema"]["type"] != "string"
        or not isinstance(properties["schema"]["pattern"], str)
        or not isinstance(shape.get("required", []), list)
        or not set(shape.get("required", [])) <= {"schema", "data"}
    ):
        return None
    search = re.compile(properties["schema"]["pattern"]).search  # as jsonschema's "pattern"
    allowed = frozenset({"schema", "data"})
    required = frozenset(shape.get("required", []))

    def check_one(item: Any) -> None:
        if type(item) is not dict or not item.keys() <= allowed or not required <= item.keys():
            raise ValueError("not a self-describing object")
        if "schema" in item and (type(item["schema"]) is not str or not search(item["schema"])):
            raise ValueError("schema does not match")

    def check_array(instance: Any) -> None:
        if type(instance) is not list:
            raise ValueError("not an array")
        for item in instance:
            check_one(item)

    return check_array if array else check_one


def _compile_fast(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    # Force Draft 4 (Iglu's meta-schema URI is unknown to fastjsonschema), never fill
    # defaults into the caller's data, and never fetch a remote $ref.
    definition = dict(schema, **{"$schema": _DRAFT4})
    try:
        return fastjsonschema.compile(
            definition,
            handlers={"http": _no_fetch, "https": _no_fetch},
            formats=FORMATS,
            use_default=False,
        )
    except Exception:
        return None


def _no_fetch(uri: str) -> Any:
    raise LookupError(f"remote $ref {uri} is not fetched")


def _report(error: Any) -> DataReport:
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return DataReport(path, str(error.message), str(error.validator))
