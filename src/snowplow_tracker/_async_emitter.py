"""The :class:`AsyncEmitter` (public in :mod:`snowplow_tracker.emitters`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import Any

import requests

from . import contracts
from ._body import ENVELOPE_BYTES, STM_BYTES
from ._delivery import Batch, Clock
from ._emitter import (
    BACKLOG_MARK,
    COALESCE_SECONDS,
    DEFAULT_EXIT_TIMEOUT,
    MAX_BATCH_EVENTS,
    YIELD_SECONDS,
    Emitter,
    Event,
    as_strings,
)
from .constants import DEFAULT_REQUEST_TIMEOUT
from .retry import RetryPolicy
from .transport import Timeout, Transport
from .typing import FailureCallback, SuccessCallback


class AsyncEmitter(Emitter):
    """Like :class:`Emitter`, but a fixed pool of worker threads sends and retries.

    ``track_*`` never waits on the network and any number of threads may
    track at once (a thread that tracks faster than the workers send lets
    them take a batch, waiting 2 ms at most, once 1 000 events wait).
    ``thread_count`` daemon workers start on first use; with
    one worker, events are sent in the order they were tracked, retries
    included. Failed requests are retried in the background following
    ``retry`` (default :class:`~snowplow_tracker.retry.RetryPolicy()`), and
    each event's final outcome is reported once, per batch.

    ``flush(timeout=None)`` waits until everything queued before it has a
    final outcome (or the timeout passes) and returns whether it did;
    ``request_flush()`` starts sending and returns at once (what
    ``Tracker.flush(is_async=True)`` calls, as 0.5.0's ``flush()`` did). At
    interpreter exit, queued events are sent within ``exit_timeout`` seconds,
    so a dead collector cannot hang exit. A forked child starts with an empty
    queue and its own workers, and never re-sends its parent's events.
    """

    def __init__(
        self,
        endpoint: str,
        protocol: str = "http",
        port: int | None = None,
        method: str | None = None,
        buffer_size: int | None = None,
        on_success: SuccessCallback | None = None,
        on_failure: FailureCallback | None = None,
        thread_count: int = 1,
        *,
        batch_size: int | None = None,
        byte_limit: int | None = None,
        request_timeout: Timeout | None = DEFAULT_REQUEST_TIMEOUT,
        max_retry_delay_seconds: float | None = None,
        buffer_capacity: int | None = None,
        custom_retry_codes: Mapping[int, bool] | None = None,
        event_store: Any = None,
        session: requests.Session | None = None,
        retry: RetryPolicy | None = None,
        flush_interval: float | None = 1.0,
        max_queue_size: int | None = None,
        overflow: str = "drop_oldest",
        block_timeout: float = 1.0,
        max_event_bytes: int | None = None,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
        clock: Clock | None = None,
        defaults: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        if contracts._enabled:
            contracts.integer("AsyncEmitter()", "thread_count", thread_count, minimum=1)
        self.thread_count = thread_count
        super().__init__(
            endpoint,
            protocol,
            port,
            method,
            buffer_size,
            on_success,
            on_failure,
            batch_size=batch_size,
            byte_limit=byte_limit,
            request_timeout=request_timeout,
            max_retry_delay_seconds=max_retry_delay_seconds,
            buffer_capacity=buffer_capacity,
            custom_retry_codes=custom_retry_codes,
            event_store=event_store,
            session=session,
            retry=retry,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            overflow=overflow,
            block_timeout=block_timeout,
            max_event_bytes=max_event_bytes,
            exit_timeout=exit_timeout,
            clock=clock,
            defaults=defaults,
            transport=transport,
        )

    @staticmethod
    def _default_retry() -> RetryPolicy:
        return RetryPolicy()

    def _init_threads(self) -> None:
        super()._init_threads()
        self._workers: list[threading.Thread] = []
        # From this backlog on, the workers are falling behind a producer: let them run.
        mark = max(BACKLOG_MARK, 2 * self.buffer_size)
        self._backlog_mark = max(1, min(self._core.max_queue_size // 2, mark))

    def input(self, payload: Mapping[str, Any]) -> None:
        """Queue one event for the workers; never waits on the network."""
        self._queue_event(as_strings(payload, self._core.records is None))

    def _queue_event(self, event: Event) -> None:
        if self._closed:
            self._core.drop([event], "closed")
            return
        if not self._workers:
            self._start_workers()
        if self._core.add(event) >= self._backlog_mark:
            self._core.yield_to_consumers(YIELD_SECONDS)

    def flush(self, timeout: float | None = None) -> bool:
        """Have the workers send everything queued; wait up to ``timeout`` s for the outcomes.

        Returns True when every event queued before the call has a final
        outcome (sent or failed: see ``stats()`` and the callbacks), False
        if ``timeout`` passed first; the workers keep going either way.
        """
        target = self._core.request_flush()
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        if not self._start_workers():
            self._drain_here(deadline)
        return self._wait_done(target, deadline)

    def sync_flush(self, timeout: float | None = None) -> bool:
        """The same as :meth:`flush`."""
        return self.flush(timeout)

    def _final_flush(self, timeout: float) -> bool:
        return self.flush(timeout)

    def request_flush(self) -> None:
        """Ask the workers to send everything queued, and return at once."""
        self._core.request_flush()
        self._start_workers()

    def _begin_exit_flush(self) -> None:
        self._core.request_flush()

    def _arm_timer(self) -> None:
        self._start_workers()  # the workers keep the interval

    def _start_workers(self) -> bool:
        """Start the pool if needed; False when no thread can start (interpreter exit)."""
        with self._threads_lock:
            if self._closed and not self._workers:
                return False
            try:
                while len(self._workers) < self.thread_count:
                    worker = threading.Thread(
                        target=self._work,
                        name=f"snowplow-emitter-{len(self._workers)}",
                        daemon=True,
                    )
                    worker.start()
                    self._workers.append(worker)
            except RuntimeError:  # "can't create new thread at interpreter shutdown"
                return bool(self._workers)
        return True

    def _work(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            self._send_batch(batch, None)

    def _next_batch(self) -> Batch | None:
        """Wait for a batch to send; None when the emitter is closing or has given up.

        A batch that is ready (``buffer_size`` events, or the interval) but not
        yet a full POST gets up to ``COALESCE_SECONDS`` to grow first.
        """
        core = self._core
        limit = max(self.buffer_size, MAX_BATCH_EVENTS)
        body = self._post_body_bytes()
        coalesce_until: float | None = None
        with core.lock:
            while not self._stop.is_set():
                if core.ready():
                    if core.can_grow(limit, body):
                        now = time.monotonic()
                        if coalesce_until is None:
                            coalesce_until = now + COALESCE_SECONDS
                        if now < coalesce_until:
                            # Not counted in core.idle: new events do not wake us, flush does.
                            core.cond.wait(coalesce_until - now)
                            continue
                    batch = core.take(limit, body)
                    if batch is not None:
                        return batch
                    core.cond.wait(1.0)  # a store that miscounts must not make us spin
                elif core.closing:
                    return None
                else:
                    core.idle += 1  # so that add() notifies us
                    try:
                        core.cond.wait(core.next_timer())
                    finally:
                        core.idle -= 1
            return None

    def _post_body_bytes(self) -> tuple[int, int] | None:
        """What one POST may hold, for ``core.take``: a batch is then one request."""
        if self.method != "post" or self.byte_limit is None:
            return None
        return max(1, self.byte_limit - ENVELOPE_BYTES), STM_BYTES

    def _drain_here(self, deadline: float | None) -> None:
        # No worker can run (exit in progress): send from this thread.
        while deadline is None or self._clock.monotonic() < deadline:
            with self._core.lock:
                batch = self._core.take(max(self.buffer_size, MAX_BATCH_EVENTS))
            if batch is None:
                return
            self._send_batch(batch, deadline)

    def _shut_down(self, done: bool) -> None:
        with self._core.lock:
            self._core.closing = True
            self._core.cond.notify_all()
        for worker in self._workers:
            worker.join(0.5 if done else 0.05)
        if not any(worker.is_alive() for worker in self._workers):
            super()._shut_down(done)
