"""Tracker -> local collector -> /micro/good, for every event type, with GET and POST."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from snowplow_tracker import Emitter, Subject, Tracker
from snowplow_tracker.collector import Collector

LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
SCREEN_VIEW = "iglu:com.snowplowanalytics.snowplow/screen_view/jsonschema/1-0-0"
PAGE_ID = "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d11"


@pytest.fixture(scope="module")
def collector() -> Any:
    with Collector() as running:
        yield running


def _good(collector: Collector, **filters: Any) -> list[dict[str, Any]]:
    response = requests.post(f"{collector.url}/micro/good", json=filters, timeout=5)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()
    return result


def _track_everything(tracker: Tracker) -> None:
    context = [{"schema": WEB_PAGE, "data": {"id": PAGE_ID}}]
    tracker.track_page_view("http://shop.example.com/p?q=1#top", "Product", "http://ref.example/")
    tracker.track_struct_event("shop", "add-to-basket", "paint", "magenta", 2.5, context)
    tracker.track_unstruct_event({"schema": LINK_CLICK, "data": {"targetUrl": "http://a.example"}})
    tracker.track_screen_view("title screen", "screen-1")
    tracker.track_ecommerce_transaction(
        "order-1", 35, "shop", 1.5, 2, "Leeds", "West Yorkshire", "UK", "GBP",
        items=[{"sku": "pbz0026", "price": 7.99, "quantity": 2, "name": "paint"}],
    )  # fmt: skip
    tracker.flush()


@pytest.mark.parametrize("method", ["get", "post"])
def test_every_event_type_arrives_good_in_micro(collector: Collector, method: str) -> None:
    collector.reset()
    subject = Subject().set_platform("srv").set_user_id("user-1")
    tracker = Tracker(Emitter(collector.endpoint, method=method), subject, "ns", "app-" + method)
    _track_everything(tracker)

    summary = requests.get(f"{collector.url}/micro/all", timeout=5).json()
    assert summary == {"total": 6, "good": 6, "bad": 0}
    good = _good(collector)
    by_type = {event["eventType"]: event for event in good}
    assert sorted(by_type) == [
        "page_view", "struct", "transaction", "transaction_item", "unstruct",
    ]  # fmt: skip
    assert {event["event"]["app_id"] for event in good} == {"app-" + method}
    assert {event["event"]["user_id"] for event in good} == {"user-1"}

    page_view = by_type["page_view"]["event"]
    assert page_view["page_url"] == "http://shop.example.com/p?q=1#top"
    assert page_view["page_urlhost"] == "shop.example.com"
    assert page_view["page_urlquery"] == "q=1"
    assert page_view["page_title"] == "Product"
    assert page_view["refr_urlhost"] == "ref.example"

    struct = by_type["struct"]
    assert struct["schema"] == "iglu:com.google.analytics/event/jsonschema/1-0-0"
    assert struct["contexts"] == [WEB_PAGE]
    assert struct["event"]["se_value"] == 2.5
    assert struct["event"]["contexts"]["data"] == [{"schema": WEB_PAGE, "data": {"id": PAGE_ID}}]

    unstructs = [e for e in good if e["eventType"] == "unstruct"]
    assert sorted(e["schema"] for e in unstructs) == [LINK_CLICK, SCREEN_VIEW]
    screen = next(e for e in unstructs if e["schema"] == SCREEN_VIEW)["event"]
    assert screen["unstruct_event"]["data"]["data"] == {"name": "title screen", "id": "screen-1"}

    transaction = by_type["transaction"]["event"]
    assert (transaction["tr_orderid"], transaction["tr_total"], transaction["tr_currency"]) == (
        "order-1", 35.0, "GBP",
    )  # fmt: skip
    item = by_type["transaction_item"]["event"]
    assert (item["ti_orderid"], item["ti_sku"], item["ti_quantity"]) == ("order-1", "pbz0026", 2)
    expected_version = "tp2" if method == "post" else "tp1"
    assert {e["rawEvent"]["api"]["version"] for e in good} == {expected_version}


def test_micro_good_filters_find_what_the_tracker_sent(collector: Collector) -> None:
    collector.reset()
    tracker = Tracker(Emitter(collector.endpoint, method="post"), namespace="ns")
    _track_everything(tracker)

    assert [e["eventType"] for e in _good(collector, event_type="page_view")] == ["page_view"]
    assert [e["schema"] for e in _good(collector, schema=LINK_CLICK)] == [LINK_CLICK]
    with_page = _good(collector, contexts=[WEB_PAGE])
    assert [e["eventType"] for e in with_page] == ["struct"]
    assert len(_good(collector, limit=2)) == 2
    # Newest first, as Micro lists them.
    assert _good(collector)[0]["eventType"] == "transaction_item"
