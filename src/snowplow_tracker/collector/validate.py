"""Decoding and validating tracker-protocol events, in the stages of the real pipeline.

1. The collector: a body over the size limit is a ``size_violation``; a body that
   is not UTF-8 text a ``collector_payload_format_violation``.
2. The adapter turns one request into raw events; if that fails the whole request
   is one bad row: ``tracker_protocol_violations`` for the Snowplow tracker
   protocol (tp2), ``adapter_failures`` for tp1 and unknown vendor/version paths.
3. Per event, like Enrich's EnrichmentManager: atomic fields are parsed and
   self-describing events and entities validated against their Iglu schemas
   (``schema_violations``); then the enrichments run (``enrichment_failures``,
   reported only if there was no schema violation); then atomic field lengths
   are checked (``schema_violations`` against ``atomic``).

Each failure is kept twice: as a readable line in ``errors`` and as a structured
message in ``messages``, the form Snowplow's bad rows use.

This module holds stages 1 and 2 and runs stage 3; the parts live beside it:
``model`` (the payload, event and bad-row types), ``selfdescribing`` (JSON and
Iglu checks), ``atomic`` (atomic fields) and ``entities`` (self-describing event
and entities). Every name is importable from here as before.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import chain
from typing import Any
from urllib.parse import parse_qsl

from .atomic import _BATCH_MIN, FIELD_LIMITS, _atomic_fine, _check_atomic, _check_lengths
from .entities import (
    Failures,
    _apply_contexts,
    _check_contexts,
    _check_enrichments,
    _check_unstruct,
    decode_entities,
    iter_entities,
)
from .entities import _b64url_decode as _b64url_decode
from .iglu import Resolver, SchemaNotFound
from .model import (
    ACCEPTED_CONTENT_TYPES,
    ADAPTER_FAILURES,
    ATOMIC,
    COLLECTOR_PAYLOAD_FORMAT_VIOLATION,
    ENRICHMENT_FAILURES,
    EVENT_TYPES,
    MAX_JSON_DEPTH,
    MAX_PAYLOAD_SIZE,
    PLATFORMS,
    SCHEMA_VIOLATIONS,
    SIZE_VIOLATION,
    SNOWPLOW,
    TP1_PATHS,
    TP2_PATH,
    TRACKER_PROTOCOL_VIOLATIONS,
    CollectorPayload,
    Event,
    PayloadFailure,
    ProtocolViolation,
    _expectation,
)
from .selfdescribing import (
    _iglu_problem,
    _is_iglu_uri,
    _parse_json,
    _self_describing_schema,
    _too_deep,
)
from .selfdescribing import _parse_key as _parse_key

__all__ = [
    "ACCEPTED_CONTENT_TYPES",
    "ADAPTER_FAILURES",
    "ATOMIC",
    "COLLECTOR_PAYLOAD_FORMAT_VIOLATION",
    "ENRICHMENT_FAILURES",
    "EVENT_TYPES",
    "FIELD_LIMITS",
    "MAX_JSON_DEPTH",
    "MAX_PAYLOAD_SIZE",
    "PLATFORMS",
    "SCHEMA_VIOLATIONS",
    "SIZE_VIOLATION",
    "SNOWPLOW",
    "TP1_PATHS",
    "TP2_PATH",
    "TRACKER_PROTOCOL_VIOLATIONS",
    "CollectorPayload",
    "Event",
    "Failures",
    "PayloadFailure",
    "ProtocolViolation",
    "check_event",
    "check_events",
    "decode_entities",
    "decode_post_body",
    "extract_events",
    "iter_entities",
]


# -- stages 1 and 2: the request ------------------------------------------------------------------


def extract_events(payload: CollectorPayload, resolver: Resolver) -> list[dict[str, str]]:
    """The raw events of one request; raises ProtocolViolation for the whole request."""
    if len(payload.body) > MAX_PAYLOAD_SIZE:
        raise ProtocolViolation(
            f"payload is {len(payload.body)} bytes, more than the {MAX_PAYLOAD_SIZE} allowed",
            {
                "maximumAllowedSizeBytes": MAX_PAYLOAD_SIZE,
                "actualSizeBytes": len(payload.body),
                "expectation": "a payload no larger than maxPayloadSize",
            },
            SIZE_VIOLATION,
        )
    if payload.path in TP1_PATHS:
        if not payload.query:
            raise ProtocolViolation(
                "empty querystring: no event in the request",
                _expectation("querystring", None, "non-empty querystring"),
                ADAPTER_FAILURES,
            )
        return [dict(parse_qsl(payload.query, keep_blank_values=True))]
    if payload.path != TP2_PATH:
        vendor, version = payload.api
        raise ProtocolViolation(
            f"vendor/version combination {vendor}/{version} is not supported",
            _expectation(
                "vendor/version",
                f"{vendor}/{version}",
                "vendor/version combination is not supported",
            ),
            ADAPTER_FAILURES,
        )
    query = dict(parse_qsl(payload.query, keep_blank_values=True)) if payload.query else {}
    if not payload.body:
        if not query:
            raise ProtocolViolation(
                "empty body and empty querystring: not a valid tracker protocol event",
                _expectation("body", None, "empty body: not a valid tracker protocol event"),
            )
        return [query]
    events = decode_post_body(payload.body, payload.content_type, resolver)
    if query:  # query-string parameters on a POST override every event's own
        for event in events:
            event.update(query)
    return events


def decode_post_body(
    body: bytes, content_type: str | None, resolver: Resolver
) -> list[dict[str, str]]:
    """The events of a tp2 POST body; raises ProtocolViolation for the whole batch."""
    if content_type not in ACCEPTED_CONTENT_TYPES:
        raise ProtocolViolation(
            f"content type {content_type!r} is not accepted: use application/json",
            _expectation(
                "contentType",
                content_type,
                "expected one of " + ", ".join(sorted(ACCEPTED_CONTENT_TYPES)),
            ),
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolViolation(
            f"body is not UTF-8 text: {exc}",
            {"error": f"body is not UTF-8: {exc}"},
            COLLECTOR_PAYLOAD_FORMAT_VIOLATION,
        ) from exc
    fast = _fast_body(text, resolver)
    if fast is not None:
        return fast
    document = _parse_json("body", text, ProtocolViolation, check_depth=False)
    schema = _self_describing_schema("body", document, ProtocolViolation)
    criterion = f"iglu:{SNOWPLOW}/payload_data/jsonschema/1-0-*"
    if not schema.startswith(criterion[:-1]):
        raise ProtocolViolation(
            f"body: schema {schema} does not match {criterion}",
            {"schemaKey": schema, "schemaCriterion": criterion},
        )
    data = document["data"]
    if isinstance(data, list) and not data:
        raise ProtocolViolation(
            "empty list of events", _expectation("data", "[]", "empty list of events")
        )
    problem = _iglu_problem(schema, data, resolver)
    if problem is not None:
        if _too_deep(document):  # payload_data is 3 levels deep: only a bad body can be deeper
            _parse_json("body", text, ProtocolViolation)
        raise ProtocolViolation(f"body: {problem[0]}", problem[1])
    return data  # type: ignore[no-any-return]  # validated: a list of objects of strings


def _load_orjson() -> Callable[[str], Any] | None:
    try:
        import orjson
    except ImportError:  # pragma: no cover - orjson is in the fast and all extras
        return None
    return orjson.loads


_orjson_loads = _load_orjson()

_PAYLOAD_DATA_PREFIX = f"iglu:{SNOWPLOW}/payload_data/jsonschema/1-0-"


def _fast_body(text: str, resolver: Resolver) -> list[dict[str, str]] | None:
    """The events of a valid tp2 body parsed with orjson (the ``fast`` extra), else None.

    Only a body that passes every check is taken from this path; anything else
    goes through the stdlib path, which makes the errors. That keeps the results
    exactly the stdlib's: where orjson parses differently (a number beyond 64
    bits becomes a float), the body is invalid anyway, because payload_data
    allows nothing but strings, and a key beside ``schema`` and ``data`` is never read.
    """
    if _orjson_loads is None:
        return None
    try:
        document = _orjson_loads(text)
    except ValueError:
        return None
    if type(document) is not dict or "data" not in document:
        return None
    schema = document.get("schema")
    data = document["data"]
    if (
        type(schema) is not str
        or not schema.startswith(_PAYLOAD_DATA_PREFIX)
        or type(data) is not list
        or not data
        or not _is_iglu_uri(schema)
    ):
        return None
    try:
        # Objects of strings whatever the schema says (a user's payload_data could allow
        # more), so that orjson's numbers never get through: TypeError otherwise.
        "".join(chain.from_iterable(map(dict.values, data)))
        if resolver.reports(schema, data):
            return None
    except (SchemaNotFound, ValueError, TypeError):
        return None
    return data


# -- stage 3: each event -------------------------------------------------------------------------


def check_event(
    method: str, raw: dict[str, str], resolver: Resolver, payload: CollectorPayload | None = None
) -> Event:
    """Decode one event's JSON fields and check it as Enrich would."""
    event = Event(method, raw, payload=payload)
    too_long = _check_atomic(event)
    _check_unstruct(event, resolver)
    _check_contexts(event, resolver)
    if event.bad_row_type is None and raw.get("e") in ("ad", "ue"):
        _check_enrichments(event)
    if too_long:
        _check_lengths(event, too_long)
    return event


def check_events(
    method: str,
    raws: list[dict[str, str]],
    resolver: Resolver,
    payload: CollectorPayload | None = None,
) -> list[Event]:
    """``check_event`` for every event of one request, with the same results, faster.

    The atomic field checks run column by column over the whole batch, in C loops
    (``_atomic_fine``); only if some value fails them does each event get the
    per-event check that reports it. After that, each event only needs its
    self-describing event and entities checked, and those are memoized.
    """
    if len(raws) < _BATCH_MIN or not _atomic_fine(raws):
        return [check_event(method, raw, resolver, payload) for raw in raws]
    events = []
    memo = resolver.memo
    for raw in raws:
        event = Event(method, raw, None, None, None, None, None, payload)
        if "ue_px" in raw or "ue_pr" in raw:
            _check_unstruct(event, resolver)
        cx = raw.get("cx")
        found = memo.get(("cx", cx)) if cx is not None else None
        if found is not None:  # the entities seen before: _check_contexts, inlined
            _apply_contexts(event, found)
        elif cx is not None or "co" in raw:
            _check_contexts(event, resolver)
        if event.bad_row_type is None and raw.get("e") in ("ad", "ue"):
            _check_enrichments(event)
        events.append(event)
    return events
