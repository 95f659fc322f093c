"""The snowplow-tracker 1.x API, in our own words, through a real collector on a loopback port:
event classes, the Tracker's 1.x forms, Snowplow and the configuration classes, the 1.x emitter
options and defaults, the 1.x store protocol, and the rules where 1.x and 0.5.0 disagree."""

from __future__ import annotations

import base64
import json
import logging
import uuid
import warnings
from typing import Any

import pytest

import snowplow_tracker
from snowplow_tracker import (
    AddToCart,
    AsyncEmitter,
    Emitter,
    EmitterConfiguration,
    Event,
    FormChange,
    FormSubmit,
    InvalidTypeError,
    InvalidValueError,
    LinkClick,
    PagePing,
    PageView,
    Payload,
    RemoveFromCart,
    ScreenView,
    SelfDescribing,
    SelfDescribingJson,
    SentEvents,
    SiteSearch,
    Snowplow,
    StructuredEvent,
    Subject,
    Tracker,
    TrackerConfiguration,
)
from snowplow_tracker.collector import Collector
from snowplow_tracker.collector.validate import Event as Received
from snowplow_tracker.event_store import InMemoryEventStore
from snowplow_tracker.testing import FakeClock

from .conftest import ListEmitter

WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
LINK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
MOBILE_SCREEN = "iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0"
CONTEXTS_1_0_1 = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
ENTITY = SelfDescribingJson(WEB_PAGE, {"id": "0f9b1e5c-3d4a-4c1f-9a7b-6e2d8c4b5a10"})
SCREEN_ID = "3c9a3a43-8d52-4a7b-9ff2-5e4c3b1d2a10"
TRUE_TIME = 1_600_000_000_123


def post_emitter(collector: Collector, **options: Any) -> Emitter:
    return Emitter(collector.url, method="post", **options)


def only(collector: Collector, count: int) -> list[Received]:
    events = collector.wait_for(count)
    assert len(events) == count
    assert [e.errors for e in events] == [[]] * count, "every event must validate"
    return events


@pytest.fixture(autouse=True)
def _no_trackers_left() -> Any:
    yield
    Snowplow.reset()


# -- event classes --------------------------------------------------------------------------


def test_event_classes_with_context_true_timestamp_and_event_subject(
    collector: Collector,
) -> None:
    emitter = post_emitter(collector)
    tracker = Tracker("ns", emitter, Subject().set_user_id("tracker-user").set_lang("en"))
    subject = Subject().set_user_id("event-user").set_platform("srv")
    common: dict[str, Any] = {
        "event_subject": subject,
        "context": [ENTITY],
        "true_timestamp": TRUE_TIME,
    }
    events = [
        PageView("https://a.example/p", "Title", "https://ref.example/", **common),
        PagePing("https://a.example/p", "Title", None, 0, 100, 5, 500, **common),
        StructuredEvent("shop", "buy", "label", "prop", 2.5, **common),
        SelfDescribing(SelfDescribingJson(LINK, {"targetUrl": "https://x.example/"}), **common),
        ScreenView(SCREEN_ID, "home", "feed", "intro", SCREEN_ID, "carousel", "push", **common),
    ]
    ids = [tracker.track(event) for event in events]
    tracker.flush()
    received = only(collector, 5)
    assert [e.raw["eid"] for e in received] == ids
    for event in received:
        raw = event.raw
        assert raw["ttm"] == str(TRUE_TIME)
        assert abs(int(raw["dtm"]) - int(raw["stm"])) < 60_000  # the device time of the call
        assert (raw["uid"], raw["p"], raw["lang"]) == ("event-user", "srv", "en")
        assert raw["tna"] == "ns"
        assert event.contexts == [ENTITY.to_json()]
        assert json.loads(base64.urlsafe_b64decode(raw["cx"]))["schema"] == CONTEXTS_1_0_1
    pv, pp, se = (e.raw for e in received[:3])
    assert (pv["e"], pv["url"], pv["page"], pv["refr"]) == (
        "pv",
        "https://a.example/p",
        "Title",
        "https://ref.example/",
    )
    assert (pp["e"], pp["pp_mix"], pp["pp_max"], pp["pp_miy"], pp["pp_may"]) == (
        "pp",
        "0",
        "100",
        "5",
        "500",
    )
    assert (se["se_ca"], se["se_ac"], se["se_la"], se["se_pr"], se["se_va"]) == (
        "shop",
        "buy",
        "label",
        "prop",
        "2.5",
    )
    assert received[3].unstruct_event == {
        "schema": LINK,
        "data": {"targetUrl": "https://x.example/"},
    }
    assert received[4].unstruct_event == {
        "schema": MOBILE_SCREEN,
        "data": {
            "id": SCREEN_ID,
            "name": "home",
            "type": "feed",
            "previousName": "intro",
            "previousId": SCREEN_ID,
            "previousType": "carousel",
            "transitionType": "push",
        },
    }
    emitter.close()


