"""POST events queued once serialised: exact round trips, batches that fill one POST, and
concurrent producers and AsyncEmitter workers coalescing what is queued into few requests."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from snowplow_tracker import AsyncEmitter, Emitter, MemoryEventStore, Tracker, payload
from snowplow_tracker._queue import DeliveryCore
from snowplow_tracker.collector import Collector
from snowplow_tracker.emitters import MAX_BATCH_EVENTS, post_body, split_batch
from snowplow_tracker.event_store import decode_record, encode_record
from snowplow_tracker.testing import FakeClock

TRICKY = [
    {"e": "pv", "eid": "1", "url": "http://a.b/?q=1&r=2", "page": 'quote " and back\\slash'},
    {"e": "se", "se_ca": "naïve café ☕ 𝄞", "se_ac": "tab\tnewline\ncr\rnul\x00", "eid": "2"},
    {"e": "ue", "ue_pr": '{"schema":"iglu:x/y/jsonschema/1-0-0","data":{}}', "eid": "3"},
    {"eid": "4", "e": "pv", "line_sep": "\u2028\u2029", "slash": "</script>"},
]


@pytest.mark.parametrize("event", TRICKY)
def test_a_record_round_trips_its_event_exactly(event: dict[str, str]) -> None:
    record = encode_record(event)
    assert type(record) is bytes
    back = decode_record(record)
    assert back == event
    assert list(back) == list(event)  # key order too
    assert json.loads(record + b"}") == event


@pytest.mark.parametrize(
    "event",
    [{}, {"e": "pv", "stm": "1"}, {"e": "pv", "bad": "lone \ud800 surrogate"}],
    ids=["empty", "has-stm", "lone-surrogate"],
)
def test_events_without_a_compact_form_stay_dicts(event: dict[str, str]) -> None:
    assert encode_record(event) is event
    store = MemoryEventStore()
    store.add_record(encode_record(event), 10)
    ((_, back),) = store.take(5, None)
    assert back is event


@pytest.mark.parametrize("event", TRICKY)
def test_records_are_the_same_without_orjson(
    event: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with_orjson = encode_record(event)
    monkeypatch.setattr(payload, "use_orjson", False)
    assert encode_record(event) == with_orjson


def test_memory_store_byte_bound_evicts_the_oldest_as_dicts(collector: Collector) -> None:
    """A memory store's max_bytes counts each record's exact size and hands back dicts."""
    failed: list[dict[str, str]] = []
    events = [{"e": "pv", "eid": str(n), "url": "x" * 50} for n in range(5)]
    size = len(encode_record(events[0])) + 1
    emitter = Emitter(
        collector.endpoint,
        method="post",
        buffer_size=100,
        event_store=MemoryEventStore(max_bytes=3 * size),
        on_failure=lambda sent, unsent: failed.extend(unsent),
    )
    for event in events:
        emitter.input(event)
    assert failed == events[:2]
    assert emitter.stats().dropped["queue_full"] == 2
    assert emitter.buffer == events[2:]
    assert emitter.flush() is True
    (request,) = collector.requests
    assert [e["eid"] for e in json.loads(request.body)["data"]] == ["2", "3", "4"]
    emitter.close()


def test_memory_store_round_trips_records_and_dicts_in_order() -> None:
    store = MemoryEventStore()
    events = [*TRICKY, {"e": "pv", "stm": "5", "eid": "5"}, {"e": "pv", "eid": "6"}]
    for event in events:
        record = encode_record(event)
        size = len(record) + 1 if type(record) is bytes else 50
        store.add_record(record, size)
    assert store.peek() == events
    first = store.take(3, None)
    rest = store.take(10, None)
    store.release([key for key, _ in first])  # back to the head, in order
    assert [e for _, e in store.take(10, None)] == events[:3]
    assert [e for _, e in rest] == events[3:]
    assert len(store) == 0 and store.nbytes == 0


def test_release_between_batches_keeps_keys_and_order() -> None:
    store = MemoryEventStore()
    for n in range(10):
        store.add_record(encode_record({"eid": str(n)}), 20)
    a = store.take(3, None)
    b = store.take(3, None)
    store.release([key for key, _ in a])
    store.ack([key for key, _ in b])
    store.add_record(encode_record({"eid": "10"}), 20)
    taken = store.take(100, None)
    assert [e["eid"] for _, e in taken] == ["0", "1", "2", "6", "7", "8", "9", "10"]
    assert len({key for key, _ in taken}) == 8  # keys stay unique
    assert [e["eid"] for e in store.evict_oldest(3)] == []


def test_take_records_fits_one_post_body() -> None:
    store = MemoryEventStore()
    records = [encode_record({"e": "pv", "eid": f"{n:04}"}) for n in range(100)]
    for record in records:
        store.add_record(record, len(record) + 1)
    per_event = len(records[0]) + 1 + 23
    keys, taken = store.take_records(100, 10 * per_event, 23)
    assert len(keys) == 10
    assert taken == records[:10]
    _, taken = store.take_records(100, 1, 23)  # always at least one
    assert taken == records[10:11]


def test_post_body_from_records_matches_the_dict_path() -> None:
    events = [*TRICKY, {"e": "pv", "stm": "old", "eid": "5"}]
    records = [encode_record(event) for event in events]
    from_records = json.loads(post_body(records, "1700000000000"))
    from_dicts = json.loads(post_body(events, "1700000000000"))
    assert from_records == from_dicts
    assert [e["stm"] for e in from_records["data"]] == ["1700000000000"] * len(events)
    assert from_records["data"][0] == {**events[0], "stm": "1700000000000"}


def test_split_batch_keeps_record_bodies_within_the_limit() -> None:
    records = [encode_record({"e": "pv", "eid": str(n), "url": "x" * (n % 50)}) for n in range(300)]
    for limit in (400, 2_000, 10_000):
        chunks = split_batch(records, limit)
        assert [r for chunk in chunks for r in chunk] == records
        for chunk in chunks:
            assert len(chunk) == 1 or len(post_body(chunk, "1700000000000")) <= limit


def test_unsent_events_reach_on_failure_as_the_dicts_tracked(collector: Collector) -> None:
    """Failures hand back plain dicts, equal to what was tracked (not the compact bytes)."""
    collector.respond_with(400)
    failures: list[Any] = []
    emitter = Emitter(
        collector.endpoint,
        method="post",
        buffer_size=50,
        on_failure=lambda sent, unsent: failures.append((sent, unsent)),
    )
    for event in TRICKY:
        emitter.input(event)
    emitter.flush()
    ((sent, unsent),) = failures
    assert sent == 0
    assert unsent == TRICKY
    assert all(type(event) is dict for event in unsent)
    emitter.close(0)


def test_queue_full_drops_hand_back_dicts(dead_endpoint: str) -> None:
    failed: list[dict[str, str]] = []
    emitter = Emitter(
        dead_endpoint,
        method="post",
        buffer_size=1000,
        max_queue_size=2,
        on_failure=lambda sent, unsent: failed.extend(unsent),
    )
    for event in TRICKY:
        emitter.input(event)
    assert failed == TRICKY[:2]  # drop_oldest
    assert emitter.buffer == TRICKY[2:]
    emitter.close(0)


def test_async_worker_coalesces_queued_events_into_full_posts(collector: Collector) -> None:
    """While the worker is busy, a backlog builds; it then goes out in few full POSTs, in order."""
    release, blocked = threading.Event(), threading.Event()

    def hold_first_batch(count: int) -> None:
        if not blocked.is_set():
            blocked.set()
            release.wait(30)  # the worker thread waits here while we queue

    limit = 6_000
    emitter = AsyncEmitter(
        collector.endpoint,
        method="post",
        buffer_size=10,
        byte_limit=limit,
        on_success=hold_first_batch,
        max_queue_size=5_000,
    )
    tracker = Tracker(emitter, namespace="co")
    for n in range(10):
        tracker.track_struct_event("c", "a", value=n)
    assert blocked.wait(30)
    for n in range(10, 1010):
        tracker.track_struct_event("c", "a", value=n)
    release.set()
    assert emitter.flush(timeout=60) is True
    assert [e.raw["se_va"] for e in collector.events] == [str(n) for n in range(1010)]
    posts = [r for r in collector.requests if r.method == "POST"]
    assert all(len(r.body) <= limit for r in posts)
    sizes = [len(json.loads(r.body)["data"]) for r in posts]
    assert max(sizes) <= MAX_BATCH_EVENTS
    # 1000 queued events of ~200 bytes fill 6 000-byte POSTs: about 35 requests, not 100.
    backlog = sum(len(r.body) for r in posts[1:])
    assert len(posts) - 1 <= backlog // (limit - 1_000) + 1
    assert emitter.stats().sent == 1010
    emitter.close()


def test_coalescing_stops_for_a_flush_a_full_post_or_close() -> None:
    """The worker lets a ready batch grow only while nobody waits and no POST is full yet."""
    core = DeliveryCore(
        MemoryEventStore(),
        batch_size=1,
        byte_limit=1_000,
        max_queue_size=100,
        overflow="drop_oldest",
        block_timeout=0,
        flush_interval=None,
        clock=FakeClock(),
        report=lambda sent, failed: None,
        compact=True,
    )
    core.add({"e": "pv", "eid": "0"})
    body = (1_000 - 80, 23)
    with core.lock:
        assert core.ready() and core.can_grow(500, body)
        assert not core.can_grow(1, body)  # the count limit is reached
    core.request_flush()
    with core.lock:
        assert not core.can_grow(500, body)
        batch = core.take(500, body)
    assert batch is not None and len(batch.events) == 1
    for n in range(30):  # 44 bytes each in a body: 30 are more than a 920-byte body holds
        core.add({"e": "pv", "eid": f"{n:02}"})
    with core.lock:
        assert not core.can_grow(500, body)
        batch = core.take(500, body)
        assert batch is not None and len(batch.events) == 920 // 44
        assert core.can_grow(500, body)
        core.closing = True
        assert not core.can_grow(500, body)


def test_sync_producers_share_requests_and_lose_nothing(collector: Collector) -> None:
    """Producers that fill a buffer while another thread sends leave it to that thread."""
    emitter = Emitter(collector.endpoint, method="post", buffer_size=10)
    tracker = Tracker(emitter, namespace="co")
    start = threading.Barrier(8)

    def produce(thread: int) -> None:
        start.wait()
        for n in range(500):
            tracker.track_struct_event("c", f"t{thread}", value=n)

    producers = [threading.Thread(target=produce, args=(t,)) for t in range(8)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()
    assert emitter.flush(timeout=60) is True
    events = collector.events
    assert len(events) == 4000
    for thread in range(8):  # each producer's events arrive once
        mine = [e.raw["se_va"] for e in events if e.raw["se_ac"] == f"t{thread}"]
        assert sorted(mine, key=float) == [str(n) for n in range(500)]
    assert emitter.stats().sent == 4000
    emitter.close()


def test_a_full_buffer_is_left_to_the_thread_already_sending(collector: Collector) -> None:
    """Group commit: a producer does not send while another thread's send is under way; that
    thread sends what piled up in one request when its own is done."""
    release, blocked = threading.Event(), threading.Event()

    def hold_first_batch(count: int) -> None:
        if not blocked.is_set():
            blocked.set()
            release.wait(30)  # the first sender is busy (its callback runs in its thread)

    emitter = Emitter(
        collector.endpoint, method="post", buffer_size=10, on_success=hold_first_batch
    )
    tracker = Tracker(emitter, namespace="co")

    def first() -> None:
        for n in range(10):
            tracker.track_struct_event("c", "first", value=n)

    sender = threading.Thread(target=first)
    sender.start()
    assert blocked.wait(30)
    for n in range(100):  # ten full buffers: every call returns without sending
        tracker.track_struct_event("c", "later", value=n)
    assert len(collector.requests) == 1
    assert emitter.stats().queued == 100
    release.set()
    sender.join(30)
    posts = [json.loads(r.body)["data"] for r in collector.requests]
    assert [len(data) for data in posts] == [10, 100]
    assert [e["se_va"] for e in posts[1]] == [str(n) for n in range(100)]
    assert emitter.stats().sent == 110
    emitter.close()


def test_an_event_without_a_compact_form_takes_the_general_path(collector: Collector) -> None:
    """A dict that already carries "stm" stays a dict in the queue, between compact records;
    like every event it is stamped with the time it is sent."""
    emitter = Emitter(collector.endpoint, method="post")
    eids = [Tracker.get_uuid() for _ in range(3)]
    pairs = {"e": "pv", "tv": "py-0.6.0", "p": "srv", "dtm": "1700000000000"}
    emitter.input({**pairs, "url": "http://a.example/", "eid": eids[0]})
    emitter.input({**pairs, "url": "http://b.example/", "eid": eids[1], "stm": "1700000000001"})
    emitter.input({**pairs, "url": "http://c.example/", "eid": eids[2]})
    assert [event["eid"] for event in emitter.buffer] == eids
    emitter.flush()
    emitter.close()
    assert [event["eid"] for event in collector.events] == eids
    assert len({event["stm"] for event in collector.events}) == 1
    assert collector.events[1]["stm"] != "1700000000001"
