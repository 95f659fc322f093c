"""Decoding and validating tracker-protocol events, in the stages of the real pipeline."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from typing import Any

from .iglu import Resolver, SchemaKey, SchemaNotFound

EVENT_TYPES = {"pv", "pp", "se", "ue", "tr", "ti", "ev"}
PLATFORMS = {"web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot", "headset"}
ACCEPTED_CONTENT_TYPES = {
    "application/json",
    "application/json; charset=utf-8",
}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_DIMENSIONS = re.compile(r"^\d+x\d+$")
_INT = re.compile(r"^-?\d+$")
_DECIMAL = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


@dataclass
class Event:
    """One event as the collector received it, decoded, with any validation errors."""

    method: str
    raw: dict[str, str]
    errors: list[str] = field(default_factory=list)
    unstruct_event: dict[str, Any] | None = None
    contexts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.errors

    def __getitem__(self, name: str) -> str:
        return self.raw[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)

    @property
    def event_schema(self) -> str | None:
        if self.unstruct_event is None:
            return None
        schema = self.unstruct_event.get("schema")
        return schema if isinstance(schema, str) else None


class ProtocolViolation(ValueError):
    """The whole request breaks the tracker protocol (a tracker_protocol_violations bad row)."""


def decode_post_body(
    body: bytes, content_type: str | None, resolver: Resolver
) -> list[dict[str, str]]:
    """The events of a tp2 POST body; raises ProtocolViolation for the whole batch."""
    if (content_type or "").lower() not in ACCEPTED_CONTENT_TYPES:
        raise ProtocolViolation(f"content type {content_type!r} is not accepted")
    try:
        document = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolViolation(f"body is not JSON: {exc}") from exc
    if not isinstance(document, dict) or set(document) != {"schema", "data"}:
        raise ProtocolViolation("body is not a self-describing JSON")
    schema = document["schema"]
    try:
        key = SchemaKey.parse(schema)
    except ValueError as exc:
        raise ProtocolViolation(str(exc)) from exc
    if (key.vendor, key.name, key.model) != ("com.snowplowanalytics.snowplow", "payload_data", "1"):
        raise ProtocolViolation(f"schema {schema} does not match payload_data 1-*-*")
    data = document["data"]
    if isinstance(data, list) and not data:
        raise ProtocolViolation("empty list of events")
    try:
        errors = resolver.errors(schema, data)
    except SchemaNotFound as exc:
        raise ProtocolViolation(str(exc)) from exc
    if errors:
        raise ProtocolViolation("payload_data: " + "; ".join(errors))
    return list(data)


def check_event(method: str, raw: dict[str, str], resolver: Resolver) -> Event:
    """Decode one event's JSON fields and check its atomic fields and schemas."""
    event = Event(method, raw)
    _check_atomic(event)
    event.unstruct_event = _self_describing(event, ("ue_px", "ue_pr"), "unstruct_event", resolver)
    contexts = _self_describing(event, ("cx", "co"), "contexts", resolver)
    if contexts is not None and isinstance(contexts.get("data"), list):
        event.contexts = contexts["data"]
    if event.unstruct_event is not None:
        _check_entity(event, event.unstruct_event, "event", resolver)
    for index, entity in enumerate(event.contexts):
        _check_entity(event, entity, f"context[{index}]", resolver)
    if raw.get("e") == "ue" and event.unstruct_event is None:
        event.errors.append("e=ue without ue_pr or ue_px")
    return event


def _check_atomic(event: Event) -> None:
    raw = event.raw
    for name in ("e", "p", "tv"):
        if not raw.get(name):
            event.errors.append(f"{name}: required")
    if "e" in raw and raw["e"] not in EVENT_TYPES:
        event.errors.append(f"e: not a valid event type: {raw['e']!r}")
    if "p" in raw and raw["p"] not in PLATFORMS:
        event.errors.append(f"p: not a valid platform: {raw['p']!r}")
    for name in ("eid", "sid"):
        if name in raw and not _UUID.match(raw[name]):
            event.errors.append(f"{name}: not a valid UUID: {raw[name]!r}")
    for name in ("dtm", "stm", "ttm", "vid", "ti_qu", "tid"):
        if name in raw and not _INT.match(raw[name]):
            event.errors.append(f"{name}: not an integer: {raw[name]!r}")
    for name in ("se_va", "tr_tt", "tr_tx", "tr_sh", "ti_pr"):
        if name in raw and not _DECIMAL.match(raw[name]):
            event.errors.append(f"{name}: not a number: {raw[name]!r}")
    for name in ("res", "vp", "ds"):
        if name in raw and not _DIMENSIONS.match(raw[name]):
            event.errors.append(f"{name}: not WIDTHxHEIGHT: {raw[name]!r}")
    for name in ("tr_cu", "ti_cu"):
        if len(raw.get(name, "")) > 3:
            event.errors.append(f"{name}: longer than 3 characters")


def _self_describing(
    event: Event, names: tuple[str, str], wrapper: str, resolver: Resolver
) -> dict[str, Any] | None:
    encoded, plain = names
    if encoded in event.raw:
        text = _b64decode(event, encoded)
    elif plain in event.raw:
        text = event.raw[plain]
    else:
        return None
    if text is None:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        event.errors.append(f"{encoded}/{plain}: not JSON")
        return None
    if not isinstance(document, dict) or not isinstance(document.get("schema"), str):
        event.errors.append(f"{encoded}/{plain}: not self-describing JSON")
        return None
    expected = f"iglu:com.snowplowanalytics.snowplow/{wrapper}/jsonschema/1-0-"
    if not document["schema"].startswith(expected):
        event.errors.append(f"{encoded}/{plain}: schema is not {wrapper} 1-0-*")
        return None
    _add_schema_errors(event, document["schema"], document.get("data"), wrapper, resolver)
    data = document.get("data")
    if wrapper == "unstruct_event":
        return data if isinstance(data, dict) else None
    return document


def _b64decode(event: Event, name: str) -> str | None:
    value = event.raw[name]
    try:
        padded = value + "=" * (-len(value) % 4)
        return base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        event.errors.append(f"{name}: not URL-safe base64 of UTF-8 text")
        return None


def _check_entity(event: Event, entity: Any, label: str, resolver: Resolver) -> None:
    if not isinstance(entity, dict) or not isinstance(entity.get("schema"), str):
        event.errors.append(f"{label}: not self-describing JSON")
        return
    _add_schema_errors(event, entity["schema"], entity.get("data"), label, resolver)


def _add_schema_errors(
    event: Event, uri: str, instance: Any, label: str, resolver: Resolver
) -> None:
    try:
        errors = resolver.errors(uri, instance)
    except SchemaNotFound as exc:
        event.errors.append(f"{label}: {exc}")
        return
    except ValueError as exc:
        event.errors.append(f"{label}: {exc}")
        return
    event.errors.extend(f"{label} {uri}: {message}" for message in errors)
