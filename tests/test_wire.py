"""Every event type over GET and POST, base64 on and off, with and without contexts, ASCII and
non-ASCII text, through a real collector on a loopback port: the decoded fields are checked."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

import pytest

from snowplow_tracker import Emitter, Subject, Tracker, __version__
from snowplow_tracker.collector import Collector
from snowplow_tracker.collector.validate import Event
from snowplow_tracker.constants import PAYLOAD_DATA_SCHEMA, POST_CONTENT_TYPE

LINK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
SCREEN = "iglu:com.snowplowanalytics.snowplow/screen_view/jsonschema/1-0-0"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
USER = "iglu:com.example_company/user/jsonschema/2-0-0"
TEXTS = {"ascii": "plain text & more=1+2", "unicode": "Zoë ✓ 日本語 — ñ 🚀"}


def contexts(text: str) -> list[dict[str, Any]]:
    return [
        {"schema": WEB_PAGE, "data": {"id": "0f9b1e5c-3d4a-4c1f-9a7b-6e2d8c4b5a10"}},
        {"schema": USER, "data": {"userType": text}},
    ]


def track_all(t: Tracker, text: str, ctx: list[dict[str, Any]] | None) -> None:
    t.track_page_view(f"http://example.com/{text}", text, "http://ref.example.com/?q=" + text, ctx)
    t.track_struct_event(text, "act " + text, text, text, 13.99, ctx)
    t.track_unstruct_event({"schema": LINK, "data": {"targetUrl": "http://x/" + text}}, ctx)
    t.track_screen_view(text, "screen-1", ctx)
    t.track_ecommerce_transaction(
        "order " + text,
        35,
        text,
        6.12,
        30,
        text,
        text,
        text,
        "GBP",
        [{"sku": "pbz0026", "price": 7.99, "quantity": 2, "name": text, "category": text}],
        ctx,
    )
    t.track_ecommerce_transaction_item("order " + text, "sku-2", 1, 1, text, text, "EUR", ctx)


def by_type(events: list[Event]) -> dict[str, list[Event]]:
    grouped: dict[str, list[Event]] = {}
    for event in events:
        grouped.setdefault(event.raw["e"], []).append(event)
    return grouped


CASES = list(itertools.product(["get", "post"], [True, False], [False, True], sorted(TEXTS)))


@pytest.mark.parametrize(("method", "encode", "with_ctx", "text_kind"), CASES)
def test_event_fields_survive_the_round_trip(
    collector: Collector, method: str, encode: bool, with_ctx: bool, text_kind: str
) -> None:
    text = TEXTS[text_kind]
    ctx = contexts(text) if with_ctx else None
    subject = Subject().set_platform("srv").set_user_id("user " + text).set_lang(text)
    tracker = Tracker(Emitter(collector.endpoint, method=method), subject, "ns", "app", encode)
    before = int(time.time() * 1000)
    track_all(tracker, text, ctx)
    tracker.flush()
    after = int(time.time() * 1000)

    events = collector.events
    assert len(events) == 7
    assert [e.errors for e in events] == [[]] * 7
    assert {e.method for e in events} == {method.upper()}
    for event in events:
        raw = event.raw
        assert raw["tv"] == "py-" + __version__
        assert (raw["tna"], raw["aid"], raw["p"], raw["uid"], raw["lang"]) == (
            "ns",
            "app",
            "srv",
            "user " + text,
            text,
        )
        assert str(uuid.UUID(raw["eid"])) == raw["eid"]
        assert before <= int(raw["dtm"]) <= int(raw["stm"]) <= after
        assert all(isinstance(v, str) for v in raw.values())
        if with_ctx:
            assert ("cx" in raw) is encode and ("co" in raw) is not encode
            assert event.contexts == ctx
        else:
            assert not {"cx", "co"} & set(raw)
    grouped = by_type(events)
    check_page_view(grouped["pv"][0].raw, text)
    check_struct(grouped["se"][0].raw, text)
    check_unstruct(grouped["ue"], text, encode)
    check_transaction(grouped["tr"][0].raw, grouped["ti"], text)


def check_page_view(raw: dict[str, str], text: str) -> None:
    assert raw["url"] == f"http://example.com/{text}"
    assert raw["page"] == text
    assert raw["refr"] == "http://ref.example.com/?q=" + text


def check_struct(raw: dict[str, str], text: str) -> None:
    assert (raw["se_ca"], raw["se_ac"], raw["se_la"], raw["se_pr"], raw["se_va"]) == (
        text,
        "act " + text,
        text,
        text,
        "13.99",
    )


def check_unstruct(events: list[Event], text: str, encode: bool) -> None:
    link, screen = events
    for event in events:
        assert ("ue_px" in event.raw) is encode and ("ue_pr" in event.raw) is not encode
    assert link.unstruct_event == {"schema": LINK, "data": {"targetUrl": "http://x/" + text}}
    assert screen.unstruct_event == {"schema": SCREEN, "data": {"name": text, "id": "screen-1"}}


def check_transaction(tr: dict[str, str], items: list[Event], text: str) -> None:
    assert (tr["tr_id"], tr["tr_tt"], tr["tr_af"], tr["tr_tx"], tr["tr_sh"]) == (
        "order " + text,
        "35",
        text,
        "6.12",
        "30",
    )
    assert (tr["tr_ci"], tr["tr_st"], tr["tr_co"], tr["tr_cu"]) == (text, text, text, "GBP")
    first, second = (item.raw for item in items)
    assert (first["ti_id"], first["ti_sk"], first["ti_pr"], first["ti_qu"]) == (
        "order " + text,
        "pbz0026",
        "7.99",
        "2",
    )
    assert (first["ti_nm"], first["ti_ca"], first["ti_cu"]) == (text, text, "GBP")
    assert first["dtm"] == tr["dtm"]
    assert (second["ti_sk"], second["ti_cu"]) == ("sku-2", "EUR")


def test_post_request_shape(collector: Collector) -> None:
    tracker = Tracker(Emitter(collector.endpoint, method="post"))
    for index in range(3):
        tracker.track_page_view(f"http://x/{index}")
    tracker.flush()
    (request,) = collector.requests
    assert request.path == "/com.snowplowanalytics.snowplow/tp2"
    assert request.headers["content-type"] == POST_CONTENT_TYPE
    body = json.loads(request.body)
    assert body["schema"] == PAYLOAD_DATA_SCHEMA
    assert [e["url"] for e in body["data"]] == ["http://x/0", "http://x/1", "http://x/2"]
    assert all(isinstance(v, str) for e in body["data"] for v in e.values())
    assert len({e["stm"] for e in body["data"]}) == 1


def test_get_requests_go_to_i_in_fifo_order(collector: Collector) -> None:
    tracker = Tracker(Emitter(collector.endpoint, buffer_size=5))
    for index in range(5):
        tracker.track_page_view(f"http://x/{index}")
    assert [r.path for r in collector.requests] == ["/i"] * 5
    assert [e["url"] for e in collector.events] == [f"http://x/{i}" for i in range(5)]


def test_get_query_string_encodes_reserved_characters(collector: Collector) -> None:
    text = "a&b=c?d#e%f+g h/ü"
    Tracker(Emitter(collector.endpoint)).track_page_view("http://x/" + text, text)
    assert collector.events[0]["page"] == text
