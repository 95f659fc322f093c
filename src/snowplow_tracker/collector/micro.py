"""Snowplow Micro's JSON shapes: GoodEvent, BadEvent, bad rows and the ``/micro/good`` filters.

Existing Micro-based test suites read these, so field names and nesting follow
Micro (``model.scala``) and the Snowplow badrows schemas exactly.
"""

from __future__ import annotations

import json
from typing import Any, Union
from urllib.parse import parse_qsl

from .._version import __version__
from .enriched import enrich, event_schema, iso_ms
from .validate import (
    COLLECTOR_PAYLOAD_FORMAT_VIOLATION,
    SIZE_VIOLATION,
    CollectorPayload,
    Event,
    PayloadFailure,
)

Record = Union[Event, PayloadFailure]
BADROWS = "iglu:com.snowplowanalytics.snowplow.badrows"
BAD_ROW_VERSIONS = {
    "schema_violations": "2-0-0",
    "enrichment_failures": "2-0-0",
    "tracker_protocol_violations": "1-0-0",
    "adapter_failures": "1-0-0",
    "size_violation": "1-0-0",
    "collector_payload_format_violation": "1-0-0",
}
PROCESSOR = {"artifact": "snowplow-tracker-collector", "version": __version__}
SOURCE_NAME = "snowplow-tracker-collector"
EVENT_ERROR = "Error while validating the event."
PAYLOAD_ERROR = "Error while extracting event(s) from collector payload and validating it/them."


def _headers(payload: CollectorPayload) -> list[str]:
    return [f"{name}: {value}" for name, value in payload.headers]


def _iso(payload: CollectorPayload) -> str:
    return iso_ms(payload.timestamp * 1000)


def _body_text(payload: CollectorPayload) -> str | None:
    return payload.body.decode("utf-8", "replace") if payload.body else None


def raw_event(event: Event) -> dict[str, Any]:
    """Micro's ``rawEvent``: the event's parameters and the request around it."""
    payload = event.payload or CollectorPayload(event.method, "/i")
    vendor, version = payload.api
    return {
        "api": {"vendor": vendor, "version": version},
        "parameters": dict(event.raw),
        "contentType": payload.content_type,
        **_source_and_context(payload),
    }


def good_event(event: Event) -> dict[str, Any]:
    """Micro's GoodEvent."""
    return {
        "rawEvent": raw_event(event),
        "eventType": event.event_type,
        "schema": event_schema(event),
        "contexts": event.context_schemas,
        "event": enrich(event),
        "incomplete": False,
    }


def collector_payload(payload: CollectorPayload) -> dict[str, Any]:
    """Micro's ``collectorPayload`` of a BadEvent."""
    vendor, version = payload.api
    return {
        "api": {"vendor": vendor, "version": version},
        "querystring": _querystring(payload),
        "contentType": payload.content_type,
        "body": _body_text(payload),
        **_source_and_context(payload),
    }


def _source_and_context(payload: CollectorPayload) -> dict[str, Any]:
    """The ``source`` and ``context`` that rawEvent and collectorPayload share."""
    return {
        "source": {"name": SOURCE_NAME, "encoding": "UTF-8", "hostname": payload.hostname},
        "context": {
            "timestamp": _iso(payload),
            "ipAddress": payload.ip,
            "useragent": payload.useragent,
            "refererUri": payload.referer,
            "headers": _headers(payload),
            "userId": payload.network_userid,
        },
    }


def _request_fields(payload: CollectorPayload) -> dict[str, Any]:
    """Where the request came from, as the bad-row payloads spell it (flat, in this order)."""
    return {
        "hostname": payload.hostname,
        "timestamp": _iso(payload),
        "ipAddress": payload.ip,
        "useragent": payload.useragent,
        "refererUri": payload.referer,
        "headers": _headers(payload),
    }


def _querystring(payload: CollectorPayload) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in parse_qsl(payload.query, keep_blank_values=True)]


def bad_event(record: Record) -> dict[str, Any]:
    """Micro's BadEvent, its second error being the bad row as a JSON string."""
    row = json.dumps(bad_row(record))
    if isinstance(record, Event):
        payload = record.payload or CollectorPayload(record.method, "/i")
        return {
            "collectorPayload": collector_payload(payload),
            "rawEvent": raw_event(record),
            "errors": [EVENT_ERROR, row],
        }
    return {
        "collectorPayload": collector_payload(record.payload),
        "rawEvent": None,
        "errors": [PAYLOAD_ERROR, row],
    }


def bad_row_schema(kind: str) -> str:
    return f"{BADROWS}/{kind}/jsonschema/{BAD_ROW_VERSIONS[kind]}"


