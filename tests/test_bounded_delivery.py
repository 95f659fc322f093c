"""Delivery you can bound: deadlines against collectors that never finish answering, the
built-in client's reading of odd answers, and redirects."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from snowplow_tracker import AsyncEmitter, Emitter, RetryPolicy, Tracker
from snowplow_tracker.collector import Collector
from snowplow_tracker.testing import FakeClock, MemoryTransport
from snowplow_tracker.transport import MAX_REDIRECTS, Request, SendResult

from .http_faults import (
    FaultyServer,
    Redirector,
    busy_then_stray_ok,
    dribbling,
    endless_chunks,
    endless_continue,
    silent,
)

#: What the bounds below allow on top of the timeout asked for: thread start-up and a loaded
#: CI machine. Before this change these calls took the request timeout (30 s) or for ever.
SLACK = 1.5


def timed(call: Callable[[], Any], limit: float = 10.0) -> tuple[float, Any]:
    """Run ``call`` in a thread; its duration and result. Fails if it runs past ``limit``."""
    result: list[Any] = []
    start = time.monotonic()
    worker = threading.Thread(target=lambda: result.append(call()), daemon=True)
    worker.start()
    worker.join(limit)
    took = time.monotonic() - start
    assert not worker.is_alive(), f"still running after {limit} s"
    return took, result[0] if result else None


@pytest.fixture(params=[silent, dribbling], ids=["silent", "dribbling"])
def stuck(request: pytest.FixtureRequest) -> Iterator[FaultyServer]:
    with FaultyServer(request.param) as server:
        yield server


def make(kind: str, endpoint: str, **options: Any) -> Emitter:
    options.setdefault("method", "post")
    if kind == "sync":
        return Emitter(endpoint, **options)
    return AsyncEmitter(endpoint, **options)


# -- flush(timeout), close(timeout) and the exit flush are bounds ------------------------------


@pytest.mark.parametrize("kind", ["sync", "thread"])
def test_flush_and_close_timeouts_bound_a_stuck_collector(kind: str, stuck: FaultyServer) -> None:
    emitter = make(kind, stuck.endpoint, request_timeout=30)
    Tracker(emitter).track_page_view("http://example.com")
    took, done = timed(lambda: emitter.flush(timeout=0.3))
    assert done is False
    assert took < 0.3 + SLACK
    took, done = timed(lambda: emitter.close(timeout=0.3))
    assert done is False
    assert took < 0.3 + SLACK
    assert emitter.stats().dropped["shutdown_timeout"] == 1


def test_request_timeout_bounds_each_whole_request(stuck: FaultyServer) -> None:
    """A collector answering a byte at a time used to hold a sync flush for ever."""
    emitter = Emitter(stuck.endpoint, method="post", request_timeout=0.3)
    Tracker(emitter).track_page_view("http://example.com")
    took, done = timed(emitter.flush)
    assert done is True
    assert took < 0.3 + SLACK
    assert emitter.stats().dropped["retries_exhausted"] == 1
    emitter.close()


@pytest.mark.parametrize("kind", ["Emitter", "AsyncEmitter"])
def test_the_exit_flush_is_bounded_by_exit_timeout(kind: str, stuck: FaultyServer) -> None:
    script = textwrap.dedent(
        f"""
        from snowplow_tracker import {kind}, Tracker
        emitter = {kind}({stuck.endpoint!r}, method="post", request_timeout=30, exit_timeout=0.5)
        Tracker(emitter).track_page_view("http://example.com")
        """
    )
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=20)
    assert time.monotonic() - start < 0.5 + SLACK + 1.0  # plus the interpreter's start-up


def test_tracker_flush_timeout_bounds_every_emitter_together(stuck: FaultyServer) -> None:
    emitters = [make("sync", stuck.endpoint, request_timeout=30) for _ in range(2)]
    tracker = Tracker(emitters)
    tracker.track_page_view("http://example.com")
    took, _ = timed(lambda: tracker.flush(timeout=0.4))
    assert took < 0.4 + SLACK
    assert [emitter.stats().queued for emitter in emitters] == [1, 1]  # left for a later flush
    for emitter in emitters:
        emitter.close(timeout=0)


@pytest.mark.parametrize("timeout", [None, (1, 2), 0.5])
def test_every_form_of_request_timeout_sends(collector: Collector, timeout: Any) -> None:
    emitter = Emitter(collector.endpoint, method="post", request_timeout=timeout, buffer_size=1)
    Tracker(emitter).track_page_view("http://example.com")
    assert emitter.stats().sent == 1
    emitter.close()


class StuckTransport(MemoryTransport):
    """A collector that never answers, on a fake clock: each request takes its whole timeout."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(respond=self._hang)
        self.clock = clock

    def _hang(self, request: Request) -> SendResult:
        self.clock.advance(self.timeouts[-1])
        return SendResult(None, TimeoutError("no answer"))