def test_event_properties_read_and_write_the_payload() -> None:
    page = PageView("https://a/")
    page.page_title = "T"
    page.page_url = "https://b/"
    page.referrer = None
    assert (page.page_url, page.page_title, page.referrer) == ("https://b/", "T", None)
    assert page.payload.nv_pairs == {"e": "pv", "url": "https://b/", "page": "T"}
    with pytest.raises(ValueError, match="page_url"):
        page.page_url = ""
    se = StructuredEvent("c", "a")
    se.value = 0
    se.label = "l"
    assert (se.category, se.action, se.label, se.value) == ("c", "a", "l", 0)
    screen = ScreenView(SCREEN_ID, "home")
    screen.name = "settings"
    screen.previous_id = SCREEN_ID
    assert screen.screen_view_properties == {
        "id": SCREEN_ID,
        "name": "settings",
        "previousId": SCREEN_ID,
    }
    ping = PagePing("https://a/", min_x=1)
    ping.max_y = 9
    assert (ping.min_x, ping.max_y, ping.max_x) == (1, 9, None)


def test_event_build_payload_merges_subjects_event_over_tracker() -> None:
    tracker_subject = Subject().set_user_id("t").set_lang("fr").set_color_depth(24)
    event_subject = Subject().set_user_id("e")
    event = Event({"e": "pv", "url": "u"}, event_subject=event_subject, true_timestamp=7.9)
    pairs = event.build_payload(False, None, tracker_subject).nv_pairs
    assert pairs == {"e": "pv", "url": "u", "ttm": 7, "p": "pc", "uid": "e", "lang": "fr", "cd": 24}
    assert event_subject.combine_subject(tracker_subject) == {
        "p": "pc",
        "uid": "e",
        "lang": "fr",
        "cd": 24,
    }
    assert event_subject.combine_subject(None) is event_subject.standard_nv_pairs


def test_our_own_event_classes_match_their_track_methods(collector: Collector) -> None:
    emitter = post_emitter(collector)
    tracker = Tracker("ns", emitter)
    elements = [{"name": "email", "value": "a@b.c", "nodeName": "INPUT", "type": "email"}]
    objects = [
        LinkClick("https://x/", "id1", ["c1", "c2"], "_blank", "text"),
        AddToCart("sku", 2, "name", "cat", 9.99, "EUR"),
        RemoveFromCart("sku", 1),
        FormChange("form", "field", "INPUT", "v", "text", ["c"]),
        FormSubmit("form", ["c"], elements),
        SiteSearch(["a", "b"], {"new": True}, 10, 5),
    ]
    for event in objects:
        tracker.track(event)
    tracker.track_link_click("https://x/", "id1", ["c1", "c2"], "_blank", "text")
    tracker.track_add_to_cart("sku", 2, "name", "cat", 9.99, "EUR")
    tracker.track_remove_from_cart("sku", 1)
    tracker.track_form_change("form", "field", "INPUT", "v", "text", ["c"])
    tracker.track_form_submit("form", ["c"], elements)
    tracker.track_site_search(["a", "b"], {"new": True}, 10, 5)
    tracker.flush()
    received = only(collector, 12)
    by_object = [e.unstruct_event for e in received[:6]]
    by_method = [e.unstruct_event for e in received[6:]]
    assert by_object == by_method
    assert by_object[0] == {
        "schema": LINK,
        "data": {
            "targetUrl": "https://x/",
            "elementId": "id1",
            "elementClasses": ["c1", "c2"],
            "elementTarget": "_blank",
            "elementContent": "text",
        },
    }
    assert by_object[5]["data"] == {  # type: ignore[index]
        "terms": ["a", "b"],
        "filters": {"new": True},
        "totalResults": 10,
        "pageResults": 5,
    }
    emitter.close()


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: PageView(""), InvalidValueError),
        (lambda: PageView(5), InvalidTypeError),
        (lambda: StructuredEvent("c", ""), InvalidValueError),
        (lambda: ScreenView("", "n"), InvalidValueError),
        (lambda: FormChange("f", "e", "DIV", "v"), InvalidValueError),
        (lambda: FormChange("f", "e", "INPUT", "v", "nope"), InvalidValueError),
        (lambda: FormSubmit("f", elements=[{"name": "n", "value": "v"}]), InvalidValueError),
        (lambda: FormSubmit("f", elements=[{**FORM_ELEMENT, "type": "x"}]), InvalidValueError),
        (lambda: SiteSearch([]), InvalidValueError),
        (lambda: AddToCart("sku", 1.5), InvalidTypeError),
        (lambda: Event(context="x"), InvalidTypeError),
        (lambda: Event(true_timestamp="now"), InvalidTypeError),
        (lambda: Event(event_subject="s"), InvalidTypeError),
    ],
)
def test_event_classes_refuse_bad_input_with_value_and_type_errors(make: Any, error: type) -> None:
    with pytest.raises(error):
        make()


