"""AsyncioEmitter: delivery for asyncio applications (FastAPI, aiohttp, ...) on httpx.

Needs the ``httpx`` extra (``pip install 'snowplow-event-tracker[httpx]'``).

.. versionadded:: 0.6.0
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

from . import _lifecycle, contracts
from ._body import request_for, units_for
from ._delivery import ABANDONED, Batch, Clock, Outcome, deliver, logger, run_async
from ._emitter import (
    DEFAULT_EXIT_TIMEOUT,
    DEFAULT_MAX_QUEUE_SIZE,
    MAX_BATCH_EVENTS,
    Emitter,
    _now_ms,
    as_strings,
)
from ._extras import require
from ._http import choose_transport
from .constants import DEFAULT_REQUEST_TIMEOUT, POST_CONTENT_TYPE
from .contracts import fail_value
from .event_store import EventStore, Record
from .retry import RetryPolicy
from .transport import (
    AsyncTransport,
    Request,
    SendResult,
    Timeout,
    asend,
    parse_retry_after,
)
from .typing import FailureCallback, SuccessCallback

_POST_HEADERS = {"Content-Type": POST_CONTENT_TYPE}


class HttpxTransport:
    """Sends with an ``httpx.AsyncClient``: yours, or one of its own per event loop that
    never stores collector cookies. Each request is cancelled at its deadline."""

    def __init__(self, httpx: Any, client: Any, timeout: Timeout | None) -> None:
        self._httpx = httpx
        self._client = client
        self._own_client = client is None
        self._timeout = timeout
        self._client_loop: asyncio.AbstractEventLoop | None = None  # where our client was made

    def __repr__(self) -> str:
        return f"HttpxTransport(own_client={self._own_client})"

    async def asend(self, request: Request, timeout: float) -> SendResult:
        client = self._http_client()
        try:
            if request.method == "POST":
                call = client.post(request.url, content=request.body, headers=_POST_HEADERS)
            else:
                call = client.get(request.url, params=request.params)
            response = await asyncio.wait_for(call, None if timeout == math.inf else timeout)
        except Exception as exc:  # network errors, timeouts: the retry policy decides
            return SendResult(None, exc)
        headers = response.headers
        retry_after = parse_retry_after(headers.get("Retry-After"))
        return SendResult(int(response.status_code), None, retry_after, headers.get("Location"))

    def _http_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._own_client and self._client is not None and self._client_loop is not loop:
            # Made in a loop that has ended without cancelling our task: its connections
            # cannot be used from this one (a request could be sent, its answer never read,
            # and the retry would send the events twice).
            self._client = None
        if self._client is None:
            timeout = self._timeout
            if isinstance(timeout, tuple):
                timeout = self._httpx.Timeout(timeout[1], connect=timeout[0])
            jar = CookieJar(DefaultCookiePolicy(allowed_domains=[]))
            self._client = self._httpx.AsyncClient(timeout=timeout, cookies=jar)
            self._client_loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close our own client (a client you passed in stays yours to close)."""
        client, self._client_loop = self._client, None
        if self._own_client and client is not None:
            self._client = None
            with contextlib.suppress(Exception):
                await client.aclose()

    def after_fork(self) -> None:
        if self._own_client:
            self._client = None