@pytest.mark.parametrize("call", ["flush", "close"])
def test_flush_and_close_budget_every_request_and_backoff(call: str) -> None:
    """With an injected clock: requests are given only the time the flush has left."""
    clock = FakeClock()
    transport = StuckTransport(clock)
    retry = RetryPolicy(max_attempts=50, deadline=None, backoff_base=0.05, jitter=False)
    emitter = Emitter(
        "c.example.com", method="post", request_timeout=5, retry=retry, clock=clock,
        transport=transport,
    )  # fmt: skip
    Tracker(emitter).track_page_view("http://example.com")
    start = clock.now
    assert getattr(emitter, call)(timeout=1.0) is False
    assert clock.now - start <= 1.0 + 1e-9
    assert transport.timeouts[0] == pytest.approx(1.0)
    assert all(timeout <= 1.0 for timeout in transport.timeouts)


# -- the built-in client under odd answers -----------------------------------------------------


@pytest.mark.parametrize("behave", [endless_continue, endless_chunks], ids=["1xx", "chunked"])
@pytest.mark.parametrize("kind", ["sync", "thread"])
def test_endless_answers_end_at_the_request_deadline(kind: str, behave: Any) -> None:
    with FaultyServer(behave) as server:
        emitter = make(kind, server.endpoint, request_timeout=0.3, retry=RetryPolicy.never())
        Tracker(emitter).track_page_view("http://example.com")
        _took, done = timed(lambda: emitter.flush(timeout=5))
        assert done is True  # a final outcome: the worker was not held for good
        assert emitter.stats().dropped["retries_exhausted"] == 1
        emitter.close()


def test_a_stray_answer_is_never_taken_for_the_next_requests() -> None:
    """Each request is answered 503 plus an extra 200: no event may count as sent."""
    with FaultyServer(busy_then_stray_ok) as server:
        emitter = Emitter(server.endpoint, method="post", buffer_size=1)
        tracker = Tracker(emitter)
        for n in range(3):
            tracker.track_struct_event("shop", "buy", value=n)
        stats = emitter.stats()
        assert (stats.sent, stats.dropped["retries_exhausted"]) == (0, 3)
        assert server.connections == 3  # a connection with bytes left over is not reused
        emitter.close()


# -- redirects ---------------------------------------------------------------------------------


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


def redirector_to(collector: Collector, status: int) -> Redirector:
    return Redirector(status, lambda path: f"{collector.url}{path}")


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_get_follows_every_redirect(collector: Collector, status: int) -> None:
    redirector = redirector_to(collector, status)
    emitter = Emitter(redirector.endpoint)
    Tracker(emitter).track_page_view("http://example.com/page")
    assert [event["url"] for event in collector.wait_for(1)] == ["http://example.com/page"]
    assert (emitter.stats().sent, emitter.stats().redirected) == (1, 1)
    emitter.close()
    redirector.close()


@pytest.mark.parametrize(("status", "followed"), [(307, True), (308, True), (301, False), (302, False), (303, False)])  # fmt: skip
def test_post_follows_307_and_308_with_its_body(
    collector: Collector, status: int, followed: bool
) -> None:
    redirector = redirector_to(collector, status)
    emitter = Emitter(redirector.endpoint, method="post", buffer_size=2)
    tracker = Tracker(emitter)
    tracker.track_page_view("http://example.com/1")
    tracker.track_page_view("http://example.com/2")
    stats = emitter.stats()
    if followed:
        assert len(collector.wait_for(2)) == 2
        assert (stats.sent, stats.redirected) == (2, 1)
    else:  # requests would turn it into a GET without the events: not followed
        assert (stats.sent, stats.dropped["non_retryable_status"], stats.redirected) == (0, 2, 0)
        assert collector.events == []
    emitter.close()
    redirector.close()