FORM_ELEMENT = {"name": "n", "value": "v", "nodeName": "INPUT"}


def test_schemas_are_checked_when_the_event_is_tracked() -> None:
    """1.x builds any schema string; tracking refuses what a pipeline would reject."""
    event = SelfDescribing(SelfDescribingJson("test.sde.schema", {"n": "v"}))
    assert "ue_pr" in event.build_payload(False, None).nv_pairs
    with pytest.raises(InvalidValueError, match=r"^track\(\): event_json"):
        Tracker("ns", ListEmitter()).track(event)
    bad_context = PageView("https://a/", context=[SelfDescribingJson("not.iglu", {})])
    with pytest.raises(InvalidValueError, match=r"context\[0\]"):
        Tracker("ns", ListEmitter()).track(bad_context)
    snowplow_tracker.disable_contracts()
    sink = ListEmitter()
    Tracker("ns", sink).track(event)
    assert len(sink.events) == 1


# -- the Tracker ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build",
    [
        lambda e, s: Tracker("ns", e, subject=s),
        lambda e, s: Tracker("ns", emitters=e, subject=s),
        lambda e, s: Tracker(namespace="ns", emitters=[e], subject=s),
        lambda e, s: Tracker("ns", [e], s, "app"),
        lambda e, s: Tracker(e, s, "ns"),
        lambda e, s: Tracker(e, subject=s, namespace="ns"),
        lambda e, s: Tracker(emitter=e, subject=s, namespace="ns"),
        lambda e, s: Tracker((e,), s, namespace="ns"),
    ],
)
def test_every_constructor_form(build: Any) -> None:
    sink, subject = ListEmitter(), Subject().set_user_id("u")
    tracker = build(sink, subject)
    assert tracker.get_namespace() == "ns"
    assert tracker.emitters == [sink]
    tracker.track_page_view("https://a/")
    assert (sink.events[0]["tna"], sink.events[0]["uid"]) == ("ns", "u")


def test_constructor_mistakes_are_type_errors() -> None:
    sink = ListEmitter()
    with pytest.raises(TypeError, match="multiple values"):
        Tracker("ns", sink, emitters=sink)
    with pytest.raises(TypeError):
        Tracker("ns", sink, None, None, True, None, "extra")
    with pytest.raises(TypeError):
        Tracker(sink, unknown=1)
    with pytest.raises(ValueError, match="emitters"):
        Tracker("ns", [])
    with pytest.raises(TypeError):
        Tracker(Emitter)  # the class, not an emitter


def test_track_returns_the_event_id_and_complete_payload_the_payload() -> None:
    sink = ListEmitter()
    tracker = Tracker("ns", sink, app_id="app", id_source=lambda: "id-1", clock=lambda: 2.0)
    payload = tracker.complete_payload(StructuredEvent("c", "a", value=1, true_timestamp=5))
    assert isinstance(payload, Payload)
    assert payload.nv_pairs == {
        "e": "se",
        "se_ca": "c",
        "se_ac": "a",
        "se_va": 1,
        "ttm": 5,
        "p": "pc",
        "eid": "id-1",
        "dtm": 2000,
        "tv": snowplow_tracker.tracker.VERSION,
        "tna": "ns",
        "aid": "app",
    }
    assert sink.events == []  # completing does not send
    assert tracker.track(PageView("https://a/")) == "id-1"
    assert sink.events[0]["eid"] == "id-1"


