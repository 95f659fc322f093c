"""The collector's fast paths give exactly the results of the reference paths they shortcut.

Batch validation (``check_events``) against ``check_event`` per event; the orjson body
parser against the standard library's; the direct base64url decoder against
``base64.b64decode``; the SQLite store's inlined insert against ``record_fields``.
"""

from __future__ import annotations

import base64
import binascii
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snowplow_tracker.collector import validate
from snowplow_tracker.collector.iglu import Resolver
from snowplow_tracker.collector.store import SqliteStore, record_fields
from snowplow_tracker.collector.validate import (
    CollectorPayload,
    Event,
    ProtocolViolation,
    check_event,
    check_events,
    decode_post_body,
)

PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
JSON_TYPE = "application/json; charset=utf-8"
PAGE_ID = "8f2d8f6e-2a52-4c5c-9d43-0c6e5e1b9a77"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RESOLVER = Resolver()


def b64(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def good_event(index: int) -> dict[str, str]:
    event = {
        "e": "pv", "p": "srv", "tv": "py-0.6.0", "tna": "t", "aid": "shop",
        "eid": str(uuid.UUID(int=index + 1)), "dtm": str(1_700_000_000_000 + index),
        "stm": str(1_700_000_000_000 + index), "url": f"http://x/{index}", "res": "1920x1080",
        "cx": b64({"schema": CONTEXTS, "data": [{"schema": WEB_PAGE, "data": {"id": PAGE_ID}}]}),
    }  # fmt: skip
    if index % 3 == 1:
        event.update(e="se", se_ca="c", se_ac="a", se_va="7.99", pp_mix="0", cookie="1")
    elif index % 3 == 2:
        click = {"schema": LINK_CLICK, "data": {"targetUrl": f"http://x/{index}"}}
        event.update(e="ue", ue_px=b64({"schema": UNSTRUCT, "data": click}))
    return event


# Values that sit on the edges of the atomic checks: as per-event parsers see them, and as
# the stricter batch checks do (bounded digit counts, signs, leading zeros, other scripts).
EDGE_VALUES = [
    "", "0", "1", "-1", "+1", "00000000000000000000000000001", "2147483647", "2147483648",
    "-2147483648", "-2147483649", "253402300799999", "253402300800000", "-62167219200000",
    "-62167219200001", "99999999999999", "1" * 5000, "١٢٣", "1_000", " 1", "1.5", "1e5", ".5",
    "5.", "null", "NaN", "0x10", "1920x1080", "0x0", "999999999x1", "2147483648x1", "1x",
    "x1", "1X1", "٣x1", "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d11",
    "5A0C4EF9-9A43-4B4B-9E2F-2F0A6B3C7D11", "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d1",
    "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d11\n", "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d-1",
    "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7dé1", "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7g11",
    "5a0c4ef99a43-4b4b-9e2f-2f0a6b3c7d11-", "123456789", "1234567890", "12345678901234",
    "123456789012345", "pv", "se", "ue", "ad", "xx", "web", "srv", "tv",
    "a" * 3, "a" * 4, "a" * 12, "a" * 13, "a" * 36, "a" * 37, "a" * 100, "a" * 101, "a" * 128,
    "a" * 129, "a" * 255, "a" * 256, "a" * 1001, "a" * 4097,
]  # fmt: skip
FIELDS = [
    "e", "p", "tv", "eid", "sid", "dtm", "stm", "ttm", "vid", "tid", "ti_qu", "pp_mix",
    "se_va", "ev_va", "tr_tt", "res", "vp", "ds", "cookie", "f_pdf", "tna", "aid", "uid",
    "cd", "tr_cu", "ti_cu", "lang", "url", "page", "se_la", "ua", "ue_pr", "co",
]  # fmt: skip
mutations = st.lists(
    st.tuples(
        st.integers(0, 19),
        st.sampled_from(FIELDS),
        st.sampled_from(EDGE_VALUES) | st.just("<drop>") | st.text(max_size=12),
    ),
    max_size=4,
)


def outcome(event: Event) -> tuple[Any, ...]:
    return (event.valid, event.bad_row_type, event.errors, event.messages,
            event.unstruct_event, event.contexts, event.raw)  # fmt: skip


@SETTINGS
@given(size=st.integers(0, 20), changes=mutations)
def test_batch_checks_give_the_per_event_results(
    size: int, changes: list[tuple[int, str, str]]
) -> None:
    raws = [good_event(index) for index in range(size)]
    for index, name, value in changes:
        if index < size:
            if value == "<drop>":
                raws[index].pop(name, None)
            else:
                raws[index][name] = value
    expected = [check_event("POST", dict(raw), RESOLVER) for raw in raws]
    assert [outcome(e) for e in check_events("POST", raws, RESOLVER)] == [
        outcome(e) for e in expected
    ]


def test_every_edge_value_in_every_field_gives_the_per_event_result() -> None:
    # Exhaustive for one change in a batch: each edge value in each field.
    for name in FIELDS:
        for value in [*EDGE_VALUES, "<drop>"]:
            raws = [good_event(index) for index in range(8)]
            if value == "<drop>":
                raws[3].pop(name, None)
            else:
                raws[3][name] = value
            expected = [outcome(check_event("POST", dict(raw), RESOLVER)) for raw in raws]
            found = [outcome(event) for event in check_events("POST", raws, RESOLVER)]
            assert found == expected, (name, value)


def test_a_batch_of_good_events_takes_the_batch_path() -> None:
    raws = [good_event(index) for index in range(30)]
    assert validate._atomic_fine(raws)
    events = check_events("POST", raws, RESOLVER)
    assert all(e.valid for e in events)
    assert events[2].unstruct_event == {
        "schema": LINK_CLICK, "data": {"targetUrl": "http://x/2"},
    }  # fmt: skip
    assert events[0].contexts == [{"schema": WEB_PAGE, "data": {"id": PAGE_ID}}]
    assert events[0].contexts is not events[1].contexts  # memoized, but a list per event


@pytest.mark.parametrize("value", ["1" * 5000, "-" + "9" * 4400])
def test_a_timestamp_of_thousands_of_digits_is_a_bad_event_not_a_crash(value: str) -> None:
    event = check_event("GET", {"e": "pv", "p": "web", "tv": "js", "dtm": value}, RESOLVER)
    assert event.bad_row_type == "schema_violations"
    assert event.errors[0].startswith("dtm: Not in the expected format: ms since epoch")


# -- the body: orjson against the standard library --------------------------------------------


def parse_body(body: bytes) -> tuple[str, Any]:
    try:
        return "ok", decode_post_body(body, JSON_TYPE, RESOLVER)
    except ProtocolViolation as exc:
        return exc.bad_row_type, (str(exc), exc.messages)


BODIES = [
    b'{"schema": "%s", "data": [{"e": "pv", "tv": "t"}]}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": [{"e": 18446744073709551616}]}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": [{"e": 1e400}]}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": [{"e": NaN}]}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": [{"e": "\\ud800"}]}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": [{"e": "pv"}], "x": 18446744073709551616}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": []}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": {}}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": [["e"]]}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": [{"e": "pv"}]}' % CONTEXTS.encode(),
    b'{"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-9", '
    b'"data": [{"e": "pv"}]}',
    b'{"schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-", "data": []}',
    b'{"schema": "%s", "data": [{"e": "pv"}],}' % PAYLOAD_DATA.encode(),
    b'{"schema": "%s", "data": %s}' % (PAYLOAD_DATA.encode(), b"[" * 50 + b"]" * 50),
    b"[]",
    b"null",
    b'"text"',
]


@pytest.mark.parametrize("body", BODIES)
def test_orjson_parses_bodies_as_the_standard_library_does(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    fast = parse_body(body)
    monkeypatch.setattr(validate, "_orjson_loads", None)
    assert fast == parse_body(body)


json_leaves = (
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=6)
)
events_json = st.lists(
    st.dictionaries(st.sampled_from(["e", "p", "tv", "eid", "xx"]), json_leaves, max_size=4),
    max_size=3,
)


@SETTINGS
@given(data=events_json | json_leaves, extra=json_leaves)
def test_orjson_and_the_standard_library_agree_on_any_body(data: Any, extra: Any) -> None:
    body = json.dumps({"schema": PAYLOAD_DATA, "data": data, "extra": extra}).encode()
    fast = parse_body(body)
    saved = validate._orjson_loads
    validate._orjson_loads = None
    try:
        slow = parse_body(body)
    finally:
        validate._orjson_loads = saved
    assert repr(fast) == repr(slow)  # repr: NaN is not equal to itself


# -- base64url ----------------------------------------------------------------------------------


def reference_b64(padded: str) -> tuple[str, Any]:
    try:
        return "ok", base64.b64decode(padded, altchars=b"-_", validate=True)
    except (binascii.Error, ValueError) as exc:
        return type(exc).__name__, str(exc)


def direct_b64(padded: str) -> tuple[str, Any]:
    try:
        return "ok", validate._b64url_decode(padded)
    except (binascii.Error, ValueError) as exc:
        return type(exc).__name__, str(exc)


@SETTINGS
@given(
    value=st.text(alphabet="ab-_+/=é\n ", max_size=12)
    | st.binary(max_size=12).map(lambda b: base64.urlsafe_b64encode(b).decode())
)
def test_the_direct_base64url_decoder_matches_b64decode(value: str) -> None:
    padded = value + "=" * (-len(value) % 4)
    assert direct_b64(padded) == reference_b64(padded)


# -- the SQLite store ---------------------------------------------------------------------------


def test_sqlite_rows_hold_what_record_fields_says(tmp_path: Path) -> None:
    raws = [good_event(index) for index in range(120)]  # more than one multi-row INSERT
    raws[4]["eid"] = "not-a-uuid"
    raws[5]["e"] = "tr"
    body = json.dumps({"schema": PAYLOAD_DATA, "data": raws}).encode()
    payload = CollectorPayload("POST", "/com.snowplowanalytics.snowplow/tp2", body=body)
    events = check_events("POST", raws, RESOLVER, payload)
    store = SqliteStore(tmp_path / "rows.db")
    store.add(list(events))
    rows = store._db.execute("SELECT good, event_type, schema, app_id FROM records ORDER BY id")
    assert [tuple(row) for row in rows] == [
        (int(good), event_type, schema, app_id)
        for good, event_type, schema, app_id in map(record_fields, events)
    ]
    assert store.counts() == (119, 1)
    store.close()
    reopened = SqliteStore(tmp_path / "rows.db")
    read = list(reversed(reopened.newest_first(True))) + reopened.newest_first(False)
    assert sorted((e.id, e.raw["eid"], e.valid) for e in read if isinstance(e, Event)) == [
        (e.id, e.raw["eid"], e.valid) for e in events
    ]
    reopened.close()


def test_sqlite_drops_the_old_good_index_and_reads_old_files(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    first = SqliteStore(db)
    raws = [good_event(0), good_event(1)]
    body = json.dumps({"schema": PAYLOAD_DATA, "data": raws}).encode()
    payload = CollectorPayload("POST", "/com.snowplowanalytics.snowplow/tp2", body=body)
    first.add(list(check_events("POST", raws, RESOLVER, payload)))
    first.close()
    with sqlite3.connect(db) as connection:  # as an earlier version left it
        connection.execute("CREATE INDEX records_good ON records (good, id)")
    connection.close()
    second = SqliteStore(db)
    indexes = second._db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")
    assert "records_good" not in [row[0] for row in indexes]
    assert [(e.id, e["eid"]) for e in second.newest_first(True)] == [
        (2, raws[1]["eid"]), (1, raws[0]["eid"]),
    ]  # fmt: skip
    second.close()


# -- the hand-made wrapper checks ----------------------------------------------------------------

WRAPPERS = [UNSTRUCT, CONTEXTS]
wrapper_items = st.dictionaries(
    st.sampled_from(["schema", "data", "other"]),
    st.sampled_from([LINK_CLICK, "iglu:a/b/jsonschema/1-0-0\n", "iglu:x", "", None, 5, {}]),
    max_size=3,
)


@SETTINGS
@given(
    uri=st.sampled_from(WRAPPERS),
    instance=wrapper_items | st.lists(wrapper_items, max_size=3) | st.none(),
)
def test_the_wrapper_fast_check_agrees_with_jsonschema(uri: str, instance: Any) -> None:
    compiled = RESOLVER.compiled(validate._parse_key(uri))
    assert compiled._fast is not None and "_wrapper_check" in compiled._fast.__qualname__
    try:
        compiled._fast(instance)
    except ValueError:
        fast_valid = False
    else:
        fast_valid = True
    reference_valid = not list(compiled._full.iter_errors(instance))
    assert fast_valid == reference_valid