def test_at_most_five_redirects_are_followed() -> None:
    loop = Redirector(307, lambda path: path)  # redirects to itself for ever
    emitter = Emitter(loop.endpoint, method="post")
    Tracker(emitter).track_page_view("http://example.com")
    emitter.flush()
    stats = emitter.stats()
    assert (stats.redirected, stats.dropped["non_retryable_status"]) == (MAX_REDIRECTS, 1)
    assert len(loop.seen) == 1 + MAX_REDIRECTS
    assert all(body == loop.seen[0][2] for _, _, body in loop.seen)  # the body went each time
    emitter.close()
    loop.close()


def test_redirects_through_a_requests_session(collector: Collector) -> None:
    redirector = redirector_to(collector, 302)
    session = requests.Session()
    emitter = Emitter(redirector.endpoint, session=session)
    Tracker(emitter).track_page_view("http://example.com/s")
    assert len(collector.wait_for(1)) == 1
    assert emitter.stats().redirected == 1
    emitter.close()
    redirector.close()


def test_redirects_through_httpx(collector: Collector) -> None:
    from snowplow_tracker.aio import AsyncioEmitter

    redirector = redirector_to(collector, 308)

    async def main() -> Any:
        emitter = AsyncioEmitter(redirector.endpoint, method="post")
        Tracker(emitter).track_page_view("http://example.com/a")
        await emitter.aclose(timeout=5)
        return emitter.stats()

    stats = asyncio.run(main())
    assert (stats.sent, stats.redirected) == (1, 1)
    assert len(collector.wait_for(1)) == 1
    redirector.close()


@pytest.mark.parametrize(
    "behave", [endless_continue, endless_chunks, dribbling], ids=["1xx", "chunked", "dribbling"]
)
def test_asyncio_emitter_requests_end_at_their_deadline(behave: Any) -> None:
    """httpx bounds each read, not the whole answer: the request deadline cuts it."""
    from snowplow_tracker.aio import AsyncioEmitter

    async def main(endpoint: str) -> tuple[bool, Any]:
        emitter = AsyncioEmitter(
            endpoint, method="post", request_timeout=0.3, retry=RetryPolicy.never()
        )
        Tracker(emitter).track_page_view("http://example.com")
        done = await emitter.flush(timeout=5)
        await emitter.aclose(timeout=1)
        return done, emitter.stats()

    with FaultyServer(behave) as server:
        done, stats = asyncio.run(main(server.endpoint))
    assert done is True
    assert stats.dropped["retries_exhausted"] == 1


def test_a_requests_session_is_bounded_too(stuck: FaultyServer) -> None:
    """requests bounds each socket operation only: its calls run on a helper thread, and
    the emitter stops waiting at the deadline."""
    emitter = Emitter(
        stuck.endpoint, method="post", request_timeout=0.3, session=requests.Session()
    )
    Tracker(emitter).track_page_view("http://example.com")
    took, done = timed(emitter.flush)
    assert done is True
    assert took < 0.3 + SLACK
    assert emitter.stats().dropped["retries_exhausted"] == 1
    Tracker(emitter).track_page_view("http://example.com")
    took, done = timed(lambda: emitter.close(timeout=0.3))
    assert took < 0.3 + SLACK


@pytest.mark.parametrize("kind", ["sync", "thread"])
def test_a_host_lookup_that_hangs_is_inside_the_deadline(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """getaddrinfo has no timeout: a resolver that never answers held a flush for as long."""
    release = threading.Event()
    calls: list[str] = []
    real = socket.getaddrinfo

    def hanging(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "hangs.example":
            calls.append(host)
            release.wait(20)
            raise socket.gaierror("the test's resolver let go")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", hanging)
    emitter = make(kind, "hangs.example", request_timeout=30)
    Tracker(emitter).track_page_view("http://example.com")
    try:
        took, done = timed(lambda: emitter.flush(timeout=0.3))
        assert done is False
        assert took < 0.3 + SLACK
        took, done = timed(lambda: emitter.flush(timeout=0.3))
        assert took < 0.3 + SLACK
        assert calls == ["hangs.example"]  # one lookup thread, shared, not one per attempt
    finally:
        release.set()
        emitter.close(0)
