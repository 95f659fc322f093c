"""The /micro API answers in Snowplow Micro's JSON shapes (spec: protocol.md section 3.2)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from snowplow_tracker import Emitter, Tracker
from snowplow_tracker.collector import Collector
from snowplow_tracker.collector.enriched import FIELDS

WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
PAGE_ID = "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d11"


@pytest.fixture(scope="module")
def collector() -> Any:
    with Collector() as running:
        tracker = Tracker(Emitter(running.endpoint, method="post"), namespace="ns", app_id="shop")
        tracker.track_page_view("http://x.example/", context=[
            {"schema": WEB_PAGE, "data": {"id": PAGE_ID}}
        ])  # fmt: skip
        tracker.track_unstruct_event({"schema": LINK_CLICK, "data": {"targetUrl": "http://y"}})
        tracker.track_struct_event("c", "a")
        tracker.flush()
        requests.get(f"{running.url}/i?e=zz&p=srv&tv=t", timeout=5)  # a bad event
        requests.post(f"{running.url}/com.snowplowanalytics.snowplow/tp2", data=b"x", timeout=5)
        yield running


def get(collector: Collector, path: str) -> Any:
    response = requests.get(f"{collector.url}{path}", timeout=5)
    assert response.status_code == 200, response.text
    return response.json()


def post(collector: Collector, path: str, body: Any) -> requests.Response:
    return requests.post(f"{collector.url}{path}", data=json.dumps(body), timeout=5)


def test_all_counts_good_and_bad(collector: Collector) -> None:
    assert get(collector, "/micro/all") == {"total": 5, "good": 3, "bad": 2}
    assert post(collector, "/micro/all", {}).json() == {"total": 5, "good": 3, "bad": 2}


def test_good_event_shape(collector: Collector) -> None:
    good = get(collector, "/micro/good")
    assert len(good) == 3
    page_view = good[-1]  # newest first
    assert set(page_view) == {"rawEvent", "eventType", "schema", "contexts", "event", "incomplete"}
    assert page_view["eventType"] == "page_view"
    assert page_view["schema"] == "iglu:com.snowplowanalytics.snowplow/page_view/jsonschema/1-0-0"
    assert page_view["contexts"] == [WEB_PAGE]
    assert page_view["incomplete"] is False
    raw = page_view["rawEvent"]
    assert set(raw) == {"api", "parameters", "contentType", "source", "context"}
    assert raw["api"] == {"vendor": "com.snowplowanalytics.snowplow", "version": "tp2"}
    assert raw["parameters"]["e"] == "pv"
    assert all(isinstance(v, str) for v in raw["parameters"].values())
    assert set(raw["source"]) == {"name", "encoding", "hostname"}
    assert set(raw["context"]) == {
        "timestamp", "ipAddress", "useragent", "refererUri", "headers", "userId",
    }  # fmt: skip
    assert all(isinstance(h, str) and ": " in h for h in raw["context"]["headers"])
    event = page_view["event"]
    assert list(event) == FIELDS
    assert len(FIELDS) == 131
    assert event["contexts"] == {
        "schema": "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
        "data": [{"schema": WEB_PAGE, "data": {"id": PAGE_ID}}],
    }
    assert event["event_vendor"] == "com.snowplowanalytics.snowplow"
    assert event["collector_tstamp"].endswith("Z")
    unstruct = next(g for g in good if g["eventType"] == "unstruct")
    assert unstruct["schema"] == LINK_CLICK
    assert unstruct["event"]["unstruct_event"] == {
        "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
        "data": {"schema": LINK_CLICK, "data": {"targetUrl": "http://y"}},
    }
    assert (unstruct["event"]["event_name"], unstruct["event"]["event_version"]) == (
        "link_click", "1-0-1",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "types"),
    [
        ({}, ["struct", "unstruct", "page_view"]),
        ({"event_type": "struct"}, ["struct"]),
        ({"schema": LINK_CLICK}, ["unstruct"]),
        ({"contexts": [WEB_PAGE]}, ["page_view"]),
        ({"contexts": [WEB_PAGE[5:]]}, []),  # Micro compares full iglu: URIs
        ({"limit": 1}, ["struct"]),
        ({"event_type": "page_view", "limit": 5}, ["page_view"]),
    ],
)
def test_good_filters(collector: Collector, spec: dict[str, Any], types: list[str]) -> None:
    response = post(collector, "/micro/good", spec)
    assert [g["eventType"] for g in response.json()] == types


def test_bad_event_shapes(collector: Collector) -> None:
    bad = get(collector, "/micro/bad")
    assert len(bad) == 2
    payload_failure, bad_event = bad  # newest first
    for item in bad:
        assert set(item) == {"collectorPayload", "rawEvent", "errors"}
        assert set(item["collectorPayload"]) == {
            "api", "querystring", "contentType", "body", "source", "context",
        }  # fmt: skip
        assert len(item["errors"]) == 2
        assert json.loads(item["errors"][1])["data"]["processor"]["artifact"]
    assert payload_failure["rawEvent"] is None
    assert payload_failure["errors"][0] == (
        "Error while extracting event(s) from collector payload and validating it/them."
    )
    assert payload_failure["collectorPayload"]["body"] == "x"
    assert bad_event["errors"][0] == "Error while validating the event."
    assert bad_event["rawEvent"]["parameters"]["e"] == "zz"
    assert bad_event["collectorPayload"]["querystring"][0] == {"name": "e", "value": "zz"}
    assert bad_event["collectorPayload"]["api"]["version"] == "tp1"


def test_bad_filters(collector: Collector) -> None:
    tp1 = post(collector, "/micro/bad", {"vendor": "com.snowplowanalytics.snowplow",
                                         "version": "tp1"}).json()  # fmt: skip
    assert [b["rawEvent"]["parameters"]["e"] for b in tp1] == ["zz"]
    assert len(post(collector, "/micro/bad", {"limit": 1}).json()) == 1
    assert post(collector, "/micro/bad", {"vendor": "com.acme"}).json() == []


@pytest.mark.parametrize(
    "body", [{"limit": -1}, {"limit": "2"}, {"colour": "red"}, [1], "not json"]
)
def test_bad_filter_bodies_get_400(collector: Collector, body: Any) -> None:
    data = body if isinstance(body, str) else json.dumps(body)
    response = requests.post(f"{collector.url}/micro/good", data=data, timeout=5)
    assert response.status_code == 400
    assert "error" in response.json()


def test_iglu_lookup(collector: Collector) -> None:
    schema = get(
        collector, "/micro/iglu/com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
    )
    assert schema["self"]["name"] == "link_click"
    missing = requests.get(f"{collector.url}/micro/iglu/com.acme/x/jsonschema/1-0-0", timeout=5)
    assert missing.status_code == 404
    (repository,) = missing.json()["value"].values()
    assert repository["errors"] == [{"error": "NotFound"}]
    assert repository["attempts"] == 1
    assert repository["lastAttempt"].endswith("Z")
    assert requests.get(f"{collector.url}/micro/iglu/nope", timeout=5).status_code == 400


def test_unknown_micro_endpoint_lists_the_endpoints(collector: Collector) -> None:
    response = requests.get(f"{collector.url}/micro/nope", timeout=5)
    assert response.status_code == 404
    assert "/micro/good" in response.json()["endpoints"]


def test_micro_cors_only_for_its_own_and_allowed_origins(collector: Collector) -> None:
    foreign = {"Origin": "http://localhost:3000"}
    refused = requests.get(f"{collector.url}/micro/all", headers=foreign, timeout=5)
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers
    preflight = requests.options(f"{collector.url}/micro/good", headers=foreign, timeout=5)
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers
    # Its own origin (the UI) is answered, with CORS headers naming it.
    own = {"Origin": collector.url}
    response = requests.post(f"{collector.url}/micro/all", headers=own, timeout=5)
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == collector.url
    assert response.headers["Vary"] == "Origin"
    # Without an Origin (curl, test suites) nothing changes, and no CORS header is sent.
    plain = requests.get(f"{collector.url}/micro/all", timeout=5)
    assert plain.status_code == 200
    assert "access-control-allow-origin" not in plain.headers
    with Collector(allow_origins=["http://localhost:3000/"]) as allowing:
        response = requests.get(f"{allowing.url}/micro/all", headers=foreign, timeout=5)
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:3000"
        assert response.headers["Access-Control-Allow-Credentials"] == "true"
        other = {"Origin": "http://localhost:3001"}
        refused = requests.get(f"{allowing.url}/micro/all", headers=other, timeout=5)
        assert refused.status_code == 403


def test_events_gives_lossy_enriched_json(collector: Collector) -> None:
    page = post(collector, "/micro/events", {"page": 1, "pageSize": 2}).json()
    assert (page["totalItems"], page["totalPages"], len(page["events"])) == (3, 2, 2)
    everything = get(collector, "/micro/events")["events"]
    page_view = next(e for e in everything if e["event"] == "page_view")
    assert page_view["contexts_com_snowplowanalytics_snowplow_web_page_1"] == [{"id": PAGE_ID}]
    assert "contexts" not in page_view
    click = next(e for e in everything if e["event"] == "unstruct")
    assert click["unstruct_event_com_snowplowanalytics_snowplow_link_click_1"] == {
        "targetUrl": "http://y"
    }


def test_reset_empties_everything() -> None:
    with Collector() as collector:
        requests.get(f"{collector.url}/i?e=pv&p=srv&tv=t", timeout=5)
        assert get(collector, "/micro/reset") == {"total": 0, "good": 0, "bad": 0}
        assert get(collector, "/micro/good") == []
        assert collector.events == []
