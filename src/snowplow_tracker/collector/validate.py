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
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from typing import Any
from urllib.parse import parse_qsl

from .iglu import Resolver, SchemaKey, SchemaNotFound

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
_INT32 = 2**31
_MIN_MS, _MAX_MS = -62_167_219_200_000, 253_402_300_799_999  # years 0 to 9999


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


def _parse_json(
    name: str, text: str, failure: Callable[..., Exception], *, check_depth: bool = True
) -> Any:
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise failure(
            f"{name}: not valid JSON: {str(exc)[:200]}",
            {"field": name, "value": text[:1000], "error": str(exc)[:500]},
        ) from None
    if check_depth and _nesting_bound(text) > MAX_JSON_DEPTH and _too_deep(document):
        raise failure(
            f"{name}: JSON nested deeper than {MAX_JSON_DEPTH} levels",
            {"field": name, "value": text[:1000], "error": "maximum JSON depth exceeded"},
        )
    return document


def _nesting_bound(text: str) -> int:
    # Depth can be no more than the count of brackets: a C-speed test that spares
    # nearly every document the walk below.
    return text.count("{") + text.count("[")


def _too_deep(document: Any) -> bool:
    if not isinstance(document, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _self_describing_schema(name: str, document: Any, failure: Callable[..., Exception]) -> str:
    if not isinstance(document, dict) or "schema" not in document or "data" not in document:
        raise failure(
            f"{name}: not self-describing JSON (needs schema and data)",
            {"json": _clip(document), "error": "INVALID_DATA_PAYLOAD"},
        )
    schema = document["schema"]
    if not _is_iglu_uri(schema):
        raise failure(
            f"{name}: schema {str(schema)[:200]!r} is not an Iglu URI",
            {"json": _clip(document), "error": "INVALID_IGLUURI"},
        ) from None
    return str(schema)


@functools.lru_cache(maxsize=1024)
def _parse_key(uri: str) -> SchemaKey:
    return SchemaKey.parse(uri)


def _is_iglu_uri(uri: Any) -> bool:
    if not isinstance(uri, str):
        return False
    try:
        _parse_key(uri)
    except ValueError:
        return False
    return True


def _clip(document: Any) -> Any:
    # Bad rows keep the offending JSON, but not megabytes of it.
    text = json.dumps(document)
    return document if len(text) <= 2000 else text[:2000]


def _iglu_problem(uri: str, instance: Any, resolver: Resolver) -> tuple[str, dict[str, Any]] | None:
    """None if valid, else (readable error, bad-row IgluError message)."""
    try:
        reports = resolver.reports(uri, instance)
    except SchemaNotFound as exc:
        outcome = "could not be resolved in time" if exc.timed_out else "not found"
        return (
            f"schema {uri} {outcome} (looked in: "
            + ", ".join(h["repository"] for h in exc.lookup_history)
            + ")",
            {
                "schemaKey": uri,
                "error": {"error": "ResolutionError", "lookupHistory": exc.lookup_history},
            },
        )
    if not reports:
        return None
    return (
        "; ".join(str(r) for r in reports[:20]) + f" (against {uri})",
        {
            "schemaKey": uri,
            "error": {"error": "ValidationError", "dataReports": [r.as_json() for r in reports]},
        },
    )


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


def _atomic_error(event: Event, name: str, message: str, keyword: str | None = None) -> None:
    value = event.raw.get(name)
    shown = "" if value is None else f": {value[:200]!r}"
    event.fail(
        SCHEMA_VIOLATIONS,
        f"{name}: {message}{shown}",
        {
            "schemaKey": ATOMIC,
            "error": {
                "error": "ValidationError",
                "dataReports": [
                    {
                        "message": f"{message}{shown}",
                        "path": name,
                        "keyword": keyword,
                        "targets": [],
                    }
                ],
            },
        },
    )


def _is_int(value: str, low: int = -_INT32, high: int = _INT32 - 1) -> bool:
    digits = value[1:] if value[:1] in ("-", "+") else value
    # isascii: int() would also take other scripts' digits, spaces and underscores;
    # the length test: int() refuses more than 4300 digits, and every bound has 19 or fewer.
    return (
        digits.isascii()
        and digits.isdigit()
        and len(digits.lstrip("0")) <= 19
        and low <= int(value) <= high
    )


def _is_ms(value: str) -> bool:
    return _is_int(value, _MIN_MS, _MAX_MS)


_DECIMAL = re.compile(r"[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?")


def _is_decimal(value: str) -> bool:
    # What Java's BigDecimal parses; "null" is how trackers send no value.
    return value == "null" or _DECIMAL.fullmatch(value) is not None


def _is_dimensions(value: str) -> bool:
    width, sep, height = value.partition("x")
    return bool(sep) and width.isdigit() and height.isdigit() and _is_int(width) and _is_int(height)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _is_uuid(value: str) -> bool:
    # Enrich wants a UUID in its canonical lowercase form.
    return _UUID.fullmatch(value) is not None


def _is_flag(value: str) -> bool:
    return value in ("0", "1")


_PARSERS: dict[str, tuple[Callable[[str], bool], str]] = {
    "eid": (_is_uuid, "Not a valid UUID"),
    "sid": (_is_uuid, "Not a valid UUID"),
    "dtm": (_is_ms, "Not in the expected format: ms since epoch"),
    "stm": (_is_ms, "Not in the expected format: ms since epoch"),
    "ttm": (_is_ms, "Not in the expected format: ms since epoch"),
    "vid": (_is_int, "Not a valid integer"),
    "tid": (_is_int, "Not a valid integer"),
    "ti_qu": (_is_int, "Not a valid integer"),
    "pp_mix": (_is_int, "Not a valid integer"),
    "pp_max": (_is_int, "Not a valid integer"),
    "pp_miy": (_is_int, "Not a valid integer"),
    "pp_may": (_is_int, "Not a valid integer"),
    "se_va": (_is_decimal, "Not a valid decimal"),
    "ev_va": (_is_decimal, "Not a valid decimal"),
    "tr_tt": (_is_decimal, "Not a valid decimal"),
    "tr_tx": (_is_decimal, "Not a valid decimal"),
    "tr_sh": (_is_decimal, "Not a valid decimal"),
    "ti_pr": (_is_decimal, "Not a valid decimal"),
    "res": (_is_dimensions, "Does not conform to regex (\\d+)x(\\d+)"),
    "vp": (_is_dimensions, "Does not conform to regex (\\d+)x(\\d+)"),
    "ds": (_is_dimensions, "Does not conform to regex (\\d+)x(\\d+)"),
    "cookie": (_is_flag, "Cannot be converted to Boolean: expected 1 or 0"),
    **{
        name: (_is_flag, "Cannot be converted to Boolean: expected 1 or 0")
        for name in (
            "f_pdf",
            "f_fla",
            "f_java",
            "f_dir",
            "f_qt",
            "f_realp",
            "f_wma",
            "f_gears",
            "f_ag",
        )
    },
}


def _check_atomic(event: Event) -> list[str] | None:
    """Report parse errors; return the fields over their length limit, for phase 3."""
    raw = event.raw
    if raw.get("e") not in EVENT_TYPES or raw.get("p") not in PLATFORMS or not raw.get("tv"):
        _check_required(event)
    failing: list[str] | None = None
    too_long: list[str] | None = None
    rules = _RULES
    for name, value in raw.items():  # one pass, no allocation for a good event
        rule = rules.get(name)
        if rule is not None:
            if rule[0] is not None and not rule[0](value):
                failing = [*(failing or ()), name]
            if len(value) > rule[2]:
                too_long = [*(too_long or ()), name]
    if failing:
        for name in sorted(failing):
            _atomic_error(event, name, _PARSERS[name][1])
    return too_long


def _check_required(event: Event) -> None:
    raw = event.raw
    for name in ("e", "p", "tv"):
        if not raw.get(name):
            _atomic_error(event, name, "Field is required by the tracker protocol")
    kind = raw.get("e")
    if kind and kind not in EVENT_TYPES:
        _atomic_error(event, "e", "Not a valid event type")
    platform = raw.get("p")
    if platform and platform not in PLATFORMS:
        _atomic_error(event, "p", "Not a valid platform")


# Enrich's default validation.atomicFieldsLimits, by tracker parameter.
FIELD_LIMITS: dict[str, int] = {
    "e": 128,
    "p": 255,
    "tv": 100,
    "tna": 128,
    "aid": 255,
    "eid": 36,
    "tz": 255,
    "uid": 255,
    "duid": 128,
    "sid": 128,
    "nuid": 128,
    "tnuid": 128,
    "ip": 128,
    "ua": 1000,
    "lang": 255,
    "cv": 100,
    "url": 10000,
    "page": 2000,
    "refr": 10000,
    "cd": 12,
    "cs": 128,
    "fp": 128,
    "se_ca": 1000,
    "se_ac": 1000,
    "se_la": 4096,
    "se_pr": 1000,
    "tr_id": 255,
    "tr_af": 255,
    "tr_ci": 255,
    "tr_st": 255,
    "tr_co": 255,
    "tr_cu": 3,
    "ti_id": 255,
    "ti_sk": 255,
    "ti_nm": 255,
    "ti_na": 255,
    "ti_ca": 255,
    "ti_cu": 3,
}


_NO_LIMIT = 1 << 62
_RULES: dict[str, tuple[Callable[[str], bool] | None, str, int]] = {
    name: (
        _PARSERS[name][0] if name in _PARSERS else None,
        _PARSERS[name][1] if name in _PARSERS else "",
        FIELD_LIMITS.get(name, _NO_LIMIT),
    )
    for name in _PARSERS.keys() | FIELD_LIMITS.keys()
}


# -- the atomic checks of a whole batch at once ------------------------------------------------
# Each check is as strict as its per-event parser or stricter (bounded digit
# counts, for instance): a batch they pass is one the per-event checks pass.

_BATCH_MIN = 4  # below it, the per-event checks are as cheap
_MS_DIGITS = re.compile(r"[-+]?[0-9]{1,15}")
_INT_DIGITS = re.compile(r"[-+]?[0-9]{1,10}")
_DIMENSIONS = re.compile(r"[0-9]{1,9}x[0-9]{1,9}")  # 9 digits: never above 2**31 - 1
_DECIMAL_OR_NULL = re.compile(f"null|(?:{_DECIMAL.pattern})")


def _all_in_range(
    pattern: re.Pattern[str], low: int, high: int, safe_digits: int
) -> Callable[[list[str]], bool]:
    def check(values: list[str]) -> bool:
        # Unsigned ASCII numbers of at most safe_digits digits are in range: string tests only.
        joined = "".join(values)
        if (
            joined.isascii()
            and joined.isdigit()
            and max(map(len, values)) <= safe_digits
            and min(map(len, values)) > 0
        ):
            return True
        if not all(map(pattern.fullmatch, values)):
            return False
        numbers = list(map(int, values))
        return low <= min(numbers) and max(numbers) <= high

    return check


_HEX = b"0123456789abcdef"


def _all_uuids(values: list[str]) -> bool:
    """``_UUID.fullmatch`` for every value, with string operations over the joined column."""
    count = len(values)
    if max(map(len, values)) != 36 or min(map(len, values)) != 36:
        return False
    joined = "".join(values)  # fixed width: joined[8::36] is every value's 9th character
    if not joined.isascii() or any(joined[at::36] != "-" * count for at in (8, 13, 18, 23)):
        return False
    digits = joined.encode("ascii").translate(None, b"-")  # no other dash anywhere
    return len(digits) == 32 * count and not digits.translate(None, _HEX)


def _all_match(pattern: re.Pattern[str]) -> Callable[[list[str]], bool]:
    return lambda values: all(map(pattern.fullmatch, values))


def _all_flags(values: list[str]) -> bool:
    return set(values) <= {"0", "1"}


_COLUMN_CHECKS: dict[Callable[[str], bool], Callable[[list[str]], bool]] = {
    _is_uuid: _all_uuids,
    _is_ms: _all_in_range(_MS_DIGITS, _MIN_MS, _MAX_MS, 14),  # 10**14 - 1 < _MAX_MS
    _is_int: _all_in_range(_INT_DIGITS, -_INT32, _INT32 - 1, 9),  # 10**9 - 1 < 2**31 - 1
    _is_decimal: _all_match(_DECIMAL_OR_NULL),
    _is_dimensions: _all_match(_DIMENSIONS),
    _is_flag: _all_flags,
}
_COLUMNS: dict[str, tuple[Callable[[list[str]], bool] | None, int]] = {
    name: (_COLUMN_CHECKS[parse] if parse is not None else None, limit)
    for name, (parse, _, limit) in _RULES.items()
}
_EVENT_CODES = frozenset(EVENT_TYPES)


def _atomic_fine(raws: list[dict[str, str]]) -> bool:
    """True only if no event of the batch has an atomic parse error or a field too long."""
    get = dict.get
    if not (
        set(map(get, raws, repeat("e"))) <= _EVENT_CODES
        and set(map(get, raws, repeat("p"))) <= PLATFORMS
        and all(map(get, raws, repeat("tv")))
    ):
        return False
    columns = _COLUMNS
    for name in set().union(*raws):
        column = columns.get(name)
        if column is None:  # a field without a rule: ue_px, cx, ...
            continue
        check, limit = column
        values = [raw[name] for raw in raws if name in raw]
        if check is not None and not check(values):
            return False
        if limit != _NO_LIMIT and max(map(len, values)) > limit:
            return False
    return True


def _check_lengths(event: Event, too_long: list[str]) -> None:
    raw = event.raw
    for name in sorted(too_long):
        limit = FIELD_LIMITS[name]
        report = {"message": f"Field is longer than maximum allowed size {limit}", "path": name,
                  "keyword": "maxLength", "targets": [str(limit)]}  # fmt: skip
        event.fail(
            SCHEMA_VIOLATIONS,
            f"{name}: {len(raw[name])} characters, longer than the maximum {limit}",
            {"schemaKey": ATOMIC, "error": {"error": "ValidationError", "dataReports": [report]}},
        )


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
