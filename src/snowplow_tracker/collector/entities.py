"""An event's self-describing event (``ue_pr``/``ue_px``) and entities (``co``/``cx``):
decoded, validated against their Iglu schemas (memoized by value), and the
enrichment failures that depend on them."""

from __future__ import annotations

import base64
import binascii
import json
import sys
from collections.abc import Iterator
from typing import Any

from .iglu import Resolver
from .model import ENRICHMENT_FAILURES, SCHEMA_VIOLATIONS, SNOWPLOW, Event, _expectation
from .selfdescribing import _iglu_problem, _parse_json, _self_describing_schema


class _EventFailure(Exception):
    def __init__(self, error: str, message: dict[str, Any]) -> None:
        super().__init__(error)
        self.error = error
        self.message = message


_URLSAFE = bytes.maketrans(b"-_", b"+/")


def _b64url_decode(padded: str) -> bytes:
    """``base64.b64decode(padded, altchars=b"-_", validate=True)``, without its per-call set-up."""
    if sys.version_info >= (3, 11):  # what b64decode does there, minus making the table
        try:
            data = padded.encode("ascii")
        except UnicodeEncodeError:
            raise ValueError("string argument should contain only ASCII characters") from None
        return binascii.a2b_base64(data.translate(_URLSAFE), strict_mode=True)
    return base64.b64decode(padded, altchars=b"-_", validate=True)  # pragma: no cover


def _decoded_field(event: Event, encoded: str, plain: str) -> tuple[str, str] | None:
    """(parameter name, JSON text) of a field sent base64url-encoded or plain, if present."""
    if encoded in event.raw:
        value = event.raw[encoded]
        try:
            text = _b64url_decode(value + "=" * (-len(value) % 4)).decode("utf-8")
        except (binascii.Error, UnicodeError, ValueError) as exc:
            raise _EventFailure(
                f"{encoded}: not URL-safe base64 of UTF-8 text",
                {"field": encoded, "value": value[:1000], "error": f"not base64url: {exc}"},
            ) from None
        return encoded, text
    if plain in event.raw:
        return plain, event.raw[plain]
    return None


Failures = list[tuple[str, dict[str, Any]]]
_MEMO_LIMIT = 4096  # memoized field values
_MEMO_MAX_CHARS = 16_384


def _wrapper(name: str, text: str, wrapper: str, resolver: Resolver) -> Any:
    """The validated wrapper's ``data``; raises _EventFailure."""
    document = _parse_json(name, text, _EventFailure)
    schema = _self_describing_schema(name, document, _EventFailure)
    criterion = f"iglu:{SNOWPLOW}/{wrapper}/jsonschema/1-0-*"
    if not schema.startswith(criterion[:-1]):
        raise _EventFailure(
            f"{name}: schema {schema} does not match {criterion}",
            {"schemaKey": schema, "schemaCriterion": criterion},
        )
    problem = _iglu_problem(schema, document["data"], resolver)
    if problem is not None:
        raise _EventFailure(f"{name}: {problem[0]}", problem[1])
    return document["data"]


def _entity_failures(label: str, entity: Any, resolver: Resolver) -> Failures:
    try:
        schema = _self_describing_schema(label, entity, _EventFailure)
    except _EventFailure as failure:
        return [(failure.error, failure.message)]
    problem = _iglu_problem(schema, entity["data"], resolver)
    return [] if problem is None else [(f"{label}: {problem[0]}", problem[1])]


def _decode_and_check(
    event: Event, names: tuple[str, str], wrapper: str, resolver: Resolver
) -> tuple[Any, Failures]:
    """(data, failures) of the unstruct_event or contexts field, memoized by value.

    Validation is a pure function of the field's text, and trackers repeat the
    same entities (the page, the user) on event after event: the memo makes a
    repeat cost one dict lookup. Memoized data is shared: treat it as read-only.
    """
    encoded, plain = names
    value = event.raw.get(encoded)
    name = encoded
    if value is None:
        value, name = event.raw.get(plain), plain
        if value is None:
            return None, []
    key = (name, value)
    memo = resolver.memo
    found = memo.get(key)
    if found is not None:
        return found  # type: ignore[no-any-return]
    result = _decode_uncached(event, names, wrapper, resolver)
    if len(value) <= _MEMO_MAX_CHARS:
        if len(memo) >= _MEMO_LIMIT:
            memo.clear()
        memo[key] = result
    return result


def _decode_uncached(
    event: Event, names: tuple[str, str], wrapper: str, resolver: Resolver
) -> tuple[Any, Failures]:
    try:
        found = _decoded_field(event, *names)
        assert found is not None
        data = _wrapper(found[0], found[1], wrapper, resolver)
    except _EventFailure as failure:
        return None, [(failure.error, failure.message)]
    failures: Failures = []
    if wrapper == "unstruct_event":
        failures = _entity_failures("unstruct event", data, resolver)
    elif isinstance(data, list):
        for index, entity in enumerate(data):
            failures.extend(_entity_failures(f"context[{index}]", entity, resolver))
        data = [entity for entity in data if isinstance(entity, dict)]  # the event's contexts
    return data, failures


def _check_unstruct(event: Event, resolver: Resolver) -> None:
    data, failures = _decode_and_check(event, ("ue_px", "ue_pr"), "unstruct_event", resolver)
    if isinstance(data, dict):
        event.unstruct_event = data
    for error, message in failures:
        event.fail(SCHEMA_VIOLATIONS, error, message)


def _check_contexts(event: Event, resolver: Resolver) -> None:
    _apply_contexts(event, _decode_and_check(event, ("cx", "co"), "contexts", resolver))


def _apply_contexts(event: Event, checked: tuple[Any, Failures]) -> None:
    data, failures = checked
    if isinstance(data, list):
        event.contexts = list(data)  # memoized and shared: each event gets its own list
    for error, message in failures:
        event.fail(SCHEMA_VIOLATIONS, error, message)


def _check_enrichments(event: Event) -> None:
    kind = event.raw.get("e")
    if kind == "ad":
        event.fail(
            ENRICHMENT_FAILURES,
            "e: the legacy ad_impression event (e=ad) has no schema; track a self-describing "
            "ad_impression event instead",
            {
                "enrichment": None,
                "message": _expectation("event", "ad_impression", "an event type with a schema"),
            },
        )
    elif kind == "ue" and event.unstruct_event is None:
        event.fail(
            ENRICHMENT_FAILURES,
            "e: an unstructured event (e=ue) without ue_pr or ue_px",
            {
                "enrichment": None,
                "message": _expectation("unstruct_event", None, "ue_pr or ue_px for an e=ue event"),
            },
        )


def iter_entities(event: Event) -> Iterator[dict[str, Any]]:
    """The self-describing event (if any) and the entities of an event."""
    if event.unstruct_event is not None:
        yield event.unstruct_event
    yield from event.contexts


def decode_entities(event: Event) -> None:
    """Fill ``unstruct_event`` and ``contexts`` from the raw fields, without validating."""
    for names, wrapper in ((("ue_px", "ue_pr"), "unstruct"), (("cx", "co"), "contexts")):
        try:
            found = _decoded_field(event, *names)
            document = json.loads(found[1]) if found else None
        except (_EventFailure, ValueError, RecursionError):
            continue
        data = document.get("data") if isinstance(document, dict) else None
        if wrapper == "unstruct" and isinstance(data, dict):
            event.unstruct_event = data
        elif wrapper == "contexts" and isinstance(data, list):
            event.contexts = [entity for entity in data if isinstance(entity, dict)]