def test_the_0_5_0_track_and_complete_payload_forms_return_the_tracker() -> None:
    sink = ListEmitter()
    tracker = Tracker(sink, clock=lambda: 3.0)
    pb = Payload({"e": "pv", "url": "https://a/"})
    assert tracker.complete_payload(pb, [ENTITY.to_json()], 11) is tracker
    assert tracker.track(Payload({"e": "pv", "url": "https://b/", "eid": "x"})) is tracker
    first, second = sink.events
    assert (first["url"], first["ttm"], first["dtm"]) == ("https://a/", "11", "3000")
    assert "cx" in first
    assert second == {"e": "pv", "url": "https://b/", "eid": "x"}


def test_every_track_method_with_tstamp_and_event_subject(collector: Collector) -> None:
    """The 0.5.0 methods and the eight 1.x added, through the collector: each event validates,
    ``tstamp`` is its true timestamp and ``event_subject`` wins over the tracker's subject."""
    emitter = post_emitter(collector, buffer_size=100)
    tracker = Tracker("ns", emitter, Subject().set_user_id("tracker"), clock=lambda: 1.0)
    calls = [
        ("track_page_view", ("https://a/",)),
        ("track_page_ping", ("https://a/", "T", None, 0, 10, 0, 20)),
        ("track_struct_event", ("c", "a")),
        ("track_self_describing_event", (ENTITY,)),
        ("track_unstruct_event", (ENTITY,)),
        ("track_screen_view", ("home",)),
        ("track_mobile_screen_view", ("home",)),
        ("track_link_click", ("https://a/",)),
        ("track_add_to_cart", ("sku", 1)),
        ("track_remove_from_cart", ("sku", 1)),
        ("track_form_change", ("f", "e", "INPUT", "v")),
        ("track_form_submit", ("f", None, [FORM_ELEMENT])),
        ("track_site_search", (["q"],)),
        ("track_ecommerce_transaction_item", ("o", "sku", 1, 1)),
        ("track_ecommerce_transaction", ("o", 1)),
    ]
    subject = Subject().set_user_id("per-event")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no DeprecationWarning for any of them
        for name, args in calls:
            result = getattr(tracker, name)(*args, tstamp=TRUE_TIME, event_subject=subject)
            assert result is tracker
    tracker.flush()
    received = only(collector, len(calls))
    for event in received:
        raw = event.raw
        assert (raw["ttm"], raw["dtm"], raw["uid"]) == (str(TRUE_TIME), "1000", "per-event")
    schemas = [e.unstruct_event["schema"] for e in received if e.unstruct_event]  # type: ignore[index]
    assert [s.split("/")[1] for s in schemas] == [
        "web_page",
        "web_page",
        "screen_view",
        "screen_view",
        "link_click",
        "add_to_cart",
        "remove_from_cart",
        "change_form",
        "submit_form",
        "site_search",
    ]
    assert [e.raw["e"] for e in received if not e.unstruct_event] == ["pv", "pp", "se", "ti", "tr"]
    emitter.close()


def test_mobile_screen_view_makes_an_id_when_none_is_given() -> None:
    sink = ListEmitter()
    Tracker("ns", sink, encode_base64=False).track_mobile_screen_view("home")
    data = json.loads(sink.events[0]["ue_pr"])["data"]
    assert data["schema"] == MOBILE_SCREEN
    assert uuid.UUID(data["data"]["id"]).version == 4


def test_transaction_items_share_its_device_time_and_take_its_subject() -> None:
    sink = ListEmitter()
    ticks = iter([1.0, 2.0, 3.0, 4.0])
    tracker = Tracker("ns", sink, clock=lambda: next(ticks))
    items = [{"sku": "a", "price": 1, "quantity": 1}, {"sku": "b", "price": 2, "quantity": 3}]
    subject = Subject().set_user_id("buyer")
    tracker.track_ecommerce_transaction("o", 7, items=items, event_subject=subject)
    tr, first, second = sink.events
    assert tr["dtm"] == first["dtm"] == second["dtm"] == "1000"
    assert {tr["uid"], first["uid"], second["uid"]} == {"buyer"}
    tracker.track_page_view("https://after/")
    assert sink.events[-1]["dtm"] == "2000"  # the shared time ends with the transaction