def bad_row(record: Record) -> dict[str, Any]:
    """The Snowplow bad row (self-describing JSON) for a bad event or a failed request."""
    kind = record.bad_row_type or "schema_violations"
    data = _event_row(record) if isinstance(record, Event) else _payload_row(record)
    return {"schema": bad_row_schema(kind), "data": {"processor": PROCESSOR, **data}}


def _event_row(event: Event) -> dict[str, Any]:
    payload = event.payload or CollectorPayload(event.method, "/i")
    vendor, version = payload.api
    raw = {
        "vendor": vendor,
        "version": version,
        "parameters": [{"name": k, "value": v} for k, v in event.raw.items()],
        "contentType": payload.content_type,
        "loaderName": "thrift",
        "encoding": "UTF-8",
        **_request_fields(payload),
        "userId": payload.network_userid,
    }
    return {
        "failure": {"timestamp": _iso(payload), "messages": event.messages},
        "payload": {"enriched": _partial_enriched(event), "raw": raw},
    }


def _partial_enriched(event: Event) -> dict[str, Any]:
    # The badrows schemas type these as string/integer/number: flags become 0/1,
    # nested JSON becomes text.
    out: dict[str, Any] = {}
    for name, value in enrich(event).items():
        if isinstance(value, bool):
            value = int(value)
        elif isinstance(value, (dict, list)):
            value = json.dumps(value)
        elif isinstance(value, float) and name not in ("geo_latitude", "geo_longitude"):
            value = repr(value)
        out[name] = value
    return out


def _payload_row(failure: PayloadFailure) -> dict[str, Any]:
    payload = failure.payload
    kind = failure.bad_row_type
    if kind == SIZE_VIOLATION:
        return {
            "failure": {"timestamp": _iso(payload), **failure.messages[0]},
            "payload": payload.body[:10_000].decode("utf-8", "replace"),
        }
    if kind == COLLECTOR_PAYLOAD_FORMAT_VIOLATION:
        return {
            "failure": {
                "timestamp": _iso(payload),
                "loader": "thrift",
                "message": failure.messages[0],
            },
            "payload": payload.body[:10_000].decode("utf-8", "replace"),
        }
    vendor, version = payload.api
    return {
        "failure": {
            "timestamp": _iso(payload),
            "vendor": vendor[:64],
            "version": version[:16],
            "messages": failure.messages,
        },
        "payload": {
            "vendor": vendor[:64],
            "version": version[:16],
            "querystring": _querystring(payload),
            "contentType": payload.content_type,
            "body": _body_text(payload),
            "collector": SOURCE_NAME[:32],
            "encoding": "UTF-8",
            **_request_fields(payload),
            "networkUserId": payload.network_userid,
        },
    }


# -- filters --------------------------------------------------------------------------------------


class FilterError(ValueError):
    """A /micro filter body that is not what Micro accepts."""


def _limit(spec: dict[str, Any]) -> int | None:
    limit = spec.get("limit")
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        raise FilterError("limit must be a non-negative integer")
    return limit


def parse_filter(body: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        spec = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise FilterError(f"the filter is not JSON: {exc}") from None
    if not isinstance(spec, dict):
        raise FilterError("the filter must be a JSON object")
    unknown = set(spec) - allowed
    if unknown:
        raise FilterError(f"unknown filter field(s): {', '.join(sorted(unknown))}")
    return spec


GOOD_FILTER_FIELDS = frozenset({"schema", "contexts", "limit", "event_type"})
BAD_FILTER_FIELDS = frozenset({"vendor", "version", "limit"})


def good_matches(event: Event, spec: dict[str, Any]) -> bool:
    """Micro's /micro/good filter: event_type, schema, and all of contexts (full iglu: URIs)."""
    if spec.get("event_type") is not None and event.event_type != spec["event_type"]:
        return False
    if spec.get("schema") is not None and event_schema(event) != spec["schema"]:
        return False
    contexts = spec.get("contexts")
    if contexts:
        if not isinstance(contexts, list):
            raise FilterError("contexts must be a list of schema URIs")
        present = set(event.context_schemas)
        if not all(c in present for c in contexts):
            return False
    return True


def bad_matches(record: Record, spec: dict[str, Any]) -> bool:
    payload = record.payload
    if payload is None:
        return not spec.get("vendor") and not spec.get("version")
    vendor, version = payload.api
    if spec.get("vendor") is not None and spec["vendor"] != vendor:
        return False
    return spec.get("version") is None or spec["version"] == version


def limited(items: list[Any], spec: dict[str, Any]) -> list[Any]:
    limit = _limit(spec)
    return items if limit is None else items[:limit]
