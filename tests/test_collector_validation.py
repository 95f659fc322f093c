"""One bad input per validation stage: the bad-row type, the message, and a valid bad row."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
import requests

from snowplow_tracker.collector import Collector

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS_0 = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
PARENT = "iglu:com.snowplowanalytics.snowplow/parent_event/jsonschema/1-0-0"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
JSON_TYPE = "application/json; charset=utf-8"
BASE = {"e": "pv", "p": "srv", "tv": "py-0.6.0", "eid": "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d11"}


def event(**fields: str) -> dict[str, str]:
    merged = {**BASE, **fields}
    return {k: v for k, v in merged.items() if v != "<drop>"}


def ue(data: Any, schema: str = UNSTRUCT) -> str:
    return json.dumps({"schema": schema, "data": data})


def post_body(events: Any, schema: str = PAYLOAD_DATA) -> bytes:
    return json.dumps({"schema": schema, "data": events}).encode()


@dataclass
class Case:
    id: str
    expected_type: str
    message: str  # a part of the readable error
    method: str = "GET"
    path: str = "/i"
    params: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    content_type: str | None = JSON_TYPE


CASES = [
    # The collector itself.
    Case("over maxPayloadSize", "size_violation", "more than the 1048576 allowed", "POST", TP2,
         body=post_body([event(page="x" * 1_100_000)])),
    Case("body not UTF-8", "collector_payload_format_violation", "not UTF-8 text", "POST", TP2,
         body=b'{"schema": "\xff\xfe"}'),
    # The adapter: the whole request fails.
    Case("tp1 without a query string", "adapter_failures", "empty querystring"),
    Case("unknown vendor/version", "adapter_failures",
         "vendor/version combination com.acme/v9 is not supported", "POST", "/com.acme/v9",
         body=b"{}"),
    Case("tp2 with nothing in it", "tracker_protocol_violations", "empty body and empty query",
         "POST", TP2),
    Case("no content type", "tracker_protocol_violations", "content type None is not accepted",
         "POST", TP2, body=post_body([event()]), content_type=None),
    Case("wrong content type", "tracker_protocol_violations", "'text/plain' is not accepted",
         "POST", TP2, body=post_body([event()]), content_type="text/plain"),
    Case("body not JSON", "tracker_protocol_violations", "body: not valid JSON", "POST", TP2,
         body=b"{nope"),
    Case("body not self-describing", "tracker_protocol_violations",
         "body: not self-describing JSON", "POST", TP2, body=b'[{"e": "pv"}]'),
    Case("body schema not an Iglu URI", "tracker_protocol_violations", "is not an Iglu URI",
         "POST", TP2, body=post_body([event()], schema="payload_data")),
    Case("body schema criterion mismatch", "tracker_protocol_violations",
         "does not match iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-*",
         "POST", TP2, body=post_body([event()], schema=CONTEXTS)),
    Case("payload_data version unknown", "tracker_protocol_violations",
         "payload_data/jsonschema/1-0-9 not found", "POST", TP2,
         body=post_body([event()], schema=PAYLOAD_DATA[:-1] + "9")),
    Case("empty list of events", "tracker_protocol_violations", "empty list of events", "POST",
         TP2, body=post_body([])),
    Case("non-string value", "tracker_protocol_violations", "$[0].dtm: 5 is not of type 'string'",
         "POST", TP2, body=post_body([{**event(), "dtm": 5}])),
    Case("null value", "tracker_protocol_violations", "None is not of type 'string'", "POST",
         TP2, body=post_body([{**event(), "aid": None}])),
    Case("unknown key in payload_data", "tracker_protocol_violations",
         "Additional properties are not allowed ('color' was unexpected)", "POST", TP2,
         body=post_body([event(color="red")])),
    Case("stm with payload_data 1-0-0", "tracker_protocol_violations", "('stm' was unexpected)",
         "POST", TP2, body=post_body([event(stm="1700000000000")], PAYLOAD_DATA[:-1] + "0")),
    # Enrichment phase 1: atomic fields.
    Case("missing event type", "schema_violations", "e: Field is required",
         params=event(e="<drop>")),
    Case("bad event type", "schema_violations", "e: Not a valid event type: 'zz'",
         params=event(e="zz")),
    Case("bad platform", "schema_violations", "p: Not a valid platform: 'phone'",
         params=event(p="phone")),
    Case("event id not a UUID", "schema_violations", "eid: Not a valid UUID",
         params=event(eid="123")),
    Case("event id upper case", "schema_violations", "eid: Not a valid UUID",
         params=event(eid=BASE["eid"].upper())),
    Case("session id not a UUID", "schema_violations", "sid: Not a valid UUID",
         params=event(sid="s-1")),
    Case("dtm not ms", "schema_violations", "dtm: Not in the expected format: ms since epoch",
         params=event(dtm="2024-01-01")),
    Case("dtm after year 9999", "schema_violations", "dtm: Not in the expected format",
         params=event(dtm="999999999999999999")),
    Case("resolution not WxH", "schema_violations", "res: Does not conform to regex",
         params=event(res="1920*1080")),
    Case("viewport too big for an int", "schema_violations", "vp: Does not conform",
         params=event(vp="99999999999x1")),
    Case("cookie flag", "schema_violations", "cookie: Cannot be converted to Boolean",
         params=event(cookie="yes")),
    Case("session index not an int", "schema_violations", "vid: Not a valid integer",
         params=event(vid="1.5")),
    Case("quantity with underscores", "schema_violations", "ti_qu: Not a valid integer",
         params=event(e="ti", ti_qu="1_000")),
    Case("value not a decimal", "schema_violations", "se_va: Not a valid decimal",
         params=event(e="se", se_va="lots")),
    # Enrichment phase 1: self-describing event and entities.
    Case("ue_pr not JSON", "schema_violations", "ue_pr: not valid JSON",
         params=event(e="ue", ue_pr="{")),
    Case("ue_px not base64", "schema_violations", "ue_px: not URL-safe base64",
         params=event(e="ue", ue_px="***")),
    Case("ue_pr not self-describing", "schema_violations", "ue_pr: not self-describing JSON",
         params=event(e="ue", ue_pr='{"targetUrl": "x"}')),
    Case("ue_pr wrong wrapper", "schema_violations",
         "does not match iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-*",
         params=event(e="ue", ue_pr=ue({}, CONTEXTS))),
    Case("unknown event schema", "schema_violations",
         "schema iglu:com.acme/thing/jsonschema/1-0-0 not found",
         params=event(e="ue", ue_pr=ue({"schema": "iglu:com.acme/thing/jsonschema/1-0-0",
                                        "data": {}}))),
    Case("event data invalid", "schema_violations",
         "$: 'targetUrl' is a required property",
         params=event(e="ue", ue_pr=ue({"schema": LINK_CLICK, "data": {"elementId": "a"}}))),
    Case("entity pattern", "schema_violations", "$.id: 'page-1' does not match",
         params=event(cx=base64.urlsafe_b64encode(
             ue([{"schema": WEB_PAGE, "data": {"id": "page-1"}}], CONTEXTS).encode()
         ).decode().rstrip("="))),
    Case("entity uuid format", "schema_violations", "$.parentEventId: 'p-1' is not a 'uuid'",
         params=event(co=ue([{"schema": PARENT, "data": {"parentEventId": "p-1"}}], CONTEXTS))),
    Case("contexts 1-0-0 empty", "schema_violations", "[] should be non-empty",
         params=event(co=ue([], CONTEXTS_0))),
    Case("entity not self-describing", "schema_violations", "$[0]: 'schema' is a required",
         params=event(co=ue([{"id": "x"}], CONTEXTS))),
    Case("JSON too deep", "schema_violations", "ue_pr: JSON nested deeper than 40 levels",
         params=event(e="ue", ue_pr="[" * 41 + "]" * 41)),
    # Enrichment phase 2.
    Case("legacy ad impression", "enrichment_failures", "legacy ad_impression event (e=ad)",
         params=event(e="ad")),
    Case("ue without an event", "enrichment_failures", "e=ue) without ue_pr or ue_px",
         params=event(e="ue")),
    # Enrichment phase 3: atomic field lengths.
    Case("currency too long", "schema_violations",
         "tr_cu: 4 characters, longer than the maximum 3", params=event(e="tr", tr_cu="EURO")),
    Case("app id too long", "schema_violations", "aid: 256 characters, longer than the maximum",
         "POST", TP2, body=post_body([event(aid="a" * 256)])),
]  # fmt: skip


@pytest.fixture(scope="module")
def collector() -> Any:
    with Collector() as running:
        yield running


def send(collector: Collector, case: Case) -> requests.Response:
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    url = f"{collector.url}{case.path}"
    if case.params:
        url += "?" + urlencode(case.params)
    return requests.request(case.method, url, data=case.body, headers=headers, timeout=10)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_each_stage_gives_its_bad_row(collector: Collector, case: Case) -> None:
    collector.reset()
    response = send(collector, case)
    # The collector answers 200 whatever the content: validation is downstream.
    assert response.status_code == 200

    bad_rows = collector.bad_rows()
    assert len(bad_rows) == 1, bad_rows
    record = bad_rows[0]
    assert record.bad_row_type == case.expected_type
    assert any(case.message in error for error in record.errors), record.errors
    assert collector.good() == []

    micro_bad = requests.get(f"{collector.url}/micro/bad", timeout=5).json()
    assert len(micro_bad) == 1
    row = json.loads(micro_bad[0]["errors"][1])
    assert row["schema"].split("/")[1] == case.expected_type
    # The bad row is valid against Snowplow's own badrows schema.
    assert collector.resolver.errors(row["schema"], row["data"]) == []


def test_a_good_event_passes_every_stage(collector: Collector) -> None:
    collector.reset()
    context = ue([{"schema": WEB_PAGE, "data": {"id": BASE["eid"]}}], CONTEXTS_0)
    params = event(
        e="ue", ue_pr=ue({"schema": LINK_CLICK, "data": {"targetUrl": "http://x.example"}}),
        co=context, res="1920x1080", vp="10x10", ds="1x1", cookie="1", dtm="1700000000000",
        stm="1700000000100", ttm="1700000000000", vid="3", sid=BASE["eid"], se_va="null",
    )  # fmt: skip
    case = Case("good", "", "", params=params)
    assert send(collector, case).status_code == 200
    post = Case("good post", "", "", "POST", TP2, body=post_body([params, event()]))
    assert send(collector, post).status_code == 200
    assert collector.bad_rows() == []
    assert len(collector.good()) == 3


def test_an_invalid_event_does_not_spoil_its_batch(collector: Collector) -> None:
    collector.reset()
    case = Case("batch", "", "", "POST", TP2, body=post_body([event(), event(e="zz"), event()]))
    send(collector, case)
    assert [e.valid for e in collector.events] == [True, False, True]
    assert collector.bad()[0].bad_row_type == "schema_violations"


def test_query_parameters_on_a_post_override_every_event(collector: Collector) -> None:
    collector.reset()
    case = Case("override", "", "", "POST", TP2, {"aid": "from-query"},
                body=post_body([event(aid="a"), event(aid="b")]))  # fmt: skip
    send(collector, case)
    assert [e["aid"] for e in collector.good()] == ["from-query", "from-query"]
