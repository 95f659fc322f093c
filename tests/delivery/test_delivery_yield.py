"""A producer that never blocks must not starve the AsyncEmitter's worker thread."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import threading
import time
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from snowplow_tracker import AsyncEmitter, Tracker, _queue
from snowplow_tracker.event_store import MemoryEventStore
from snowplow_tracker.testing import FakeClock

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sink() -> Iterator[int]:
    """The benchmark's loopback sink in its own process: it answers at once, and its
    work does not compete with the test process for the GIL as an in-process server's would."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "bench" / "sink.py")], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield int(process.stdout.readline().split()[1])
    finally:
        process.terminate()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def sink_events(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stats")
    count = int(json.loads(conn.getresponse().read())["events"])
    conn.close()
    return count


def test_a_tight_tracking_loop_loses_nothing(sink: int) -> None:
    """Before the fix, on a machine with two cores or more, the worker woken for a batch
    waited for the GIL and the queue lock while the producer kept both, and 80 % of a
    tight loop's events were dropped from the bounded queue (one core hid it)."""
    # Room for two thirds of the loop: without the fix the worker sent almost nothing during it.
    emitter = AsyncEmitter(f"127.0.0.1:{sink}", method="post", max_queue_size=20_000)
    tracker = Tracker(emitter)
    for n in range(30_000):
        tracker.track_struct_event("load", "n", value=n)
    assert emitter.flush(timeout=60) is True
    stats = emitter.stats()
    emitter.close()
    assert stats.dropped["queue_full"] == 0
    assert stats.sent == sink_events(sink) == 30_000


class Times:
    """Stands in for the ``time`` module in ``_queue``: a monotonic clock we move."""

    def __init__(self) -> None:
        self.now = 100.0
        self.step = 0.0  # added on every reading

    def monotonic(self) -> float:
        self.now += self.step
        return self.now


@pytest.fixture
def times(monkeypatch: pytest.MonkeyPatch) -> Times:
    fake = Times()
    monkeypatch.setattr(_queue, "time", types.SimpleNamespace(monotonic=fake.monotonic))
    return fake


def make_core() -> tuple[_queue.DeliveryCore, list[float | None]]:
    core = _queue.DeliveryCore(
        MemoryEventStore(),
        batch_size=10,
        byte_limit=None,
        max_queue_size=1_000,
        overflow="drop_oldest",
        block_timeout=1.0,
        flush_interval=None,
        clock=FakeClock(),
        report=lambda sent, failed: None,
        compact=True,
    )
    waits: list[float | None] = []
    wait_for = core.cond.wait_for

    def counting_wait_for(predicate: object, timeout: float | None = None) -> bool:
        if threading.current_thread() is threading.main_thread():  # the producer's waits
            waits.append(timeout)
        return wait_for(predicate, timeout)  # type: ignore[arg-type]

    core.cond.wait_for = counting_wait_for  # type: ignore[method-assign]
    return core, waits


def wait_until(core: _queue.DeliveryCore, condition: Callable[[], bool]) -> None:
    """Poll ``condition`` under the core's lock (the producer's wait notifies nobody)."""
    for _ in range(10_000):
        with core.lock:
            if condition():
                return
        time.sleep(0.001)
    raise AssertionError("never happened")


def test_a_wait_in_vain_is_not_repeated_for_nine_times_its_length(times: Times) -> None:
    core, waits = make_core()
    times.step = 0.001  # each wait in vain lasts 1 ms on this clock
    core.yield_to_consumers(0.001)
    assert len(waits) == 1
    times.step = 0.0
    for _ in range(100):  # a dead or slow consumer: the producer goes on at full speed
        core.yield_to_consumers(0.001)
    assert len(waits) == 1
    times.now += 0.0091  # nine times the wait: a tenth of the time at most
    core.yield_to_consumers(0.001)
    assert len(waits) == 2


def test_a_take_ends_the_wait_and_the_producer_may_yield_again(times: Times) -> None:
    core, waits = make_core()
    for n in range(20):
        core.add({"e": "se", "n": str(n)})

    def consumer() -> None:
        for entered in (1, 2):
            wait_until(core, lambda n=entered: len(waits) == n)  # the producer is in its wait
            with core.lock:
                assert core.take(5) is not None

    thread = threading.Thread(target=consumer)
    thread.start()
    core.yield_to_consumers(10.0)  # ends at the take, long before 10 s
    core.yield_to_consumers(10.0)  # no penalty: the consumer is keeping up
    thread.join(10)
    assert waits == [10.0, 10.0]
    assert core.takes == 2
    assert core.next_yield == 0.0


def test_closing_releases_a_yielding_producer() -> None:
    core, waits = make_core()

    def close() -> None:
        wait_until(core, lambda: len(waits) == 1)
        with core.lock:
            core.closing = True
            core.cond.notify_all()

    thread = threading.Thread(target=close)
    thread.start()
    core.yield_to_consumers(10.0)
    thread.join(10)
    assert len(waits) == 1
    core.yield_to_consumers(10.0)  # closing: never waits
    assert len(waits) == 1
