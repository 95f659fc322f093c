"""Compatibility paths: _deliver for the Celery task, _take, Tracker.flush with each emitter,
the asyncio emitter called from synchronous code, and expiry in a spool."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from snowplow_tracker import Emitter, RetryPolicy, SQLiteEventStore, Tracker
from snowplow_tracker.aio import AsyncioEmitter
from snowplow_tracker.collector import Collector
from snowplow_tracker.testing import FakeClock


def test_deliver_sends_a_batch_and_returns_sent_and_unsent(collector: Collector) -> None:
    """Emitter._deliver(batch) -> (sent, unsent), one callback, retries per the policy."""
    calls: list[int] = []
    emitter = Emitter(
        collector.endpoint,
        method="post",
        retry=RetryPolicy(max_attempts=2, jitter=False),
        clock=FakeClock(),
        on_success=calls.append,
    )
    collector.script(503)
    batch = [{"e": "pv", "eid": str(n), "p": "srv", "tv": "py-0.5.0", "url": "x"} for n in range(3)]
    assert emitter._deliver(batch) == (3, [])
    assert calls == [3]
    assert len(collector.requests) == 2
    collector.respond_with(400)
    sent, unsent = emitter._deliver(batch[:1])
    assert (sent, unsent) == (0, batch[:1])
    assert emitter.stats().sent == 3


def test_take_hands_over_what_waits(collector: Collector) -> None:
    emitter = Emitter(collector.endpoint, method="post")
    Tracker(emitter).track_page_view("http://a").track_page_view("http://b")
    assert [event["url"] for event in emitter._take()] == ["http://a", "http://b"]
    assert emitter._take() == []
    assert emitter.stats().queued == 0


def test_tracker_flush_is_async_with_a_sync_emitter_sends(collector: Collector) -> None:
    emitter = Emitter(collector.endpoint, method="post")
    Tracker(emitter).track_page_view("http://a").flush(is_async=True)
    assert len(collector.events) == 1


def test_asyncio_emitter_never_blocks_a_running_loop(collector: Collector) -> None:
    """tracker.flush() inside a loop starts sending and returns; await flush() waits."""
    collector.respond_with(200, delay=0.3)

    async def main() -> None:
        emitter = AsyncioEmitter(collector.endpoint, method="post", buffer_size=50)
        tracker = Tracker(emitter)
        tracker.track_page_view("http://a")
        started = time.monotonic()
        tracker.flush()
        assert time.monotonic() - started < 0.25
        with pytest.raises(RuntimeError, match="aclose"):
            emitter.close()
        assert await emitter.flush(10) is True
        assert len(collector.events) == 1
        await emitter.aclose()

    asyncio.run(main())


def test_asyncio_emitter_outside_a_loop_sends_synchronously(collector: Collector) -> None:
    emitter = AsyncioEmitter(collector.endpoint, method="post", buffer_size=50)
    Tracker(emitter).track_page_view("http://a").flush()
    assert len(collector.events) == 1
    assert emitter.close(1) is True


def test_asyncio_emitter_input_from_another_thread(collector: Collector) -> None:
    """input() from a thread that is not the loop's wakes the sending task safely."""
    import threading

    async def main() -> None:
        emitter = AsyncioEmitter(collector.endpoint, method="post", buffer_size=2)
        tracker = Tracker(emitter)
        tracker.track_page_view("http://first")  # starts the task in this loop
        other = threading.Thread(target=lambda: tracker.track_page_view("http://second"))
        other.start()
        other.join()
        while len(collector.events) < 2:
            await asyncio.sleep(0.01)
        await emitter.aclose(5)

    asyncio.run(asyncio.wait_for(main(), 20))
    assert len(collector.events) == 2


def test_old_spooled_events_expire_and_are_counted(tmp_path: Path, collector: Collector) -> None:
    path = tmp_path / "spool.db"
    store = SQLiteEventStore(path, wall_clock=lambda: 0.0)
    store.add({"e": "pv", "eid": "old"}, 10)
    store.close()
    emitter = Emitter(
        collector.endpoint, method="post", event_store=SQLiteEventStore(path, max_age=3600)
    )
    assert emitter.stats().dropped["expired"] == 1
    assert emitter.close(1) is True
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0


@pytest.mark.parametrize("kind", ["sync", "thread"])
def test_flush_inside_a_callback_does_not_deadlock(collector: Collector, kind: str) -> None:
    """The 0.5.0 retry recipe: on_failure puts the events back and flushes again."""
    from snowplow_tracker import AsyncEmitter

    collector.script(500)
    attempts: list[int] = []
    emitter: Emitter

    def on_failure(sent: int, unsent: list[dict[str, str]]) -> None:
        attempts.append(len(unsent))
        if len(attempts) == 1:
            for event in unsent:
                emitter.input(event)
            emitter.flush()

    cls = Emitter if kind == "sync" else AsyncEmitter
    emitter = cls(
        collector.endpoint,
        method="post",
        buffer_size=50,
        on_failure=on_failure,
        retry=RetryPolicy.never(),
    )
    Tracker(emitter).track_page_view("http://a").track_page_view("http://b")
    assert emitter.flush(timeout=10) is True
    assert emitter.flush(timeout=10) is True
    assert attempts == [2]
    assert len(collector.events) == 2
    emitter.close(1)
