"""snowplow_tracker.testing.MemoryTransport: any emitter sends to it instead of the network."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from snowplow_tracker import AsyncEmitter, Emitter, RetryPolicy, Tracker
from snowplow_tracker.testing import FakeClock, MemoryTransport
from snowplow_tracker.transport import Request, SendResult


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("cls", [Emitter, AsyncEmitter])
def test_threaded_emitters_send_to_it(cls: type[Emitter], method: str) -> None:
    transport = MemoryTransport()
    emitter = cls("collector.example.com", method=method, transport=transport)
    tracker = Tracker(emitter)
    tracker.track_page_view("http://example.com/1")
    tracker.track_page_view("http://example.com/2")
    assert emitter.flush(5)
    assert [event["url"] for event in transport.events] == [
        "http://example.com/1",
        "http://example.com/2",
    ]
    assert all("stm" in event for event in transport.events)
    assert transport.requests[0].method == method.upper()
    emitter.close()
    assert transport.closed


def test_the_asyncio_emitter_sends_to_it() -> None:
    from snowplow_tracker.aio import AsyncioEmitter

    transport = MemoryTransport()

    async def main() -> None:
        emitter = AsyncioEmitter("collector.example.com", method="post", transport=transport)
        Tracker(emitter).track_page_view("http://example.com/a")
        assert await emitter.flush(5)
        await emitter.aclose()

    asyncio.run(main())
    assert [event["url"] for event in transport.events] == ["http://example.com/a"]


def test_scripted_statuses_and_errors_drive_the_retry_policy() -> None:
    answers: list[Any] = [503, OSError("refused"), 200]

    def respond(request: Request) -> int:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return int(answer)

    transport = MemoryTransport(respond=respond)
    clock = FakeClock()
    retry = RetryPolicy(max_attempts=5, backoff_base=1, jitter=False)
    emitter = Emitter("c.example.com", method="post", retry=retry, clock=clock, transport=transport)
    Tracker(emitter).track_page_view("http://example.com")
    assert emitter.flush()
    assert len(transport.requests) == 3
    assert clock.sleeps == [1.0, 2.0]
    assert (emitter.stats().sent, emitter.stats().retried) == (1, 2)
    emitter.close()


def test_statuses_then_200() -> None:
    transport = MemoryTransport(statuses=[400])
    emitter = Emitter("c.example.com", transport=transport)
    tracker = Tracker(emitter)
    tracker.track_page_view("http://example.com/1")
    tracker.track_page_view("http://example.com/2")
    stats = emitter.stats()
    assert (stats.sent, stats.dropped["non_retryable_status"]) == (1, 1)
    assert [event["url"] for event in transport.events] == ["http://example.com/2"]
    emitter.close()


def test_a_scripted_redirect_is_followed() -> None:
    def respond(request: Request) -> SendResult:
        if request.url.endswith("/moved/i"):
            return SendResult(200)
        return SendResult(302, location="/moved/i")

    transport = MemoryTransport(respond=respond)
    emitter = Emitter("c.example.com", transport=transport)
    Tracker(emitter).track_page_view("http://example.com")
    assert [r.url for r in transport.requests][1] == "http://c.example.com/moved/i"
    assert emitter.stats().redirected == 1
    emitter.close()


class Broken:
    """A transport that breaks the protocol by raising."""

    def send(self, request: Request, timeout: float) -> SendResult:
        raise RuntimeError("bug in a custom transport")

    def close(self) -> None:
        pass


def test_a_transport_that_raises_fails_the_request_not_the_emitter() -> None:
    emitter = Emitter("c.example.com", method="post", transport=Broken())
    Tracker(emitter).track_page_view("http://example.com")
    assert emitter.flush()
    stats = emitter.stats()
    assert (stats.sent, stats.dropped["retries_exhausted"]) == (0, 1)
    emitter.close()
