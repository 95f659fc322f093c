"""The bounded queue: overflow policies, drop accounting, rate-limited warnings, byte batches."""

from __future__ import annotations

import logging
import time

import pytest
from delivery_support import Harness, eids_of

from snowplow_tracker import AsyncEmitter, Tracker
from snowplow_tracker.collector import Collector
from snowplow_tracker.exceptions import InvalidValueError
from snowplow_tracker.testing import FakeClock

# A batch size the queue never reaches, so nothing is sent until flush().
HOLD = {"method": "post", "buffer_size": 1000, "flush_interval": None, "max_queue_size": 5}


def test_drop_oldest_keeps_the_newest(harness: Harness, collector: Collector) -> None:
    harness.make(collector.endpoint, overflow="drop_oldest", **HOLD)
    eids = harness.track(8)
    assert harness.stats().dropped["queue_full"] == 3
    assert harness.calls.failed_eids() == eids[:3]
    assert harness.flush(timeout=10) is True
    assert eids_of(collector) == eids[3:]
    assert harness.stats().failed == 3


def test_drop_newest_keeps_the_oldest(harness: Harness, collector: Collector) -> None:
    harness.make(collector.endpoint, overflow="drop_newest", **HOLD)
    eids = harness.track(8)
    assert harness.calls.failed_eids() == eids[5:]
    assert harness.flush(timeout=10) is True
    assert eids_of(collector) == eids[:5]
    assert harness.stats().as_dict()["dropped"]["queue_full"] == 3


def test_block_waits_then_drops_the_newest(collector: Collector) -> None:
    emitter = AsyncEmitter(collector.endpoint, overflow="block", block_timeout=0.05, **HOLD)  # type: ignore[arg-type]
    tracker = Tracker(emitter)
    started = time.monotonic()
    for _ in range(6):
        tracker.track_page_view("http://example.com")
    assert time.monotonic() - started >= 0.05  # the sixth waited for room
    assert emitter.stats().dropped["queue_full"] == 1
    assert emitter.close(5) is True
    assert len(collector.events) == 5


def test_asyncio_emitter_refuses_to_block(collector: Collector) -> None:
    from snowplow_tracker.aio import AsyncioEmitter

    with pytest.raises(InvalidValueError):
        AsyncioEmitter(collector.endpoint, overflow="block")


def test_drop_warnings_are_rate_limited(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    """50 drops in one interval log one warning; the next interval logs one summary."""
    clock = FakeClock()
    emitter = AsyncEmitter(collector.endpoint, overflow="drop_newest", clock=clock, **HOLD)  # type: ignore[arg-type]
    tracker = Tracker(emitter)
    caplog.set_level(logging.WARNING, logger="snowplow_tracker")
    for _ in range(55):
        tracker.track_page_view("http://example.com")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    clock.advance(11)
    tracker.track_page_view("http://example.com")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "50 queue_full" in warnings[1]
    assert emitter.stats().dropped["queue_full"] == 51
    emitter.close(5)


def test_too_large_events_are_dropped(harness: Harness, collector: Collector) -> None:
    harness.make(collector.endpoint, method="post", max_event_bytes=50)
    eids = harness.track(2)
    assert harness.stats().dropped["too_large"] == 2
    assert harness.calls.failed_eids() == eids
    assert harness.flush(timeout=5) is True
    assert collector.requests == []


def test_batches_respect_the_byte_limit(harness: Harness, collector: Collector) -> None:
    harness.make(collector.endpoint, method="post", buffer_size=40, byte_limit=1500)
    eids = harness.track(40)
    assert harness.flush(timeout=10) is True
    assert sorted(eids_of(collector)) == sorted(eids)
    assert len(collector.requests) > 1
    assert all(len(request.body) <= 1500 for request in collector.requests)
