"""Many producer threads: every event reaches the collector exactly once."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from delivery_support import Harness, eids_of

from snowplow_tracker import Tracker
from snowplow_tracker.collector import Collector

THREADS = 16
PER_THREAD = 10_000


def track_from_threads(tracker: Tracker, per_thread: int) -> None:
    """``per_thread`` struct events from each of THREADS threads, all started at once."""
    start = threading.Barrier(THREADS)

    def produce() -> None:
        start.wait()
        for n in range(per_thread):
            tracker.track_struct_event("load", "n", value=n)

    producers = [threading.Thread(target=produce) for _ in range(THREADS)]
    for producer in producers:
        producer.start()
    for producer in producers:
        producer.join()


@pytest.mark.parametrize("harness", ["sync", "thread"], indirect=True)
def test_16_producers_x_10000_events_each_arrive_once(
    harness: Harness, collector: Collector
) -> None:
    """160 000 events from 16 threads, POSTed in batches: no loss, no duplicate."""
    options = {"method": "post", "buffer_size": 500, "byte_limit": 200_000}
    if harness.kind == "thread":
        options.update(thread_count=4, overflow="block", block_timeout=60, max_queue_size=20_000)
    harness.make(collector.endpoint, **options)
    assert harness.tracker is not None
    track_from_threads(harness.tracker, PER_THREAD)
    assert harness.flush(timeout=120) is True
    arrived = Counter(eids_of(collector))
    assert len(harness.recorder.eids) == THREADS * PER_THREAD
    assert arrived == Counter(harness.recorder.eids)
    stats = harness.stats()
    assert stats.sent == THREADS * PER_THREAD
    assert stats.failed == 0


def test_asyncio_emitter_with_16_threads_tracking_beside_its_loop(collector: Collector) -> None:
    """Threads of an asyncio application (``run_in_executor``, a thread pool) track while the
    loop runs elsewhere: the events queue, the loop's task sends them, each arrives once."""
    harness = Harness("asyncio")
    try:
        harness.make(collector.endpoint, method="post", buffer_size=100, max_queue_size=20_000)
        assert harness.tracker is not None
        harness.track(1)  # the sending task starts on the loop
        track_from_threads(harness.tracker, 1_000)
        assert harness.flush(timeout=60) is True
        arrived = Counter(eids_of(collector))
        assert arrived == Counter(harness.recorder.eids)
        assert len(arrived) == THREADS * 1_000 + 1
        assert harness.stats().failed == 0
    finally:
        harness.stop()