def test_set_subject_none_sends_no_subject_fields() -> None:
    sink = ListEmitter()
    tracker = Tracker("ns", sink).set_subject(None)
    tracker.track_page_view("https://a/", event_subject=Subject().set_user_id("u"))
    tracker.track_page_view("https://a/")
    assert sink.events[0]["uid"] == "u"
    assert "p" not in sink.events[1]


def test_flush_is_async_calls_flush_on_emitters_that_have_no_request_flush() -> None:
    class OneX:
        def __init__(self) -> None:
            self.calls: list[str] = []

        def input(self, payload: Any) -> None:
            pass

        def flush(self) -> None:
            self.calls.append("flush")

        def sync_flush(self) -> None:
            self.calls.append("sync_flush")

    emitter = OneX()
    Tracker("ns", emitter).flush(is_async=True).flush()
    assert emitter.calls == ["flush", "sync_flush"]


# -- Snowplow and the configuration classes ------------------------------------------------


def test_create_tracker_with_both_configurations_and_custom_retry_codes(
    collector: Collector,
) -> None:
    sent: list[Any] = []
    emitter_config = EmitterConfiguration(batch_size=2, on_success=sent.append)
    assert emitter_config.set_retry_code(404) is True  # 1.x would not retry a 404 by default
    assert emitter_config.set_retry_code(204) is False  # a success is never retried
    assert emitter_config.set_retry_code("500") is False  # type: ignore[arg-type]
    tracker = Snowplow.create_tracker(
        "shop",
        collector.url,
        app_id="app",
        subject=Subject().set_user_id("u"),
        tracker_config=TrackerConfiguration(encode_base64=False),
        emitter_config=emitter_config,
    )
    assert Snowplow.get_tracker("shop") is tracker
    (emitter,) = tracker.emitters
    assert isinstance(emitter, Emitter)
    assert (emitter.method, emitter.batch_size, emitter.defaults) == ("post", 2, "1.x")
    assert emitter.retry.is_retryable(404) and not emitter.retry.is_retryable(400)
    collector.script(404)
    tracker.track(PageView("https://a/"))
    tracker.track(StructuredEvent("c", "a"))
    tracker.flush()
    received = only(collector, 2)
    assert [r.status for r in collector.requests] == [404, 200]
    assert {e.raw["aid"] for e in received} == {"app"}
    assert "ue_pr" not in received[0].raw and received[0].raw["uid"] == "u"
    assert [len(batch) for batch in sent] == [2]
    emitter.close()


def test_create_tracker_defaults_are_1_x_and_touch_no_network() -> None:
    tracker = Snowplow.create_tracker("ns", "collector.invalid")
    emitter = tracker.emitters[0]
    assert emitter.endpoint == "https://collector.invalid/com.snowplowanalytics.snowplow/tp2"  # type: ignore[attr-defined]
    assert "defaults='1.x'" in repr(emitter)
    get = Snowplow.create_tracker("get", "http://collector.invalid", method="get")
    assert get.emitters[0].endpoint == "http://collector.invalid/i"  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        Snowplow.create_tracker("x", None)  # type: ignore[arg-type]
    for t in (tracker, get):
        t.emitters[0].close()  # type: ignore[attr-defined]


def test_the_registry() -> None:
    first = Tracker("a", ListEmitter())
    assert Snowplow.add_tracker(first) is first
    with pytest.raises(TypeError, match="already exists"):
        Snowplow.add_tracker(Tracker("a", ListEmitter()))
    Snowplow.add_tracker(Tracker("b", ListEmitter()))
    Snowplow.remove_tracker(first)
    assert Snowplow.get_tracker("a") is None
    Snowplow.remove_tracker_by_namespace("missing")  # nothing to remove: no error
    Snowplow.remove_tracker_by_namespace("b")
    assert Snowplow.get_tracker("b") is None
    Snowplow.add_tracker(Tracker("c", ListEmitter()))
    Snowplow.reset()
    assert Snowplow.get_tracker("c") is None


@pytest.mark.parametrize("name", ["batch_size", "byte_limit", "buffer_capacity"])
def test_emitter_configuration_refuses_negative_and_non_int_sizes(name: str) -> None:
    config = EmitterConfiguration()
    with pytest.raises(ValueError, match=name):
        setattr(config, name, -1)
    with pytest.raises(ValueError, match=name):
        setattr(config, name, "10")
    setattr(config, name, 5)
    assert getattr(config, name) == 5
    with pytest.raises(TypeError):
        TrackerConfiguration(encode_base64="yes")  # type: ignore[arg-type]


