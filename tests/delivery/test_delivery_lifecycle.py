"""flush/close bounds, interruptible backoff, input after close, context managers."""

from __future__ import annotations

import asyncio
import gc
import sqlite3
import time
import warnings
from pathlib import Path

import pytest
from delivery_support import Harness, eids_of

from snowplow_tracker import AsyncEmitter, Emitter, RetryPolicy, SQLiteEventStore, Tracker
from snowplow_tracker.aio import AsyncioEmitter
from snowplow_tracker.collector import Collector
from snowplow_tracker.testing import FakeClock

DOWN = RetryPolicy(max_attempts=None, deadline=30.0, backoff_base=0.05, backoff_max=0.2)


def test_collector_down_flush_timeout_is_bounded(harness: Harness, dead_endpoint: str) -> None:
    """flush(timeout=1) returns False within the bound; close() counts every event as dropped."""
    harness.make(dead_endpoint, method="post", retry=DOWN)
    eids = harness.track(5)
    started = time.monotonic()
    assert harness.flush(timeout=1) is False
    assert time.monotonic() - started < 5
    started = time.monotonic()
    assert harness.close(timeout=0.3) is False
    assert time.monotonic() - started < 5
    stats = harness.stats()
    assert stats.failed == 5
    assert stats.dropped["shutdown_timeout"] == 5
    assert stats.sent == 0
    assert stats.retried > 0
    assert sorted(harness.calls.failed_eids()) == sorted(eids)  # each reported once


def test_long_backoff_is_cut_short_by_close(harness: Harness, collector: Collector) -> None:
    """A 30 s backoff does not hold close(timeout=0.3) for 30 s."""
    collector.respond_with(503)
    harness.make(
        collector.endpoint, method="post", retry=RetryPolicy(backoff_base=30, jitter=False)
    )
    harness.track(2)
    if harness.kind != "sync":
        collector.wait_for(0, 0)  # the workers are sending in the background
    started = time.monotonic()
    assert harness.close(timeout=0.3) is False
    assert time.monotonic() - started < 5
    assert harness.stats().dropped["shutdown_timeout"] == 2


def test_input_after_close_is_counted_not_raised(harness: Harness, collector: Collector) -> None:
    harness.make(collector.endpoint, method="post")
    sent = harness.track(2)
    assert harness.close(timeout=5) is True
    late = harness.track(3)
    assert eids_of(collector) == sent
    stats = harness.stats()
    assert stats.dropped["closed"] == 3
    assert harness.calls.failed_eids() == late
    assert harness.close() is True  # a second close is harmless


def test_flush_waits_for_the_outcome(harness: Harness, collector: Collector) -> None:
    harness.make(collector.endpoint, method="post", buffer_size=100)
    eids = harness.track(7)
    assert harness.flush(timeout=10) is True
    assert eids_of(collector) == eids  # arrived before flush returned
    assert harness.calls.log == [("ok", 7)]
    assert harness.flush(timeout=10) is True  # nothing queued: True at once


def test_sync_emitter_keeps_050_flush_semantics(collector: Collector) -> None:
    """The sync Emitter sends in flush() and calls on_failure before returning; no retry."""
    collector.respond_with(500)
    calls: list[tuple[int, int]] = []
    emitter = Emitter(
        collector.endpoint,
        method="post",
        on_failure=lambda n, unsent: calls.append((n, len(unsent))),
    )
    tracker = Tracker(emitter)
    for _ in range(3):
        tracker.track_page_view("http://example.com")
    emitter.flush()
    assert calls == [(0, 3)]
    assert len(collector.requests) == 1


def test_tracker_flush_is_async_returns_at_once(collector: Collector) -> None:
    """Tracker.flush(is_async=True) does not wait on the network; Tracker.flush() does."""
    collector.respond_with(200, delay=0.5)
    emitter = AsyncEmitter(collector.endpoint, method="post", buffer_size=50, flush_interval=None)
    tracker = Tracker(emitter)
    tracker.track_page_view("http://example.com")
    started = time.monotonic()
    tracker.flush(is_async=True)
    assert time.monotonic() - started < 0.4
    tracker.track_page_view("http://example.com/2")
    tracker.flush()
    assert len(collector.events) == 2
    emitter.close()


