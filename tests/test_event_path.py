"""The one event path: every way of tracking an event builds it the same way, once."""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any
from unittest import mock

import pytest

from snowplow_tracker import (
    Emitter,
    InvalidTypeError,
    InvalidValueError,
    Payload,
    SelfDescribingJson,
    Subject,
    Tracker,
    contracts,
    disable_contracts,
    enable_contracts,
    payload,
)
from snowplow_tracker.emitters import as_strings
from snowplow_tracker.events import PageView, StructuredEvent

ENTITY = {"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"type": "tester"}}
EVENT = {"schema": "iglu:com.acme/viewed/jsonschema/2-1-0", "data": {"id": "é", "n": 1}}


class Recorder:
    """A custom emitter: keeps the dicts it is handed (``given``) and, in ``events``,
    each as this package's emitters send it (every value a string)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.given: list[dict[str, Any]] = []

    def input(self, pairs: dict[str, Any]) -> None:
        self.given.append(pairs)
        self.events.append(as_strings(dict(pairs)))


class Overriding(Tracker):
    """A subclass that overrides both steps of the path, calling the originals."""

    calls: list[str]

    def track(self, event: Any) -> Any:
        self.calls = [*getattr(self, "calls", []), "track"]
        return super().track(event)

    def complete_payload(self, event: Any, context: Any = None, tstamp: Any = None) -> Any:
        self.calls = [*getattr(self, "calls", []), "complete_payload"]
        return super().complete_payload(event, context, tstamp)


CALLS = [
    ("track_page_view", ("http://a.b/", "Title", None)),
    ("track_page_view", ("http://a.b/", "", "http://ref/"), {"context": [ENTITY]}),
    ("track_struct_event", ("shop", "buy", "l", "p", 2.5)),
    ("track_struct_event", ("shop", "buy"), {"value": 0, "tstamp": 1_600_000_000_123.9}),
    (
        "track_struct_event",
        ("shop", "buy", "", None, 7),
        {"context": [SelfDescribingJson(**ENTITY)]},
    ),
    ("track_unstruct_event", (EVENT,), {"context": [ENTITY, ENTITY]}),
    ("track_screen_view", ("home", None)),
    ("track_ecommerce_transaction_item", ("o1", "sku", 9.99, 2, None, "cat", "EUR")),
    (
        "track_ecommerce_transaction",
        ("o1", 35, "aff", 2.5, 0, "Paris", None, "FR", "EUR"),
        {"items": [{"sku": "s", "price": 1.5, "quantity": 1}], "context": [ENTITY]},
    ),
]


EID = "00000000-0000-4000-8000-000000000000"


def new_tracker(cls: type[Tracker], emitter: Any, base64: bool, namespace: Any) -> Tracker:
    subject = Subject().set_user_id("u1").set_screen_resolution(10, 20).set_color_depth(24)
    return cls(
        emitter,
        subject,
        namespace=namespace,
        app_id="",
        encode_base64=base64,
        clock=lambda: 1_700_000_000.5,
        id_source=lambda: EID,
    )


def run(cls: type[Tracker], call: tuple[Any, ...], base64: bool, namespace: Any) -> list[Any]:
    """Make one of CALLS on a fresh tracker with a fixed event id and time."""
    recorder = Recorder()
    tracker = new_tracker(cls, recorder, base64, namespace)
    name, args, *rest = call
    getattr(tracker, name)(*args, **(rest[0] if rest else {}))
    return [list(event.items()) for event in recorder.events]


@pytest.fixture(params=[True, False], ids=["contracts", "no-contracts"])
def contract_modes(request: pytest.FixtureRequest) -> Iterator[None]:
    if not request.param:
        disable_contracts()
    yield
    enable_contracts()


@pytest.mark.usefixtures("contract_modes")
@pytest.mark.parametrize("call", CALLS, ids=[c[0] for c in CALLS])
@pytest.mark.parametrize("base64", [True, False])
@pytest.mark.parametrize("namespace", ["ns", None])
def test_overriding_track_and_complete_payload_changes_nothing_sent(
    call: tuple[Any, ...], base64: bool, namespace: Any
) -> None:
    """Both steps are always called: a subclass that wraps them sees every event, and
    what is sent is the same, pair for pair and in order."""
    plain = run(Tracker, call, base64, namespace)
    overridden = run(Overriding, call, base64, namespace)
    assert plain == overridden
    assert plain
    assert all(("tna", None) not in event and ("aid", "") not in event for event in plain)
    wire = [as_strings(dict(event)) for event in plain]
    assert all(type(value) is str for event in wire for value in event.values())


@pytest.mark.parametrize("base64", [True, False])
def test_track_star_event_objects_and_a_0_5_0_payload_send_the_same(base64: bool) -> None:
    context = [ENTITY]
    by_method, by_object, by_payload = Recorder(), Recorder(), Recorder()
    new_tracker(Tracker, by_method, base64, "ns").track_struct_event(
        "shop", "buy", "l", None, 2.5, context, 1_600_000_000_000
    )
    new_tracker(Tracker, by_object, base64, "ns").track(
        StructuredEvent("shop", "buy", "l", None, 2.5, None, context, 1_600_000_000_000)
    )
    pb = Payload({"e": "se", "se_ca": "shop", "se_ac": "buy", "se_la": "l", "se_va": 2.5})
    new_tracker(Tracker, by_payload, base64, "ns").complete_payload(pb, context, 1_600_000_000_000)
    assert by_method.events == by_object.events == by_payload.events
    assert by_method.events[0]["ttm"] == "1600000000000"
    assert by_method.events[0]["dtm"] == "1700000000500"


def test_patched_complete_payload_receives_the_event_object() -> None:
    tracker = Tracker(Recorder(), namespace="ns")
    with mock.patch.object(Tracker, "complete_payload", wraps=tracker.complete_payload) as spy:
        tracker.track_struct_event("shop", "buy", label="x", tstamp=5)
    (event,) = spy.call_args.args
    assert isinstance(event, StructuredEvent)
    assert event.payload.nv_pairs == {"e": "se", "se_ca": "shop", "se_ac": "buy", "se_la": "x"}
    assert event.true_timestamp == 5


def test_patched_track_on_the_instance_is_used() -> None:
    recorder = Recorder()
    tracker = Tracker(recorder)
    with mock.patch.object(tracker, "track") as track:
        tracker.track_page_view("http://a.b/")
    assert isinstance(track.call_args.kwargs["event"], PageView)
    assert recorder.events == []


def test_building_is_pure_and_repeatable() -> None:
    """build_payload changes nothing: the same event builds the same pairs twice, and a
    tracked event object can be tracked again (with a new id)."""
    event = PageView("http://a.b/", context=[ENTITY], true_timestamp=3)
    first = event.build_payload(True, None, Subject()).nv_pairs
    second = event.build_payload(True, None, Subject()).nv_pairs
    assert first == second and first is not second
    assert event.payload.nv_pairs == {"e": "pv", "url": "http://a.b/"}
    recorder = Recorder()
    tracker = Tracker(recorder)
    ids = [tracker.track(event), tracker.track(event)]
    assert ids[0] != ids[1]
    assert [e["eid"] for e in recorder.events] == ids
    assert recorder.events[0]["url"] == recorder.events[1]["url"] == "http://a.b/"


def test_none_and_empty_values_are_left_out_but_zero_and_false_kept() -> None:
    disable_contracts()
    try:
        recorder = Recorder()
        Tracker(recorder).track_struct_event("c", "", label=0, property_=False, value=None)  # type: ignore[arg-type]
    finally:
        enable_contracts()
    event = recorder.events[0]
    assert "se_ac" not in event
    assert "se_va" not in event
    assert event["se_la"] == "0"
    assert event["se_pr"] == "False"


def test_subject_changes_after_tracker_creation_are_sent() -> None:
    recorder = Recorder()
    subject = Subject()
    tracker = Tracker(recorder, subject)
    subject.set_platform("srv")
    subject.standard_nv_pairs["uid"] = ""
    tracker.track_page_view("http://a.b/")
    assert recorder.events[0]["p"] == "srv"
    assert "uid" not in recorder.events[0]


def test_get_uuid_is_a_canonical_lowercase_version_4_uuid() -> None:
    seen = set()
    for _ in range(2000):
        text = Tracker.get_uuid()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        seen.add(text)
    assert len(seen) == 2000
    # Every variant digit appears: the two random bits are really random.
    assert {text[19] for text in seen} == set("89ab")
    # Every other digit position takes every hex value across 2000 UUIDs (made in
    # batches, so a digit placed wrong or copied between UUIDs would show here).
    for place in set(range(36)) - {8, 13, 14, 18, 19, 23}:
        assert {text[place] for text in seen} == set("0123456789abcdef"), place


def test_get_timestamp_uses_time_time() -> None:
    with mock.patch("time.time", return_value=1234.5678):
        assert Tracker.get_timestamp() == 1234567


@pytest.mark.parametrize(
    ("context", "error"),
    [
        ([{**ENTITY, "extra": 1}], InvalidValueError),
        ([{"schema": "iglu:nope", "data": {}}], InvalidValueError),
        ([{"schema": ["unhashable"], "data": {}}], InvalidValueError),
        ([{"schema": ENTITY["schema"]}], InvalidValueError),
        ((ENTITY, "not a dict"), InvalidTypeError),
        (ENTITY, InvalidTypeError),
    ],
)
def test_bad_contexts_are_refused_after_good_ones_were_seen(context: Any, error: type) -> None:
    tracker = Tracker(Recorder())
    tracker.track_struct_event("c", "a", context=[ENTITY])  # now ENTITY's schema is known
    assert contracts.checked_contexts([ENTITY])
    with pytest.raises(error):
        tracker.track_struct_event("c", "a", context=context)


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("", "a"), InvalidValueError),
        (("c", 1), InvalidTypeError),
        (("c", "a", b"l"), InvalidTypeError),
        (("c", "a", None, None, True), InvalidTypeError),
        (("c", "a", None, None, float("inf")), InvalidValueError),
        (("c", "a", None, None, None, None, float("nan")), InvalidValueError),
    ],
)
def test_struct_event_checks_still_refuse_bad_arguments(args: tuple[Any, ...], error: type) -> None:
    with pytest.raises(error):
        Tracker(Recorder()).track_struct_event(*args)


def test_str_subclasses_take_the_full_checks_and_pass() -> None:
    class Name(str):
        pass

    recorder = Recorder()
    Tracker(recorder).track_page_view(Name("http://a.b/"), Name("t"))
    assert recorder.events[0]["url"] == "http://a.b/"


@pytest.fixture(params=[True, False], ids=["orjson", "json"])
def json_mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    if request.param:
        pytest.importorskip("orjson")
        assert payload._load_orjson()
    monkeypatch.setattr(payload, "use_orjson", request.param)
    return bool(request.param)


@pytest.mark.parametrize(
    "value",
    [
        {"e": "se", "dtm": "1700000000000", "se_va": "2.5"},
        {"text": 'é \u2028 "quoted" \\ / \n\t\x01', "emoji": "😀"},
        {"n": [1, -2, 3.25, 49.95, 0.1 + 0.2, True, False, None], "nested": {"a": {}}},
        {"big": 10**30, 1: "int key"},
    ],
)
@pytest.mark.usefixtures("json_mode")
def test_dumps_writes_compact_json_identical_in_both_modes(value: Any) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert payload.dumps(value) == expected


@pytest.mark.usefixtures("json_mode")
def test_floats_in_exponent_form_keep_their_value_in_both_modes() -> None:
    """The one difference in spelling: orjson writes ``1e-7`` (and, before 3.12, ``1e16``)
    where json writes ``1e-07`` and ``1e+16``; the numbers read back are the same."""
    value = {"n": [1e16, 1.5e-7, -2.5e-300, 1.7976931348623157e308]}
    assert json.loads(payload.dumps(value)) == value


@pytest.mark.usefixtures("json_mode")
def test_dumps_errors_and_encoder_are_the_same_in_both_modes() -> None:
    import datetime

    with pytest.raises(InvalidTypeError):
        payload.dumps({"when": datetime.datetime(2020, 1, 2)})
    with pytest.raises(InvalidTypeError):
        payload.dumps({"s": {1}})
    assert payload.dumps({"when": datetime.date(2020, 1, 2)}, str) == '{"when":"2020-01-02"}'


def test_every_emitter_gets_the_same_finished_event() -> None:
    first, second = Recorder(), Recorder()
    Tracker([first, second], namespace="ns").track_struct_event("c", "a")
    assert first.given[0] is second.given[0]  # the same finished event, as 1.x hands it


def test_the_schema_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(contracts, "_VALID_SCHEMAS", set())
    monkeypatch.setattr(contracts, "_MAX_VALID_SCHEMAS", 3)
    tracker = Tracker(Recorder())
    for n in range(10):
        entity = {"schema": f"iglu:com.acme/e{n}/jsonschema/1-0-0", "data": {}}
        tracker.track_struct_event("c", "a", context=[entity])
    assert 1 <= len(contracts._VALID_SCHEMAS) <= 3


class Spy(Emitter):
    """One of this package's emitters, recording the dicts its input() is given."""

    def __init__(self) -> None:
        super().__init__("127.0.0.1:9", method="post")
        self.events: list[dict[str, str]] = []

    def input(self, payload: Any) -> None:
        self.events.append(payload)
        super().input(payload)


def test_emitters_get_the_values_as_tracked_and_ours_make_them_strings_in_place() -> None:
    """The tracker hands every emitter the same dict, numbers as numbers (as 0.5.0 did);
    this package's emitters make each value the string the wire sends, in the dict
    itself, and keep it without copying."""
    recorder, ours = Recorder(), Spy()
    Tracker([recorder, ours]).track_struct_event("c", "a", value=2.5)
    event = recorder.given[0]
    assert event is ours.events[0]
    assert event["se_va"] == "2.5" and type(event["dtm"]) is str
    assert ours.buffer == [event]  # kept, not copied
    raw = {"e": "pv", "url": "http://a.b/", "dtm": 5}
    assert as_strings(raw) is raw and raw == {"e": "pv", "url": "http://a.b/", "dtm": "5"}
    with_none = {"e": "pv", "url": "http://a.b/", "dtm": 5, "skip": None}
    assert as_strings(with_none) == {"e": "pv", "url": "http://a.b/", "dtm": "5"}
    assert with_none["skip"] is None  # the None is left out of a copy, not out of the dict
    for check_text in (True, False):  # the same dicts whether or not text is checked here
        assert as_strings({"a": 1, "b": None}, check_text) == {"a": "1"}
        assert as_strings({"a": 1.5, "b": "x"}, check_text) == {"a": "1.5", "b": "x"}
    assert as_strings({"a": "\ud800"}, check_text=False) == {"a": "\ud800"}
    ours.close()


def test_a_foreign_emitter_alone_gets_numbers_as_numbers() -> None:
    recorder = Recorder()
    Tracker(recorder).track_struct_event("c", "a", value=2.5)
    assert recorder.given[0]["se_va"] == 2.5 and type(recorder.given[0]["dtm"]) is int


def test_an_input_replaced_in_a_subclass_or_on_the_instance_is_called() -> None:
    class OverridingInput(Emitter):
        def input(self, payload: Any) -> None:
            self.seen = dict(payload)

    emitter = OverridingInput("127.0.0.1:9", method="post")
    Tracker(emitter).track_struct_event("c", "a", value=3)
    assert emitter.seen["se_va"] == 3
    plain = Emitter("127.0.0.1:9", method="post")
    with mock.patch.object(plain, "input") as patched:
        Tracker(plain).track_struct_event("c", "a")
    assert patched.call_args.args[0]["se_ca"] == "c"
    assert plain.buffer == []
    emitter.close()
    plain.close()


def test_direct_edits_of_the_standard_pairs_reach_later_events() -> None:
    spy = Spy()
    subject = Subject().set_color_depth(24)
    tracker = Tracker(spy, subject, namespace="ns", app_id="a")
    tracker.track_page_view("http://a.b/")
    subject.standard_nv_pairs["uid"] = "u2"
    tracker.standard_nv_pairs["aid"] = "b"
    tracker.track_page_view("http://a.b/")
    subject.standard_nv_pairs["uid"] = ""
    tracker.set_subject(Subject().set_platform("srv"))
    tracker.track_page_view("http://a.b/")
    first, second, third = spy.events
    assert (first["cd"], first["aid"], "uid" in first) == ("24", "a", False)
    assert (second["uid"], second["aid"]) == ("u2", "b")
    assert (third["p"], "uid" in third, "cd" in third) == ("srv", False, False)
    spy.close()


def test_uuids_are_unique_across_threads() -> None:
    seen: list[list[str]] = []

    def draw() -> None:
        seen.append([Tracker.get_uuid() for _ in range(5_000)])

    threads = [threading.Thread(target=draw) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [u for chunk in seen for u in chunk]
    assert len(set(every)) == len(every) == 40_000


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_never_reuses_its_parents_uuids() -> None:
    """Checked by process id, so even a fork that skips Python's at-fork hooks is safe."""
    Tracker.get_uuid()  # the parent now holds unused UUIDs
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child process
        os.close(read_end)
        os.write(write_end, "\n".join(Tracker.get_uuid() for _ in range(200)).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    parent = {Tracker.get_uuid() for _ in range(200)}
    assert len(child) == 200
    assert not child & parent


@pytest.mark.parametrize("base64", [True, False])
@pytest.mark.parametrize("encoder", [None, str])
def test_json_that_cannot_be_utf_8_is_refused_at_the_call(base64: bool, encoder: Any) -> None:
    """A lone surrogate cannot go on the wire: the call says so, not a send later."""
    emitter = Emitter("127.0.0.1:9", method="post")
    tracker = Tracker(emitter, encode_base64=base64, json_encoder=encoder)
    schema = "iglu:com.acme/x/jsonschema/1-0-0"
    with pytest.raises(InvalidValueError, match="UTF-8"):
        tracker.track_unstruct_event({"schema": schema, "data": {"a": "\ud800"}})
    with pytest.raises(InvalidValueError, match=r"^(co|cx):"):
        tracker.track_page_view(
            "http://a.b/", context=[{"schema": schema, "data": {"b": "\udfff"}}]
        )
    assert emitter.buffer == []
    emitter.close()


def test_several_emitters_get_the_same_dict() -> None:
    first, second, mixed = Spy(), Spy(), Recorder()
    Tracker([first, second, mixed], namespace="ns").track_struct_event("c", "a", value=1.5)
    assert first.events[0] is second.events[0] is mixed.given[0]
    assert mixed.given[0]["se_va"] == "1.5"  # made a string by the first of ours
    first.close()
    second.close()