# -- emitter options and defaults ------------------------------------------------------------


def test_a_bare_emitter_keeps_the_release_notes_defaults() -> None:
    for emitter in (Emitter("c.invalid"), Emitter("c.invalid", method="post")):
        assert emitter.endpoint.startswith("http://c.invalid/")
        assert emitter.defaults == "0.5"
        assert emitter.retry.max_attempts == 1  # the sync Emitter sends once, as 0.5.0
        emitter.close()
    assert Emitter("c.invalid").batch_size == 1
    assert Emitter("c.invalid", method="post").batch_size == 10
    assert Emitter.as_collector_uri("c.invalid") == "http://c.invalid/i"
    with pytest.raises(ValueError, match="endpoint"):
        Emitter.as_collector_uri("")


@pytest.mark.parametrize(
    "option",
    [
        {"batch_size": 5},
        {"buffer_capacity": 100},
        {"custom_retry_codes": {418: True}},
        {"max_retry_delay_seconds": 5},
        {"defaults": "1.x"},
    ],
)
def test_any_1_x_option_selects_1_x_defaults_once(option: dict[str, Any]) -> None:
    emitter = Emitter("c.invalid", **option)
    assert emitter.endpoint == "https://c.invalid/com.snowplowanalytics.snowplow/tp2"
    assert (emitter.method, emitter.defaults) == ("post", "1.x")
    assert "defaults='1.x'" in repr(emitter) and "retry=on" in repr(emitter)
    retry = emitter.retry
    assert [retry.is_retryable(s) for s in (404, 429, 500, 301)] == [True] * 4
    assert [retry.is_retryable(s) for s in (400, 401, 403, 410, 422)] == [False] * 5
    emitter.close()
    asynchronous = AsyncEmitter("c.invalid", **option)
    assert asynchronous.endpoint == "http://c.invalid/com.snowplowanalytics.snowplow/tp2"
    asynchronous.close()


def test_1_x_options_reach_the_delivery_core() -> None:
    emitter = Emitter(
        "http://c.invalid",
        batch_size=3,
        buffer_capacity=7,
        custom_retry_codes={500: False, 404: True},
        max_retry_delay_seconds=2.5,
    )
    assert emitter.batch_size == emitter.buffer_size == 3
    assert emitter.custom_retry_codes == {500: False, 404: True}
    assert emitter.max_retry_delay_seconds == 2.5
    assert emitter.retry.backoff_max == 2.5
    assert not emitter.retry.is_retryable(500) and emitter.retry.is_retryable(404)
    assert emitter._core.max_queue_size == 7
    emitter.close()
    with pytest.raises(InvalidValueError, match="batch_size"):
        Emitter("c.invalid", buffer_size=2, batch_size=3)
    with pytest.raises(InvalidValueError, match="batch_size"):
        Emitter("c.invalid", batch_size=0)
    with pytest.raises(InvalidTypeError, match="custom_retry_codes"):
        Emitter("c.invalid", custom_retry_codes={500: "yes"})
    with pytest.raises(InvalidValueError, match="defaults"):
        Emitter("c.invalid", defaults="2.0")


def test_buffer_capacity_bounds_the_queue_and_counts_what_it_drops() -> None:
    failures: list[tuple[int, list[Any]]] = []
    emitter = Emitter(
        "http://127.0.0.1:9",
        batch_size=100,
        buffer_capacity=2,
        on_failure=lambda sent, unsent: failures.append((sent, unsent)),
    )
    for n in range(3):
        emitter.input({"e": "pv", "url": f"https://a/{n}"})
    assert len(emitter.buffer) == 2
    assert emitter.stats().dropped["queue_full"] == 1
    assert failures and failures[0][1][0]["url"] == "https://a/0"
    emitter._core.write_off()
    emitter.close(0)


