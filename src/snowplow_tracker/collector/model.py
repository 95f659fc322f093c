"""What the collector receives and what validation makes of it.

A request (``CollectorPayload``), the events decoded from it (``Event``), and the
bad rows for a whole request (``ProtocolViolation``, ``PayloadFailure``), with the
names of the bad row types and the tracker protocol's fixed values. The stages
that make them are described in ``validate``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

TRACKER_PROTOCOL_VIOLATIONS = "tracker_protocol_violations"
ADAPTER_FAILURES = "adapter_failures"
SCHEMA_VIOLATIONS = "schema_violations"
ENRICHMENT_FAILURES = "enrichment_failures"
SIZE_VIOLATION = "size_violation"
COLLECTOR_PAYLOAD_FORMAT_VIOLATION = "collector_payload_format_violation"

SNOWPLOW = "com.snowplowanalytics.snowplow"
ATOMIC = "iglu:com.snowplowanalytics.snowplow/atomic/jsonschema/1-0-0"
MAX_PAYLOAD_SIZE = 1_048_576  # networking.maxPayloadSize: above it, a size_violation
MAX_JSON_DEPTH = 40
TP1_PATHS = frozenset({"/i", "/ice.png", "/com.snowplowanalytics.snowplow/tp1"})
TP2_PATH = "/com.snowplowanalytics.snowplow/tp2"
ACCEPTED_CONTENT_TYPES = frozenset(
    {"application/json", "application/json; charset=utf-8", "application/json; charset=UTF-8"}
)
EVENT_TYPES = {
    "pv": "page_view",
    "pp": "page_ping",
    "se": "struct",
    "ev": "struct",
    "ue": "unstruct",
    "tr": "transaction",
    "ti": "transaction_item",
    "ad": "ad_impression",
}
PLATFORMS = frozenset({"web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot", "headset"})


@dataclass(eq=False)
class CollectorPayload:
    """One request as the collector received it (Snowplow's CollectorPayload)."""

    method: str
    path: str
    query: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    content_type: str | None = None
    timestamp: float = field(default_factory=time.time)
    ip: str | None = None
    useragent: str | None = None
    referer: str | None = None
    network_userid: str | None = None
    hostname: str | None = None

    @property
    def api(self) -> tuple[str, str]:
        """The adapter's (vendor, version), as Enrich names them."""
        if self.path in ("/i", "/ice.png"):
            return SNOWPLOW, "tp1"
        vendor, _, version = self.path.strip("/").partition("/")
        return vendor, version


class Event:
    """One event as the collector received it, decoded, with any validation errors.

    A plain slotted class rather than a dataclass, with its lists made only when
    needed: one is made per event, and allocations are most of the cost.
    ``errors``, ``contexts`` and ``messages`` are read-only views for a valid event.
    """

    __slots__ = (
        "_contexts", "_errors", "_messages", "bad_row_type", "id", "method", "payload", "raw",
        "unstruct_event",
    )  # fmt: skip

    def __init__(
        self,
        method: str,
        raw: dict[str, str],
        errors: list[str] | None = None,
        unstruct_event: dict[str, Any] | None = None,
        contexts: list[dict[str, Any]] | None = None,
        bad_row_type: str | None = None,
        messages: list[dict[str, Any]] | None = None,
        payload: CollectorPayload | None = None,
        id: int = 0,
    ) -> None:
        self.method = method
        self.raw = raw
        self._errors = errors or None
        self.unstruct_event = unstruct_event
        self._contexts = contexts or None
        self.bad_row_type = bad_row_type
        self._messages = messages or None
        self.payload = payload
        self.id = id

    @property
    def errors(self) -> list[str]:
        """Readable validation errors (empty if the event is valid)."""
        return self._errors if self._errors is not None else []

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The errors as the messages of a Snowplow bad row."""
        return self._messages if self._messages is not None else []

    @property
    def contexts(self) -> list[dict[str, Any]]:
        """The entities (context) sent with the event."""
        return self._contexts if self._contexts is not None else []

    @contexts.setter
    def contexts(self, value: list[dict[str, Any]]) -> None:
        self._contexts = value or None

    def __repr__(self) -> str:
        state = "valid" if self.valid else f"{self.bad_row_type}: {self.errors}"
        return f"Event({self.method} e={self.raw.get('e')!r} {state})"

    @property
    def valid(self) -> bool:
        return self._errors is None

    def __getitem__(self, name: str) -> str:
        return self.raw[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)

    @property
    def event_type(self) -> str | None:
        """The enriched event name: page_view, struct, unstruct, transaction..."""
        return EVENT_TYPES.get(self.raw.get("e", ""))

    @property
    def event_schema(self) -> str | None:
        if self.unstruct_event is None:
            return None
        schema = self.unstruct_event.get("schema")
        return schema if isinstance(schema, str) else None

    @property
    def context_schemas(self) -> list[str]:
        return [c["schema"] for c in self.contexts if isinstance(c.get("schema"), str)]

    def fail(self, kind: str, error: str, message: dict[str, Any]) -> None:
        # A schema violation outranks an enrichment failure, as in Enrich's createBadRow.
        if self.bad_row_type is None or kind == SCHEMA_VIOLATIONS:
            self.bad_row_type = kind
        if self._errors is None:
            self._errors, self._messages = [], []
        assert self._messages is not None
        self._errors.append(error)
        self._messages.append(message)


class ProtocolViolation(ValueError):
    """The whole request fails before any event exists: one bad row for all its events."""

    def __init__(
        self,
        message: str,
        structured: dict[str, Any] | None = None,
        bad_row_type: str = TRACKER_PROTOCOL_VIOLATIONS,
    ) -> None:
        super().__init__(message)
        self.bad_row_type = bad_row_type
        self.messages = [structured or {"field": "payload", "value": None, "expectation": message}]


@dataclass(eq=False)
class PayloadFailure:
    """A bad row for a whole request (tracker protocol, adapter, size, format)."""

    bad_row_type: str
    errors: list[str]
    messages: list[dict[str, Any]]
    payload: CollectorPayload
    id: int = 0
    valid = False

    @property
    def method(self) -> str:
        return self.payload.method


def _expectation(name: str, value: str | None, expectation: str) -> dict[str, Any]:
    return {"field": name, "value": value, "expectation": expectation}
