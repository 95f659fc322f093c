"""The request scope: a subject per thread or asyncio task, merged by the Tracker on every event."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from snowplow_tracker import Emitter, InvalidTypeError, InvalidValueError, Subject, Tracker
from snowplow_tracker.collector import Collector
from snowplow_tracker.scope import current_fields, current_subject, tracker_scope

from .conftest import ListEmitter

SID = "c6ef3124-b53a-4b13-a233-0088f79dcbcb"


def app_tracker(emitter: Any) -> Tracker:
    app = Subject().set_platform("srv").set_timezone("Europe/London").set_user_id("app")
    return Tracker(emitter, app, namespace="ns", app_id="shop")


def test_the_scope_subject_wins_over_the_trackers_field_by_field(sink: ListEmitter) -> None:
    tracker = app_tracker(sink)
    with tracker_scope(Subject().set_user_id("u-1").set_ip_address("203.0.113.1")) as subject:
        tracker.track_struct_event("c", "a")
        subject.set_domain_session_id(SID)  # changed later in the request: later events see it
        tracker.track_struct_event("c", "b")
    tracker.track_struct_event("c", "c")
    first, second, after = sink.events
    assert {k: first[k] for k in ("p", "tz", "uid", "ip")} == {
        "p": "srv",  # Subject()'s default platform does not replace the tracker's
        "tz": "Europe/London",
        "uid": "u-1",
        "ip": "203.0.113.1",
    }
    assert "sid" not in first and second["sid"] == SID
    assert after["uid"] == "app" and "ip" not in after and "sid" not in after


def test_a_platform_set_on_purpose_wins(sink: ListEmitter) -> None:
    with tracker_scope(Subject().set_platform("web")):
        app_tracker(sink).track_page_view("http://example.com/")
    assert sink.events[0]["p"] == "web"


def test_scopes_nest_and_restore(sink: ListEmitter) -> None:
    tracker = app_tracker(sink)
    with tracker_scope(fields={"uid": "outer", "ip": "203.0.113.1"}):
        with tracker_scope(fields={"uid": "inner", "vid": 2}):
            assert current_fields() == {"uid": "inner", "ip": "203.0.113.1", "vid": "2"}
            tracker.track_struct_event("c", "inner")
        tracker.track_struct_event("c", "outer")
    assert current_fields() == {} and current_subject() is None
    inner, outer = sink.events
    assert (inner["uid"], inner["ip"], inner["vid"]) == ("inner", "203.0.113.1", "2")
    assert (outer["uid"], outer["ip"], "vid" in outer) == ("outer", "203.0.113.1", False)


def test_the_string_path_of_our_emitters_carries_the_scope(collector: Collector) -> None:
    emitter = Emitter(collector.endpoint, method="post", buffer_size=1)
    tracker = app_tracker(emitter)
    for user in ("a", "b", "a"):
        with tracker_scope(fields={"uid": user, "sid": SID}):
            tracker.track_struct_event("c", user)
    tracker.track_struct_event("c", "none")
    emitter.flush()
    events = collector.wait_for(4)
    assert [(e.raw["se_ac"], e.raw["uid"], e.raw.get("sid")) for e in events] == [
        ("a", "a", SID),
        ("b", "b", SID),
        ("a", "a", SID),
        ("none", "app", None),
    ]
    assert all(e.valid for e in events)


def test_a_subclass_complete_payload_sees_the_scope(sink: ListEmitter) -> None:
    class Custom(Tracker):
        def complete_payload(self, event: Any, context: Any = None, tstamp: Any = None) -> Any:
            return super().complete_payload(event, context, tstamp)

    with tracker_scope(fields={"uid": "u-9"}):
        Custom(sink).track_struct_event("c", "a")
    assert sink.events[0]["uid"] == "u-9"


def test_bad_scopes_fail_at_the_call() -> None:
    with pytest.raises(InvalidValueError, match="fields"), tracker_scope(fields={"user": "x"}):
        pass
    with pytest.raises(InvalidTypeError, match="uid"), tracker_scope(fields={"uid": None}):
        pass
    with pytest.raises(InvalidTypeError, match="subject"), tracker_scope("u-1"):  # type: ignore[arg-type]
        pass
    with pytest.raises(TypeError, match="not both"), tracker_scope(Subject(), fields={}):
        pass
    assert current_subject() is None


def test_set_subject_per_request_leaks_and_the_scope_does_not(sink: ListEmitter) -> None:
    """The README's old pattern, in the interleaving a threaded server produces: request A
    sets its subject, request B sets its own, then A tracks. With set_subject A's event
    carries B's user (the leak of the issue); with the scope it carries A's."""
    tracker = Tracker(sink)

    def requests(set_user: Any) -> list[str]:
        sink.events.clear()
        a_has_set, b_has_set = threading.Event(), threading.Event()

        def request_a() -> None:
            with set_user("user-a"):
                a_has_set.set()
                assert b_has_set.wait(5)
                tracker.track_struct_event("req", "a")

        def request_b() -> None:
            with set_user("user-b"):
                b_has_set.set()
                tracker.track_struct_event("req", "b")

        thread_a = threading.Thread(target=request_a)
        thread_a.start()
        assert a_has_set.wait(5)
        thread_b = threading.Thread(target=request_b)
        thread_b.start()
        thread_a.join()
        thread_b.join()
        return sorted(f"{e['se_ac']}:{e['uid']}" for e in sink.events)

    class OldPattern:
        def __init__(self, user: str) -> None:
            self.user = user

        def __enter__(self) -> None:
            tracker.set_subject(Subject().set_user_id(self.user))

        def __exit__(self, *exc: object) -> None:
            pass

    assert requests(OldPattern) == ["a:user-b", "b:user-b"]  # the leak
    assert requests(lambda user: tracker_scope(fields={"uid": user})) == ["a:user-a", "b:user-b"]


def test_asyncio_tasks_each_see_their_own_scope(sink: ListEmitter) -> None:
    tracker = Tracker(sink)

    async def handle(user: str) -> None:
        with tracker_scope(fields={"uid": user}):
            await asyncio.sleep(0)  # every other request runs here
            tracker.track_struct_event("req", user)
            await asyncio.sleep(0)
            tracker.track_struct_event("req", user)

    async def serve() -> None:
        await asyncio.gather(*(handle(f"user-{i}") for i in range(50)))

    asyncio.run(serve())
    assert len(sink.events) == 100
    assert all(e["uid"] == e["se_ac"] for e in sink.events)


def test_a_new_thread_starts_outside_the_scope_unless_given_the_context(
    sink: ListEmitter,
) -> None:
    import contextvars

    tracker = Tracker(sink)
    with tracker_scope(fields={"uid": "u-1"}):
        plain = threading.Thread(target=tracker.track_struct_event, args=("c", "plain"))
        context = contextvars.copy_context()
        copied = threading.Thread(target=context.run, args=(tracker.track_struct_event, "c", "x"))
        for thread in (plain, copied):
            thread.start()
            thread.join()
    assert [e.get("uid") for e in sink.events] == [None, "u-1"]


def test_a_scope_object_opens_once() -> None:
    scope = tracker_scope(fields={"uid": "u-1"})
    with scope, pytest.raises(RuntimeError, match="already open"), scope:
        pass
    assert current_subject() is None