@pytest.mark.parametrize("method", ["get", "post"])
def test_on_success_gets_the_count_that_is_also_the_sent_events(
    collector: Collector, method: str
) -> None:
    calls: list[Any] = []
    emitter = Emitter(collector.url, method=method, buffer_size=3, on_success=calls.append)
    tracker = Tracker("ns", emitter)
    for n in range(3):
        tracker.track_page_view(f"https://a/{n}")
    (sent,) = calls
    assert isinstance(sent, SentEvents) and isinstance(sent, int)
    # 0.4.0/0.5.0: a count that compares, adds and formats as one.
    assert sent == 3 and sent + 1 == 4 and f"{sent} sent" == "3 sent" and f"{sent:d}" == "3"
    # 1.x: the sent events, in order.
    assert len(sent) == 3
    assert [event["url"] for event in sent] == [f"https://a/{n}" for n in range(3)]
    assert sent[0]["e"] == "pv" and sent == list(sent) and sent != [] and sent[-1] in sent
    emitter.close()


def test_a_flush_timer_sends_without_a_full_buffer(collector: Collector) -> None:
    clock = FakeClock()
    emitter = Emitter(collector.url, method="post", buffer_size=50, clock=clock)
    tracker = Tracker("ns", emitter)
    tracker.track_page_view("https://a/1")
    emitter.set_flush_timer(5)
    assert emitter.flush_interval == 5
    tracker.track_page_view("https://a/2")
    assert collector.events == []
    clock.advance(6)
    assert len(collector.wait_for(2)) == 2  # the timer's thread sent them
    emitter.cancel_flush_timer()
    assert emitter.flush_interval is None
    tracker.track_page_view("https://a/3")
    clock.advance(60)
    assert len(emitter.buffer) == 1  # no timer any more: it waits for a flush
    emitter.flush()
    assert len(collector.wait_for(3)) == 3
    emitter.close()
    with pytest.raises(InvalidValueError):
        Emitter("c.invalid").set_flush_timer(0)


def test_an_async_emitter_takes_a_flush_timer_too(collector: Collector) -> None:
    clock = FakeClock()
    emitter = AsyncEmitter(
        collector.url, method="post", buffer_size=50, flush_interval=None, clock=clock
    )
    Tracker("ns", emitter).track_page_view("https://a/")
    emitter.set_flush_timer(1, flush_now=True)
    assert len(collector.wait_for(1)) == 1
    emitter.close()


# -- the 1.x event store protocol -----------------------------------------------------------