class AsyncioEmitter(Emitter):
    """Queues events without blocking the event loop; an asyncio task sends and retries them.

    Same constructor, batching, retry policy (default ``RetryPolicy()``),
    callbacks and ``stats()`` as :class:`~snowplow_tracker.emitters.AsyncEmitter`.
    ``input()`` (what ``track_*`` calls) only queues and wakes the sending
    task, which starts on first use in the running loop. Callbacks run in the
    loop: keep them short.

    * ``await emitter.flush(timeout=None)`` waits until everything queued
      before it has a final outcome; ``await emitter.aclose(timeout)``, or
      ``async with AsyncioEmitter(...) as emitter:``, closes it.
    * ``Tracker.flush()`` never blocks a running loop: it starts sending and
      returns. Outside a running loop it sends synchronously.
    * At interpreter exit, events still queued are sent synchronously within
      ``exit_timeout``, after the loop has gone.
    * ``overflow="block"`` is refused: it would block the loop.
    * ``client`` is an ``httpx.AsyncClient`` of your own; by default one that
      never stores collector cookies. ``transport`` replaces httpx altogether
      (an :class:`~snowplow_tracker.transport.AsyncTransport`, such as
      :class:`snowplow_tracker.testing.MemoryTransport`).
    """

    def __init__(
        self,
        endpoint: str,
        protocol: str = "http",
        port: int | None = None,
        method: str = "get",
        buffer_size: int | None = None,
        on_success: SuccessCallback | None = None,
        on_failure: FailureCallback | None = None,
        *,
        request_timeout: Timeout | None = DEFAULT_REQUEST_TIMEOUT,
        client: Any = None,
        byte_limit: int | None = None,
        retry: RetryPolicy | None = None,
        flush_interval: float | None = 1.0,
        max_queue_size: int = DEFAULT_MAX_QUEUE_SIZE,
        overflow: str = "drop_oldest",
        max_event_bytes: int | None = None,
        event_store: EventStore | None = None,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
        clock: Clock | None = None,
        transport: AsyncTransport | None = None,
    ) -> None:
        if contracts._enabled and overflow == "block":
            fail_value("AsyncioEmitter()", "overflow", "drop_oldest or drop_newest", overflow)
        if contracts._enabled and transport is not None and not hasattr(transport, "asend"):
            contracts.fail_type(
                "AsyncioEmitter()", "transport", "an AsyncTransport (with asend)", transport
            )
        if transport is None:
            transport = HttpxTransport(require("httpx", "httpx"), client, request_timeout)
        self._async_transport: Any = transport
        super().__init__(
            endpoint,
            protocol,
            port,
            method,
            buffer_size,
            on_success,
            on_failure,
            request_timeout=request_timeout,
            byte_limit=byte_limit,
            retry=retry,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            overflow=overflow,
            max_event_bytes=max_event_bytes,
            event_store=event_store,
            exit_timeout=exit_timeout,
            clock=clock,
        )
        self._core.wake = self._wake

    @staticmethod
    def _default_retry() -> RetryPolicy:
        return RetryPolicy()

    def _init_threads(self) -> None:
        super()._init_threads()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._astop: asyncio.Event | None = None

    # -- input ---------------------------------------------------------------------------------

    def input(self, payload: Mapping[str, Any]) -> None:
        """Queue one event and wake the sending task; never blocks the loop."""
        self._queue_event(as_strings(payload, self._core.records is None))

    def _queue_event(self, event: dict[str, str]) -> None:
        if self._closed:
            self._core.drop([event], "closed")
            return
        if self._task is None or self._task.done():
            self._ensure_task()
        self._core.add(event)

    def _ensure_task(self) -> bool:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False  # no loop here: the next call from the loop, or exit, sends
        if self._task is not None and not self._task.done() and self._loop is loop:
            return True
        self._loop, self._loop_thread = loop, threading.get_ident()
        self._wakeup, self._progress, self._astop = (
            asyncio.Event(),
            asyncio.Event(),
            asyncio.Event(),
        )
        self._task = loop.create_task(self._run(), name="snowplow-emitter")
        return True

    def _wake(self) -> None:
        loop, wakeup = self._loop, self._wakeup
        if loop is None or wakeup is None or loop.is_closed():
            return
        if threading.get_ident() == self._loop_thread:
            wakeup.set()
        else:
            loop.call_soon_threadsafe(wakeup.set)

    # -- the sending task ----------------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._send_until_stopped()
        except asyncio.CancelledError:
            # The loop is ending (asyncio.run() returning): our client's connections belong to
            # it, so close them here; the next loop gets a client of its own.
            await self._async_transport.aclose()
            raise

    async def _send_until_stopped(self) -> None:
        core = self._core
        assert self._wakeup is not None
        while self._astop is None or not self._astop.is_set():
            self._wakeup.clear()  # before looking, so a wake-up in between is not lost
            with core.lock:
                batch = core.take(max(self.buffer_size, MAX_BATCH_EVENTS)) if core.ready() else None
                timer = core.next_timer()
                closing = core.closing
            if batch is not None:
                await self._send_batch_async(batch)
            elif closing:
                return
            else:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), timer)

    async def _send_batch_async(self, batch: Batch) -> None:
        try:
            units = units_for(batch.events, self.method, self.byte_limit)
            gen = deliver(units, self.retry, self._clock)
            outcome = await run_async(gen, self._send_unit_async, self._clock, self._astop)
        except asyncio.CancelledError:
            # The loop is going away (asyncio.run() ending): put the batch back for the exit flush.
            self._core.finish(batch, Outcome([ABANDONED] * len(batch.events)))
            raise
        except Exception:  # a bug must not strand the batch in flight forever
            logger.exception("sending a batch failed unexpectedly")
            outcome = Outcome(["retries_exhausted"] * len(batch.events))
        self._core.finish(batch, outcome)
        if self._progress is not None:
            self._progress.set()

    async def _send_unit_async(self, events: list[Record]) -> SendResult:
        request = request_for(self.method, self.endpoint, events, _now_ms())
        return await asend(self._async_transport, request, self._request_seconds)

    # -- flushing and closing ------------------------------------------------------------------

    async def flush(self, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Send everything queued; wait up to ``timeout`` s until each has a final outcome."""
        target = self._core.request_flush()
        self._ensure_task()
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        progress = self._progress
        assert progress is not None
        while True:
            progress.clear()
            with self._core.lock:
                if self._core.done_through(target):
                    return True
            remaining = None if deadline is None else deadline - self._clock.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(progress.wait(), remaining)

    def sync_flush(self, timeout: float | None = None) -> bool:
        """In a running loop: start sending and return False at once. Else send here."""
        if self._in_running_loop():
            self.request_flush()
            return False
        return Emitter.flush(self, timeout)

    def request_flush(self) -> None:
        """Start sending everything queued, and return at once."""
        self._core.request_flush()
        self._ensure_task()

    def _begin_exit_flush(self) -> None:
        self._core.request_flush()

    async def aclose(self, timeout: float | None = None) -> bool:
        """Send what is queued within ``timeout`` s (default ``exit_timeout``), then stop.

        What is left is counted and reported as in
        :meth:`~snowplow_tracker.emitters.Emitter.close`.
        """
        with self._threads_lock:
            if self._closed:
                return True
            self._closed = True
        done = await self.flush(self.exit_timeout if timeout is None else timeout)
        if not done:
            self._core.write_off()
        with self._core.lock:
            self._core.closing = True
        if self._astop is not None:
            self._astop.set()
        self._wake()
        if self._task is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._task), 0.5)
        await self._async_transport.aclose()
        if done:
            self._store.close()
        self._log_pending_drops()
        _lifecycle.unwatch(self)
        return done

    async def __aenter__(self) -> AsyncioEmitter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def close(self, timeout: float | None = None) -> bool:
        """Close from synchronous code with no running loop (at exit, say): sends here."""
        if self._in_running_loop():
            raise RuntimeError("use 'await emitter.aclose()' inside a running event loop")
        return Emitter.close(self, timeout)

    def _final_flush(self, timeout: float) -> bool:
        # No loop runs any more: send what is queued from this thread.
        return Emitter._final_flush(self, timeout)

    def _in_running_loop(self) -> bool:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def _new_transport(self) -> Any:
        # What Emitter's methods use when this emitter sends without a loop (at exit): the
        # transport Emitter would choose, unless a transport of the caller's is given.
        given = getattr(self, "_async_transport", None)
        if not isinstance(given, HttpxTransport) and callable(getattr(given, "send", None)):
            return given  # it sends without a loop too (MemoryTransport does)
        return choose_transport(self.endpoint, None, self.request_timeout or None)

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        after_fork = getattr(self._async_transport, "after_fork", None)
        if after_fork is not None:
            after_fork()
