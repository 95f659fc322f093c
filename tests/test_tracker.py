"""Tracker: construction forms, the pairs each event produces, chaining and flushing."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any, ClassVar

import pytest

from snowplow_tracker import (
    AsyncEmitter,
    InvalidTypeError,
    InvalidValueError,
    RetryPolicy,
    SelfDescribingJson,
    Subject,
    Tracker,
    __version__,
)
from snowplow_tracker.collector import Collector
from snowplow_tracker.constants import CONTEXT_SCHEMA, UNSTRUCT_EVENT_SCHEMA

from .conftest import ListEmitter

LINK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
CTX = [{"schema": PAGE, "data": {"id": "a"}}]


def decode(value: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(value).decode("utf-8"))


class FlushRecorder(ListEmitter):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def flush(self) -> None:
        self.calls.append("flush")

    def sync_flush(self) -> None:
        self.calls.append("sync_flush")


# -- construction ----------------------------------------------------------------------------


def test_single_emitter_defaults(sink: ListEmitter) -> None:
    t = Tracker(sink)
    assert t.emitters == [sink]
    assert isinstance(t.subject, Subject)
    assert t.encode_base64 is True
    assert t.standard_nv_pairs == {"tv": "py-" + __version__, "tna": None, "aid": None}


def test_list_and_tuple_of_emitters() -> None:
    a, b = ListEmitter(), ListEmitter()
    assert Tracker([a, b]).emitters == [a, b]
    assert Tracker((a, b)).emitters == [a, b]


def test_emitters_attribute_is_a_fresh_list() -> None:
    given = [ListEmitter()]
    t = Tracker(given)
    t.add_emitter(ListEmitter())
    assert len(given) == 1 and len(t.emitters) == 2


def test_keyword_forms_of_0_4_and_1_x(sink: ListEmitter) -> None:
    s = Subject()
    t = Tracker(emitter=sink, subject=s, namespace="cf", app_id="CF63A")
    assert t.emitters == [sink] and t.subject is s
    assert t.standard_nv_pairs["tna"] == "cf" and t.standard_nv_pairs["aid"] == "CF63A"
    t1 = Tracker("ns", sink, s, "app")
    assert t1.emitters == [sink] and t1.subject is s
    assert (t1.standard_nv_pairs["tna"], t1.standard_nv_pairs["aid"]) == ("ns", "app")
    t2 = Tracker(namespace="ns", emitters=[sink])
    assert t2.emitters == [sink] and t2.standard_nv_pairs["tna"] == "ns"


def test_emitter_and_emitters_together_is_an_error(sink: ListEmitter) -> None:
    with pytest.raises(TypeError, match="not both"):
        Tracker(sink, emitter=sink)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"emitters": None}, InvalidTypeError, "emitters must be an emitter"),
        ({"emitters": "not an emitter object", "subject": 3}, InvalidTypeError, "emitters"),
        ({"emitters": []}, InvalidValueError, "non-empty list"),
        ({"emitters": [object()]}, InvalidTypeError, r"emitters\[0\]"),
        ({"subject": "user"}, InvalidTypeError, "subject"),
        ({"namespace": 1}, InvalidTypeError, "namespace"),
        ({"app_id": 1}, InvalidTypeError, "app_id"),
        ({"encode_base64": "yes"}, InvalidTypeError, "encode_base64"),
        ({"json_encoder": 1}, InvalidTypeError, "json_encoder"),
    ],
)
def test_bad_constructor_arguments(
    sink: ListEmitter, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    arguments: dict[str, Any] = {"emitters": sink, **kwargs}
    with pytest.raises(error, match=match):
        Tracker(**arguments)


# -- static helpers --------------------------------------------------------------------------


def test_get_uuid_is_a_canonical_lowercase_v4() -> None:
    ids = {Tracker.get_uuid() for _ in range(200)}
    assert len(ids) == 200
    for value in ids:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and str(parsed) == value


def test_get_timestamp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "time", lambda: 1_700_000_000.123987)
    assert Tracker.get_timestamp() == 1_700_000_000_123
    assert Tracker.get_timestamp(1_400_000_000_999.9) == 1_400_000_000_999
    assert Tracker.get_timestamp(5) == 5
    with pytest.raises(InvalidTypeError, match="tstamp"):
        Tracker.get_timestamp("1")  # type: ignore[arg-type]


# -- events ----------------------------------------------------------------------------------


def test_page_view_pairs(sink: ListEmitter) -> None:
    t = Tracker(sink, namespace="cf", app_id="a1", clock=lambda: 1.5)
    t.track_page_view("http://x", "T", "http://r", None, 7)
    (event,) = sink.events
    assert uuid.UUID(event.pop("eid")).version == 4
    assert event == {
        "e": "pv",
        "url": "http://x",
        "page": "T",
        "refr": "http://r",
        "ttm": "7",  # tstamp is the true timestamp (1.x); dtm is the device time of the call
        "dtm": "1500",
        "tv": "py-" + __version__,
        "tna": "cf",
        "aid": "a1",
        "p": "pc",
    }


def test_absent_optional_fields_are_left_out(sink: ListEmitter) -> None:
    Tracker(sink).track_page_view("http://x")
    assert set(sink.events[0]) == {"e", "url", "eid", "dtm", "tv", "p"}


def test_struct_event_pairs(sink: ListEmitter) -> None:
    Tracker(sink).track_struct_event("shop", "buy", "red", "size", 13.99)
    event = sink.events[0]
    assert (event["se_ca"], event["se_ac"], event["se_la"], event["se_pr"], event["se_va"]) == (
        "shop",
        "buy",
        "red",
        "size",
        "13.99",
    )
    assert event["e"] == "se"


def test_struct_event_value_zero_is_sent(sink: ListEmitter) -> None:
    Tracker(sink).track_struct_event("c", "a", value=0)
    assert sink.events[0]["se_va"] == "0"


@pytest.mark.parametrize("encode", [True, False])
def test_unstruct_event_wrapping(sink: ListEmitter, encode: bool) -> None:
    inner = {"schema": LINK, "data": {"targetUrl": "http://ü"}}
    Tracker(sink, encode_base64=encode).track_unstruct_event(inner, CTX)
    event = sink.events[0]
    key, ctx_key = ("ue_px", "cx") if encode else ("ue_pr", "co")
    assert not {"ue_pr", "co"} & set(event) if encode else not {"ue_px", "cx"} & set(event)
    load = decode if encode else json.loads
    assert load(event[key]) == {"schema": UNSTRUCT_EVENT_SCHEMA, "data": inner}
    assert load(event[ctx_key]) == {"schema": CONTEXT_SCHEMA, "data": CTX}


def test_self_describing_json_objects_are_accepted(sink: ListEmitter) -> None:
    t = Tracker(sink, encode_base64=False)
    t.track_self_describing_event(
        SelfDescribingJson(LINK, {"targetUrl": "http://a"}), [SelfDescribingJson(PAGE, {"id": "b"})]
    )
    event = sink.events[0]
    assert json.loads(event["ue_pr"])["data"] == {"schema": LINK, "data": {"targetUrl": "http://a"}}
    assert json.loads(event["co"])["data"] == [{"schema": PAGE, "data": {"id": "b"}}]


def test_self_describing_json_helpers() -> None:
    sdj = SelfDescribingJson(PAGE, {"id": "é"})
    assert sdj.to_json() == {"schema": PAGE, "data": {"id": "é"}}
    assert json.loads(sdj.to_string()) == sdj.to_json()
    assert sdj == SelfDescribingJson(PAGE, {"id": "é"})
    assert sdj != SelfDescribingJson(PAGE, {"id": "x"})
    assert sdj != "x"
    assert "web_page" in repr(sdj)


@pytest.mark.parametrize(
    ("args", "data"),
    [(("title screen",), {"name": "title screen"}), ((None, "s1"), {"id": "s1"})],
)
def test_screen_view(sink: ListEmitter, args: tuple[Any, ...], data: dict[str, str]) -> None:
    Tracker(sink, encode_base64=False).track_screen_view(*args)
    wrapper = json.loads(sink.events[0]["ue_pr"])
    assert wrapper["data"] == {
        "schema": "iglu:com.snowplowanalytics.snowplow/screen_view/jsonschema/1-0-0",
        "data": data,
    }


def test_transaction_with_items(sink: ListEmitter) -> None:
    items = [
        {"sku": "pbz0026", "price": 20, "quantity": 1},
        {"sku": "pbz0038", "price": 15.5, "quantity": 2, "name": "crystals", "category": "magic"},
    ]
    snapshot = [dict(item) for item in items]
    Tracker(sink).track_ecommerce_transaction(
        "6a8078be", 35, "affiliation", 6.12, 30, "Phoenix", "Arizona", "USA", "USD", items, CTX
    )
    assert items == snapshot  # the caller's dicts are untouched
    tr, ti1, ti2 = sink.events
    assert (tr["e"], tr["tr_id"], tr["tr_tt"], tr["tr_af"], tr["tr_tx"], tr["tr_sh"]) == (
        "tr",
        "6a8078be",
        "35",
        "affiliation",
        "6.12",
        "30",
    )
    assert (tr["tr_ci"], tr["tr_st"], tr["tr_co"], tr["tr_cu"]) == (
        "Phoenix",
        "Arizona",
        "USA",
        "USD",
    )
    assert ti1["e"] == ti2["e"] == "ti"
    assert (ti2["ti_id"], ti2["ti_sk"], ti2["ti_nm"], ti2["ti_ca"]) == (
        "6a8078be",
        "pbz0038",
        "crystals",
        "magic",
    )
    assert (ti2["ti_pr"], ti2["ti_qu"], ti2["ti_cu"]) == ("15.5", "2", "USD")
    assert tr["dtm"] == ti1["dtm"] == ti2["dtm"]
    assert len({tr["eid"], ti1["eid"], ti2["eid"]}) == 3
    assert tr["cx"] == ti1["cx"] == ti2["cx"]


def test_item_context_overrides_the_transactions(sink: ListEmitter) -> None:
    own = [{"schema": PAGE, "data": {"id": "item"}}]
    Tracker(sink, encode_base64=False).track_ecommerce_transaction(
        "o", 1, items=[{"sku": "s", "price": 1, "quantity": 1, "context": own}], context=CTX
    )
    assert json.loads(sink.events[1]["co"])["data"] == own
    assert json.loads(sink.events[0]["co"])["data"] == CTX


@pytest.mark.parametrize("items", [None, []])
def test_transaction_without_items(sink: ListEmitter, items: Any) -> None:
    Tracker(sink).track_ecommerce_transaction("o", 10, items=items)
    assert [e["e"] for e in sink.events] == ["tr"]


def test_transaction_item_directly(sink: ListEmitter) -> None:
    Tracker(sink).track_ecommerce_transaction_item("o", "sku", 7.99, 3, "n", "c", "EUR", tstamp=9)
    event = sink.events[0]
    assert (event["ti_sk"], event["ti_pr"], event["ti_qu"]) == ("sku", "7.99", "3")
    assert event["ttm"] == "9"


def test_every_track_method_returns_the_tracker(sink: ListEmitter) -> None:
    t = Tracker(sink)
    chained = (
        t.track_screen_view("title screen")
        .track_struct_event("products", "viewed product", "magenta paint")
        .track_page_view("http://x")
        .track_unstruct_event({"schema": LINK, "data": {"targetUrl": "http://a"}})
        .track_ecommerce_transaction("o", 1)
        .track_ecommerce_transaction_item("o", "s", 1, 1)
        .set_subject(Subject())
        .add_emitter(ListEmitter())
        .flush()
    )
    assert chained is t


def test_subject_pairs_are_attached_and_switchable(sink: ListEmitter) -> None:
    t = Tracker(sink)
    t.set_subject(Subject().set_platform("srv").set_user_id("u1"))
    t.track_page_view("http://x")
    t.set_subject(Subject().set_platform("mob").set_user_id("u2"))
    t.track_page_view("http://x")
    assert [(e["p"], e["uid"]) for e in sink.events] == [("srv", "u1"), ("mob", "u2")]


def test_every_emitter_gets_the_same_finished_event() -> None:
    a, b = ListEmitter(), ListEmitter()
    Tracker([a, b]).track_page_view("http://x")
    assert a.given[0] is b.given[0]  # the same finished event, as 1.x hands it


def test_flush_sync_and_async() -> None:
    recorder = FlushRecorder()
    t = Tracker([recorder, ListEmitter()])  # the second has no flush at all
    t.flush()
    t.flush(True)
    t.flush(is_async=True)
    t.flush(is_async=False)
    assert recorder.calls == ["sync_flush", "flush", "flush", "sync_flush"]


def test_flush_falls_back_to_flush_without_sync_flush() -> None:
    class OnlyFlush(ListEmitter):
        flushed = 0

        def flush(self) -> None:
            self.flushed += 1

    emitter = OnlyFlush()
    Tracker(emitter).flush()
    assert emitter.flushed == 1


def test_flush_passes_what_is_left_of_its_timeout_to_emitters_that_take_one() -> None:
    class Timed(ListEmitter):
        timeouts: ClassVar[list[float | None]] = []

        def sync_flush(self, timeout: float | None = None) -> bool:
            self.timeouts.append(timeout)
            return True

    class Untimed(ListEmitter):
        flushed = 0

        def sync_flush(self) -> None:
            self.flushed += 1

    untimed = Untimed()
    t = Tracker([Timed(), untimed, Timed()])
    t.flush(timeout=5)
    t.flush()
    first, second, *untimed_calls = Timed.timeouts
    assert 0 < second <= first <= 5  # one deadline for the whole call
    assert untimed_calls == [None, None]
    assert untimed.flushed == 2
    with pytest.raises(InvalidTypeError, match="timeout"):
        t.flush(timeout="5")  # type: ignore[arg-type]


def test_flush_with_a_timeout_calls_an_emitter_without_a_signature_plainly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Plain(ListEmitter):
        flushed = 0

        def sync_flush(self) -> None:
            self.flushed += 1

    def no_signature(obj: Any) -> Any:
        raise ValueError("no signature found for builtin")

    emitter = Plain()
    monkeypatch.setattr("inspect.signature", no_signature)
    Tracker(emitter).flush(timeout=1)
    assert emitter.flushed == 1


def test_flush_with_a_timeout_leaves_retrying_events_queued(collector: Collector) -> None:
    """Against a collector that fails, an AsyncEmitter's flush waits until the retries run
    out (here: the first after 5 s); with a timeout, Tracker.flush returns first."""
    collector.respond_with(503)
    retry = RetryPolicy(backoff_base=5, jitter=False)
    emitter = AsyncEmitter(collector.endpoint, method="post", retry=retry)
    t = Tracker(emitter)
    for n in range(3):
        t.track_page_view(f"http://x/{n}")
    assert t.flush(timeout=0.2) is t
    stats = emitter.stats()
    assert (stats.sent, stats.failed) == (0, 0)
    assert stats.queued + stats.in_flight == 3  # still being retried, not given up
    emitter.close(timeout=0)


def test_eids_are_unique_per_event(sink: ListEmitter) -> None:
    t = Tracker(sink)
    for _ in range(100):
        t.track_page_view("http://x")
    assert len({e["eid"] for e in sink.events}) == 100
    assert all(re.fullmatch(r"[0-9a-f-]{36}", e["eid"]) for e in sink.events)