class ListStore:
    """A store written to the 1.x protocol, as users write them."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.cleanups: list[tuple[int, bool]] = []

    def add_event(self, payload: dict[str, Any]) -> bool:
        self.events.append(payload)
        return True

    def get_events_batch(self) -> list[dict[str, Any]]:
        batch, self.events = self.events, []
        return batch

    def cleanup(self, batch: list[dict[str, Any]], need_retry: bool) -> None:
        self.cleanups.append((len(batch), need_retry))
        if need_retry:
            self.events[:0] = batch

    def size(self) -> int:
        return len(self.events)


def test_a_custom_1_x_event_store_keeps_the_events_until_they_are_sent(
    collector: Collector,
) -> None:
    store = ListStore()
    failures: list[int] = []
    emitter = Emitter(
        collector.url,
        method="post",
        batch_size=10,
        event_store=store,
        on_failure=lambda sent, unsent: failures.append(len(unsent)),
        clock=FakeClock(),  # the retry's backoff passes at once
    )
    assert emitter.event_store is store
    tracker = Tracker("ns", emitter)
    collector.script(400)  # final for 1.x: reported, and the store cleans up without retry
    tracker.track_page_view("https://a/lost")
    emitter.flush()
    assert failures == [1] and store.cleanups == [(1, False)]
    collector.script(503)  # retried (1.x defaults), then sent; the store lets them go once
    for n in range(3):
        tracker.track_page_view(f"https://a/{n}")
    assert store.size() == 3
    emitter.flush()
    received = only(collector, 3)
    assert [e.raw["url"] for e in received] == [f"https://a/{n}" for n in range(3)]
    assert [r.status for r in collector.requests] == [400, 503, 200]
    assert store.cleanups[1:] == [(3, False)]
    assert store.size() == 0
    emitter.close()


def test_a_1_x_store_gets_back_a_batch_whose_retry_waits(collector: Collector) -> None:
    """A full batch is sent from track_*, which never sleeps: its retry waits in the store."""
    store = ListStore()
    emitter = Emitter(collector.url, batch_size=2, event_store=store, clock=FakeClock())
    tracker = Tracker("ns", emitter)
    collector.script(503)
    tracker.track_page_view("https://a/1")
    tracker.track_page_view("https://a/2")
    assert store.cleanups == [(2, True)] and store.size() == 2
    emitter.flush()
    assert store.cleanups == [(2, True), (2, False)] and store.size() == 0
    assert len(only(collector, 2)) == 2
    emitter.close()


def test_in_memory_event_store_of_1_x(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test.store")
    store = InMemoryEventStore(log, buffer_capacity=2)
    assert store.add_event({"n": "1"}) and store.add_event({"n": "2"})
    with caplog.at_level(logging.ERROR, logger="test.store"):
        assert store.add_event({"n": "3"}) is False
    assert "full" in caplog.text
    batch = store.get_events_batch()
    assert batch == [{"n": "1"}, {"n": "2"}] and store.size() == 0
    store.add_event({"n": "4"})
    store.cleanup(batch, need_retry=True)
    assert store.event_buffer == [{"n": "1"}, {"n": "4"}]  # capacity still holds
    assert InMemoryEventStore(log).buffer_capacity == 10_000
    emitter = Emitter(
        "c.invalid", batch_size=100, event_store=InMemoryEventStore(log, buffer_capacity=1)
    )
    emitter.input({"e": "pv", "url": "https://a/"})
    emitter.input({"e": "pv", "url": "https://b/"})
    assert emitter.stats().dropped["queue_full"] == 1
    assert emitter.event_store.event_buffer == [{"e": "pv", "url": "https://a/"}]
    emitter._core.write_off()
    emitter.close(0)


def test_our_default_store_shows_its_events_as_1_x_does() -> None:
    emitter = Emitter("c.invalid", method="post")
    emitter.input({"e": "pv", "url": "https://a/"})
    assert emitter.event_store.event_buffer == [{"e": "pv", "url": "https://a/"}]
    emitter._core.write_off()
    emitter.close(0)


# -- the 1.x module surface --------------------------------------------------------------------


def test_the_1_x_names_import() -> None:
    from snowplow_tracker import constants, contracts, typing
    from snowplow_tracker.emitter_configuration import EmitterConfiguration as EC
    from snowplow_tracker.events.page_ping import PagePing as PP
    from snowplow_tracker.events.page_view import PageView as PV
    from snowplow_tracker.events.screen_view import ScreenView as SV
    from snowplow_tracker.events.self_describing import SelfDescribing as SD
    from snowplow_tracker.events.structured_event import StructuredEvent as SE
    from snowplow_tracker.tracker_configuration import TrackerConfiguration as TC

    assert (EC, TC, PP, PV, SV, SD, SE) == (
        EmitterConfiguration,
        TrackerConfiguration,
        PagePing,
        PageView,
        ScreenView,
        SelfDescribing,
        StructuredEvent,
    )
    for name in (
        "PayloadDict",
        "PayloadDictList",
        "JsonEncoderFunction",
        "EmitterProtocol",
        "SuccessCallback",
        "FailureCallback",
        "HttpProtocol",
        "Method",
        "SupportedPlatform",
        "FORM_NODE_NAMES",
        "FORM_TYPES",
        "ElementClasses",
        "FormClasses",
        "FormNodeName",
    ):
        assert hasattr(typing, name), name
    assert constants.MOBILE_SCHEMA_PATH == "iglu:com.snowplowanalytics.mobile"
    assert constants.ContextArray is not None
    assert contracts.contracts_enabled()


def test_the_1_x_contract_helpers() -> None:
    from snowplow_tracker.contracts import (
        form_element,
        greater_than,
        non_empty,
        non_empty_string,
        one_of,
        satisfies,
    )

    greater_than(2, 1)
    non_empty([1])
    non_empty_string("x")
    one_of("a", ["a", "b"])
    satisfies(3, lambda v: v == 3)
    form_element(FORM_ELEMENT)
    for bad in (
        lambda: greater_than(1, 1),
        lambda: non_empty([]),
        lambda: non_empty_string(""),
        lambda: one_of("c", ["a"]),
        lambda: satisfies(2, lambda v: v == 3),
        lambda: form_element({"name": "n", "value": "v", "nodeName": "P"}),
    ):
        with pytest.raises(ValueError, match="must be"):
            bad()
    snowplow_tracker.disable_contracts()
    greater_than(0, 1)
    non_empty([])
    non_empty_string("")
    one_of("c", ["a"])
    form_element({})
