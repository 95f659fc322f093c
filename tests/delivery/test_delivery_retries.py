"""Retries against the real loopback collector, for Emitter, AsyncEmitter and AsyncioEmitter."""

from __future__ import annotations

import email.utils
import time
from collections import Counter

import pytest
from delivery_support import Harness, eids_of

from snowplow_tracker import Emitter, RetryPolicy, Tracker
from snowplow_tracker.collector import Collector, Response
from snowplow_tracker.testing import FakeClock

FAST = RetryPolicy(max_attempts=5, deadline=None, backoff_base=0.5, jitter=False)


def test_500s_then_200_delivers_each_event_once(harness: Harness, collector: Collector) -> None:
    """Three 500s, then 200: one batch, four requests, every eid once, one on_success(10)."""
    clock = FakeClock()
    collector.script(500, 500, 503)
    harness.make(collector.endpoint, method="post", buffer_size=100, retry=FAST, clock=clock)
    eids = harness.track(10)
    assert harness.flush(timeout=10) is True
    assert Counter(eids_of(collector)) == Counter(eids)
    assert len(collector.requests) == 4
    assert harness.calls.log == [("ok", 10)]
    assert clock.sleeps == [0.5, 1.0, 2.0]
    stats = harness.stats()
    assert (stats.sent, stats.retried, stats.failed, stats.queued) == (10, 30, 0, 0)


def test_get_retries_keep_order(harness: Harness, collector: Collector) -> None:
    """GET: a retried event is delivered before the ones tracked after it."""
    collector.script(500, Response(503), 200, 502)
    harness.make(collector.endpoint, buffer_size=100, retry=FAST, clock=FakeClock())
    eids = harness.track(4)
    assert harness.flush(timeout=10) is True
    assert eids_of(collector) == eids
    assert len(collector.requests) == 7
    assert harness.stats().retried == 3


def test_retries_exhausted_reported_once(harness: Harness, collector: Collector) -> None:
    """A collector that keeps failing: exactly max_attempts requests, one on_failure."""
    collector.respond_with(500)
    harness.make(
        collector.endpoint,
        method="post",
        buffer_size=100,
        retry=RetryPolicy(max_attempts=3, jitter=False),
        clock=FakeClock(),
    )
    eids = harness.track(5)
    assert harness.flush(timeout=10) is True  # every event reached its final outcome
    assert len(collector.requests) == 3
    assert [entry[:2] for entry in harness.calls.log] == [("fail", 0)]
    assert harness.calls.failed_eids() == eids
    stats = harness.stats()
    assert stats.dropped["retries_exhausted"] == 5
    assert (stats.failed, stats.sent, stats.retried) == (5, 0, 10)


@pytest.mark.parametrize("status", [400, 401, 403, 410, 422])
def test_non_retryable_status_is_final(harness: Harness, collector: Collector, status: int) -> None:
    collector.respond_with(status)
    harness.make(collector.endpoint, method="post", retry=FAST, clock=FakeClock())
    harness.track(3)
    assert harness.flush(timeout=10) is True
    assert len(collector.requests) == 1
    assert harness.stats().dropped["non_retryable_status"] == 3
    assert len(harness.calls.failed_eids()) == 3


def test_status_override_retries_400(harness: Harness, collector: Collector) -> None:
    collector.script(400)
    harness.make(collector.endpoint, method="post", retry=FAST.retrying(400), clock=FakeClock())
    eids = harness.track(2)
    assert harness.flush(timeout=10) is True
    assert eids_of(collector) == eids
    assert len(collector.requests) == 2


def test_payload_too_large_is_counted(harness: Harness, collector: Collector) -> None:
    collector.script(413)
    harness.make(collector.endpoint, method="post", retry=FAST, clock=FakeClock())
    harness.track(2)
    harness.flush(timeout=10)
    assert harness.stats().dropped["too_large"] == 2
    assert len(collector.requests) == 1


def test_429_retry_after_seconds_is_a_floor(harness: Harness, collector: Collector) -> None:
    """429 with Retry-After: 7 -> the next attempt comes at least 7 s later (fake clock)."""
    clock = FakeClock()
    collector.script(Response(429, retry_after="7"))
    policy = RetryPolicy(backoff_base=0.01, jitter=True)
    harness.make(collector.endpoint, method="post", retry=policy, clock=clock)
    eids = harness.track(3)
    assert harness.flush(timeout=10) is True
    assert eids_of(collector) == eids
    assert len(collector.requests) == 2
    assert len(clock.sleeps) == 1
    assert clock.sleeps[0] >= 7.0


def test_429_retry_after_http_date(harness: Harness, collector: Collector) -> None:
    clock = FakeClock()
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    collector.script(Response(429, retry_after=when))
    harness.make(
        collector.endpoint, method="post", retry=RetryPolicy(backoff_base=0.01), clock=clock
    )
    harness.track(1)
    assert harness.flush(timeout=60) is True
    assert 28.0 <= clock.sleeps[0] <= 30.0
    assert len(collector.requests) == 2


def test_retry_after_is_clamped(harness: Harness, collector: Collector) -> None:
    clock = FakeClock()
    collector.script(Response(503, retry_after="3600"))
    policy = RetryPolicy(retry_after_max=20.0, deadline=None)
    harness.make(collector.endpoint, method="post", retry=policy, clock=clock)
    harness.track(1)
    assert harness.flush(timeout=60) is True
    assert clock.sleeps == [20.0]


def test_deadline_bounds_the_retries(harness: Harness, collector: Collector) -> None:
    """With a 10 s budget and a 4 s Retry-After, the third attempt would be late: 3 requests."""
    clock = FakeClock()
    collector.respond_with(503, retry_after="4")
    policy = RetryPolicy(max_attempts=None, deadline=10.0, backoff_base=0.01)
    harness.make(collector.endpoint, method="post", retry=policy, clock=clock)
    harness.track(1)
    assert harness.flush(timeout=60) is True
    assert len(collector.requests) == 3
    assert harness.stats().dropped["retries_exhausted"] == 1


def test_sync_emitter_never_sleeps_in_the_tracking_thread(collector: Collector) -> None:
    """A full buffer is tried once from track_*; retries wait for an explicit flush()."""
    clock = FakeClock()
    calls: list[object] = []
    collector.script(500)
    emitter = Emitter(
        collector.endpoint,
        method="post",
        buffer_size=3,
        retry=FAST,
        clock=clock,
        on_success=calls.append,
    )
    tracker = Tracker(emitter)
    for _ in range(3):
        tracker.track_page_view("http://example.com")
    assert len(collector.requests) == 1
    assert clock.sleeps == []
    assert calls == []
    assert emitter.stats().queued == 3
    tracker.track_page_view("http://example.com")  # no new attempt before 3 more events
    assert len(collector.requests) == 1
    assert emitter.flush(timeout=10) is True
    assert calls == [4]
    assert len(collector.events) == 4
