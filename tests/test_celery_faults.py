"""CeleryEmitter when the broker is stopped or silent (accepts connections, never answers).

``track_*`` only queues; a background thread hands batches over with bounded timeouts and the
delivery core's retry policy. The bounds asserted here are generous (seconds) on purpose: they
are not speed measurements but the difference between returning and hanging, which is what
the code before this test did (45 s per call on a silent broker).
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker import CeleryEmitter, RetryPolicy, Tracker
from snowplow_tracker.collector import Collector

from .redis_celery_support import child_env, delete_keys, redis_client, track_many
from .redis_fault_support import OwnRedis, SilenceableProxy, SilentListener, free_port
from .test_celery_emitter import celery_worker, producer_env

pytestmark = [pytest.mark.celery, pytest.mark.redis]
celery = pytest.importorskip("celery", reason="the celery extra is not installed")

#: Bounds of a call that must not hang (it hung 45 s before); far above what they take.
TRACK_BOUND = 5.0
CALL_BOUND = 4.0
QUICK_RETRIES = RetryPolicy(max_attempts=None, deadline=120, backoff_base=0.05, backoff_max=0.5)


@pytest.fixture
def silent() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.close()


def broker_url(scheme: str, port: int) -> str:
    if scheme == "amqp":
        return f"amqp://guest:guest@127.0.0.1:{port}//"
    return f"redis://127.0.0.1:{port}/0"


class Failures:
    """``on_failure``: every event reported, with the counts it came with."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, list[dict[str, str]]]] = []

    def __call__(self, count: int, events: list[dict[str, str]]) -> None:
        self.calls.append((count, events))

    def values(self) -> Counter[str]:
        return Counter(event["se_va"] for _, events in self.calls for event in events)