def test_context_managers_close(collector: Collector) -> None:
    with AsyncEmitter(collector.endpoint, method="post", buffer_size=50) as emitter:
        Tracker(emitter).track_page_view("http://example.com")
    assert len(collector.events) == 1
    assert emitter.stats().sent == 1

    async def main() -> None:
        async with AsyncioEmitter(collector.endpoint, method="post", buffer_size=50) as aio:
            Tracker(aio).track_page_view("http://example.com/aio")

    asyncio.run(main())
    assert len(collector.events) == 2


def test_flush_interval_sends_without_flush(harness: Harness, collector: Collector) -> None:
    """A batch that is not full goes out once it is flush_interval old."""
    harness.make(collector.endpoint, method="post", buffer_size=100, flush_interval=0.05)
    eids = harness.track(3)
    assert [e["eid"] for e in collector.wait_for(3, timeout=10)] == eids


def test_stats_snapshot_is_a_plain_dict() -> None:
    emitter = Emitter("127.0.0.1:9", method="post", clock=FakeClock())
    stats = emitter.stats().as_dict()
    assert stats["queued"] == 0
    assert set(stats["dropped"]) >= {
        "queue_full",
        "too_large",
        "non_retryable_status",
        "retries_exhausted",
        "shutdown_timeout",
    }
    emitter.close(0)


def test_close_timeout_with_a_spool_keeps_events_for_next_time(
    harness: Harness, dead_endpoint: str, tmp_path: Path
) -> None:
    """Unsent events stay in the SQLite spool (counted as spooled), and sending stops."""
    spool = tmp_path / "spool.db"
    harness.make(dead_endpoint, method="post", retry=DOWN, event_store=SQLiteEventStore(spool))
    harness.track(4)
    assert harness.close(timeout=0.3) is False
    stats = harness.stats()
    assert stats.spooled == 4
    assert stats.failed == 0
    assert harness.calls.log == []
    time.sleep(0.2)  # long enough for a runaway retry loop to show in the counters
    assert harness.stats().retried == stats.retried
    with sqlite3.connect(spool) as db:
        assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 4


def test_stats_are_a_readable_immutable_value() -> None:
    emitter = Emitter("127.0.0.1:9", method="post", clock=FakeClock())
    stats = emitter.stats()
    emitter.close(0)
    assert repr(stats).startswith("DeliveryStats(queued=0, in_flight=0, sent=0, retried=0, ")
    assert stats == emitter.stats()
    with pytest.raises(AttributeError):
        stats.sent = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        hash(stats)


async def track_and_flush(tracker: Tracker, emitter: AsyncioEmitter, count: int) -> None:
    for n in range(count):
        tracker.track_struct_event("cat", f"a{n}")
    assert await emitter.flush(10)


def test_asyncio_emitter_used_from_one_asyncio_run_after_another(collector: Collector) -> None:
    """Each asyncio.run() ends its loop and the connections made in it. The next loop gets a
    client of its own: before, its first request went over a dead loop's connection, the answer
    was lost, and the retry sent the events twice."""
    emitter = AsyncioEmitter(collector.endpoint, method="post", buffer_size=100)
    tracker = Tracker(emitter)
    for count in (1, 3, 2):
        asyncio.run(track_and_flush(tracker, emitter, count))
    assert len(collector.events) == 6
    assert (emitter.stats().sent, emitter.stats().retried) == (6, 0)
    emitter.close()


def test_asyncio_emitter_after_a_loop_closed_without_cancelling_it(collector: Collector) -> None:
    """A loop closed with the sending task still pending (no asyncio.run() clean-up)."""
    emitter = AsyncioEmitter(collector.endpoint, method="post", buffer_size=100)
    tracker = Tracker(emitter)
    first = asyncio.new_event_loop()
    first.run_until_complete(track_and_flush(tracker, emitter, 1))
    with warnings.catch_warnings():
        # The abandoned loop's connection can only be closed by the garbage collector, which
        # warns: that is what closing a loop with work pending does, not this package.
        warnings.simplefilter("ignore", ResourceWarning)
        first.close()  # the task is never cancelled: only a loop check can notice
        asyncio.run(track_and_flush(tracker, emitter, 3))
        gc.collect()
    assert len(collector.events) == 4
    assert emitter.stats().retried == 0
    emitter.close()