def timed(call: Any, *args: Any, **kwargs: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = call(*args, **kwargs)
    return result, time.monotonic() - start


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
@pytest.mark.parametrize("fault", ["silent", "stopped"])
def test_a_broker_that_is_down_or_silent_never_blocks_the_app(
    silent: SilentListener, scheme: str, fault: str
) -> None:
    port = silent.port if fault == "silent" else free_port()
    app = celery.Celery("faulty", broker=broker_url(scheme, port), set_as_current=False)
    failures = Failures()
    emitter = CeleryEmitter(
        "127.0.0.1:9", method="post", buffer_size=10, app=app, publish_timeout=0.5
    )
    emitter.on_failure = failures
    _, tracking = timed(track_many, emitter, 100)
    assert tracking < TRACK_BOUND  # 100 calls; the call that filled a buffer hung before
    done, flushing = timed(emitter.flush, timeout=1)
    assert done is False
    assert flushing < CALL_BOUND
    stats = emitter.stats()
    assert stats.sent == 0
    assert stats.queued + stats.in_flight + stats.failed == 100
    done, closing = timed(emitter.close, timeout=1)
    assert done is False
    assert closing < CALL_BOUND
    stats = emitter.stats()
    assert (stats.sent, stats.failed, stats.queued, stats.in_flight) == (0, 100, 0, 0)
    assert failures.values() == Counter(str(i) for i in range(100))  # each reported once
    assert all(count == 0 for count, _ in failures.calls)


def test_each_event_is_counted_once_when_retries_run_out() -> None:
    """A stopped broker: 100 events in batches of 10; each batch is tried 3 times, then it
    fails, counted and reported once per event (5 005 failures were counted before)."""
    app = celery.Celery("down", broker=broker_url("redis", free_port()), set_as_current=False)
    failures = Failures()
    policy = RetryPolicy(max_attempts=3, backoff_base=0.01, backoff_max=0.02)
    emitter = CeleryEmitter("127.0.0.1:9", method="post", buffer_size=10, app=app, retry=policy)
    emitter.on_failure = failures
    track_many(emitter, 100)
    assert emitter.flush(timeout=60) is True  # every event has its final outcome
    stats = emitter.stats()
    assert (stats.sent, stats.failed) == (0, 100)
    assert stats.dropped["retries_exhausted"] == 100
    assert failures.values() == Counter(str(i) for i in range(100))
    assert emitter.close(timeout=1) is True


EXIT_SCRIPT = textwrap.dedent(
    """
    import atexit, sys, time
    import celery
    from snowplow_tracker import CeleryEmitter, Tracker

    reported = []
    # Registered before the emitter exists: atexit runs it after the emitter's exit flush.
    atexit.register(lambda: print("reported", len(reported), flush=True))
    app = celery.Celery("exit", broker=sys.argv[1], set_as_current=False)
    emitter = CeleryEmitter(
        "127.0.0.1:9", method="post", buffer_size=5, app=app, publish_timeout=0.5,
        exit_timeout=1, on_failure=lambda count, events: reported.extend(events),
    )
    tracker = Tracker(emitter)
    for index in range(20):
        tracker.track_struct_event("exit", "test", value=index)
    print("tracked", flush=True)
    """
)


@pytest.mark.parametrize("fault", ["silent", "stopped"])
def test_interpreter_exit_is_bounded_and_reports_what_was_not_handed_over(
    silent: SilentListener, tmp_path: Path, fault: str
) -> None:
    port = silent.port if fault == "silent" else free_port()
    script = tmp_path / "producer.py"
    script.write_text(EXIT_SCRIPT)
    command = [sys.executable, str(script), broker_url("redis", port)]
    result = subprocess.run(
        command, capture_output=True, text=True, env=child_env(), timeout=40, check=False
    )
    assert result.returncode == 0, result.stderr
    # Interpreter start and the celery import take most of it; the exit flush is 1 s at most.
    assert result.stdout.split() == ["tracked", "reported", "20"], result.stderr


def test_close_hands_every_buffered_event_over(collector: Collector) -> None:
    """Buffered events (less than a batch) go to the broker at close(): before, close()
    returned True and handed nothing over."""
    client = redis_client()
    queue = f"test-snowplow-close-{uuid.uuid4().hex}"  # no worker consumes it
    try:
        with producer_env(
            SNOWPLOW_CELERY_BROKER_URL="redis://127.0.0.1:6379/0", SNOWPLOW_CELERY_QUEUE=queue
        ):
            emitter = CeleryEmitter(collector.endpoint, method="post", buffer_size=100)
            track_many(emitter, 7)
            assert client.llen(queue) == 0  # still buffered
            assert emitter.close() is True
        assert client.llen(queue) == 1  # one message with the 7 events
        stats = emitter.stats()
        assert (stats.sent, stats.failed, stats.queued) == (7, 0, 0)
    finally:
        delete_keys(client, queue)


@pytest.mark.parametrize("fault", ["stopped", "silent"])
def test_a_real_worker_gets_everything_once_the_broker_is_back(
    tmp_path: Path, collector: Collector, fault: str
) -> None:
    """A real ``celery worker`` and a broker of the test's own. While the producer's broker is
    stopped (the server itself) or silent (the route to it accepts and never answers),
    tracking, flush and close stay bounded; events tracked meanwhile reach the collector once
    it is back, and what close() could not hand over is counted and reported."""
    broker = OwnRedis(tmp_path).start()
    proxy = SilenceableProxy(broker.port)
    queue = f"test-snowplow-faults-{uuid.uuid4().hex}"
    worker_env = {"SNOWPLOW_CELERY_BROKER_URL": broker_url("redis", broker.port)}
    worker_env["SNOWPLOW_CELERY_QUEUE"] = queue
    producer_port = proxy.port if fault == "silent" else broker.port
    producer = {"SNOWPLOW_CELERY_BROKER_URL": broker_url("redis", producer_port)}
    producer["SNOWPLOW_CELERY_QUEUE"] = queue

    def fault_on() -> None:
        proxy.silence() if fault == "silent" else broker.stop()

    def fault_off() -> None:
        proxy.resume() if fault == "silent" else broker.start()

    failures = Failures()
    log = tmp_path / "worker.log"
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(celery_worker(log, child_env(**worker_env), f"faults-{fault}"))
            stack.enter_context(producer_env(**producer))
            emitter = CeleryEmitter(
                collector.endpoint,
                method="post",
                buffer_size=10,
                publish_timeout=0.5,
                retry=QUICK_RETRIES,
            )
            emitter.on_failure = failures
            through_a_fault(emitter, collector, fault_on, fault_off)
    finally:
        proxy.close()
        broker.stop()
    stats = emitter.stats()
    assert (stats.sent, stats.failed, stats.dropped["shutdown_timeout"]) == (120, 30, 30)
    assert failures.values() == Counter(str(i) for i in range(120, 150))
    arrived = Counter(event.raw["se_va"] for event in collector.events)
    assert set(arrived) == {str(i) for i in range(120)}  # at least once: every one arrived


def through_a_fault(emitter: CeleryEmitter, collector: Collector, on: Any, off: Any) -> None:
    """20 events before the fault, 100 during it (sent once it is over), 30 at close()."""
    tracker = Tracker(emitter, namespace="faults")
    track(tracker, range(20))
    assert emitter.flush(timeout=30) is True
    collector.wait_for(20, 30)

    on()
    _, tracking = timed(track, tracker, range(20, 120))
    assert tracking < TRACK_BOUND
    done, flushing = timed(emitter.flush, timeout=1)
    assert (done, emitter.stats().sent, emitter.stats().failed) == (False, 20, 0)
    assert flushing < CALL_BOUND

    off()
    assert emitter.flush(timeout=60) is True
    collector.wait_for(120, 60)
    assert (emitter.stats().sent, emitter.stats().failed) == (120, 0)

    on()
    track(tracker, range(120, 150))
    done, closing = timed(emitter.close, timeout=1)
    assert done is False
    assert closing < CALL_BOUND
    off()


def track(tracker: Tracker, values: Any) -> None:
    for value in values:
        tracker.track_struct_event("faults", "test", value=value)
