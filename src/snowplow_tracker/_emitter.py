"""The sync :class:`Emitter`, base of every emitter (public in :mod:`snowplow_tracker.emitters`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from . import _lifecycle, contracts
from ._body import request_for, units_for
from ._delivery import (
    SENT,
    Batch,
    Clock,
    DeliveryStats,
    Outcome,
    SystemClock,
    deliver,
    run_sync,
)
from ._emitter_checks import (
    check_delivery_args,
    check_emitter_args,
    check_netloc,
    check_transport_args,
)
from ._http import choose_transport, total_seconds
from ._queue import DeliveryCore
from ._redact import redact_url
from ._text import check_event_text
from ._v1_options import V1Options, as_store
from .constants import (
    DEFAULT_BYTE_LIMIT,
    DEFAULT_REQUEST_TIMEOUT,
    GET_PATH,
    POST_PATH,
)
from .contracts import fail_value
from .event_store import EventStore, MemoryEventStore, Record, decode_record
from .retry import RetryPolicy
from .transport import SendResult, Timeout, Transport, send
from .typing import FailureCallback, SuccessCallback

logger = logging.getLogger("snowplow_tracker.emitters")

Event = dict[str, str]

#: POST ``buffer_size`` by default: events per request, as 0.4.0, 0.5.0 and 1.x send them.
#: Each request costs a round trip the sync Emitter waits for in the tracking thread: for
#: throughput, ``buffer_size=100`` sends a tenth as many (``byte_limit`` bounds every body).
DEFAULT_MAX_LENGTH = 10

#: Events a queue holds at most by default; the overflow policy decides what gives.
DEFAULT_MAX_QUEUE_SIZE = 10_000
#: Seconds the exit flush (and ``close()`` without a timeout) may take by default.
DEFAULT_EXIT_TIMEOUT = 5.0
#: Events taken from a backlog for one delivery at most (one POST body, or GETs in a row).
MAX_BATCH_EVENTS = 500
#: Extra sends a sync Emitter's automatic send makes for buffers other threads filled
#: meanwhile, at most, before leaving the next full buffer to the next ``input()``.
MAX_FOLLOW_UPS = 4
#: Waiting events from which an AsyncEmitter producer lets its workers catch up (or twice
#: ``buffer_size``, and at most half the queue): see ``DeliveryCore.yield_to_consumers``.
BACKLOG_MARK = 1000
#: The longest such a producer waits for a worker to take a batch.
YIELD_SECONDS = 0.002
#: Seconds an AsyncEmitter worker lets a ready batch grow before sending it, so that a busy
#: producer's events go out in a few large POSTs rather than many of ``buffer_size``. Real
#: time (not the emitter's clock); ``flush()`` and ``close()`` cut it short.
COALESCE_SECONDS = 0.002


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def stringify(payload: Mapping[str, Any]) -> Event:
    """Every value as a string, as the tracker protocol sends it (0.5.0 used ``str()``)."""
    return {k: v if type(v) is str else str(v) for k, v in payload.items() if v is not None}


def as_strings(payload: Mapping[str, Any], check_text: bool = True) -> Event:
    """The event dict an emitter keeps: ``payload`` itself, every value made the string
    the wire sends, in place (a Tracker hands over ``dtm`` and numbers as they are, as
    0.5.0 did); a :func:`stringify` copy for any other mapping or one with ``None``
    values.

    Text that cannot be UTF-8 (a lone surrogate) is refused at the call, naming the
    field: it would otherwise fail the whole batch it is sent in. ``check_text=False``
    is for a queue that serialises each event as it is queued (a POST emitter's
    memory queue), where a failed encoding runs the same check (see ``DeliveryCore``).
    """
    if payload.__class__ is not dict:
        payload = stringify(payload)
    for name, value in payload.items():
        if value.__class__ is not str:
            if value is None:  # leave it out: a copy, as stringify makes it
                payload = stringify(payload)
                break
            payload[name] = str(value)
    if check_text:
        check_event_text(payload)
    return payload


class Emitter:
    """Sends events to a collector synchronously, in the thread that tracks them.

    GET sends one request per event to ``/i``, in order. POST sends batches to
    ``/com.snowplowanalytics.snowplow/tp2``, none larger than ``byte_limit``
    bytes (an event too big on its own goes alone). ``on_success(sent)`` is
    called when a flush sent everything (``sent`` is the count, and also the
    sent events: :class:`~snowplow_tracker.SentEvents`), otherwise
    ``on_failure(count_sent, unsent_events)``: exactly one of them per flush
    that had events.

    A bare ``Emitter(host)`` takes the release notes' defaults (http, GET,
    one attempt per request); a 1.x option (``batch_size``,
    ``buffer_capacity``, ``custom_retry_codes``, ``max_retry_delay_seconds``)
    or ``defaults="1.x"`` takes 1.x's (see ``_v1_options``).

    Keyword options shared by every emitter (all optional):

    * ``retry``: a :class:`~snowplow_tracker.retry.RetryPolicy`; the sync
      Emitter makes one attempt per request unless given one or 1.x options.
    * ``flush_interval``: seconds after which queued events are sent even if
      the buffer is not full (off for the sync Emitter, 1 s for AsyncEmitter).
    * ``max_queue_size`` and ``overflow``: the queue bound, and what happens
      when it is reached: ``"drop_oldest"`` (default), ``"drop_newest"``, or
      ``"block"`` the producer for up to ``block_timeout`` seconds, then drop
      the newest. Every dropped event is counted and reported to ``on_failure``.
    * ``max_event_bytes``: events larger than this are dropped as ``too_large``.
    * ``event_store``: where events wait; by default in memory. Pass a
      :class:`~snowplow_tracker.event_store.SQLiteEventStore` to keep them on
      disk across crashes and restarts, or a store of the 1.x protocol.
    * ``exit_timeout``: the bound of the flush at interpreter exit and of
      ``close()`` without a timeout.
    * ``clock``: a clock for tests (``snowplow_tracker.testing.FakeClock``).
    * ``transport``: what sends the requests (see :mod:`snowplow_tracker.transport`);
      by default chosen from the URL and ``session``. Tests can pass a
      :class:`snowplow_tracker.testing.MemoryTransport`.

    ``request_timeout`` bounds each request as a whole (looking the host up,
    connecting, sending and reading the answer; for a ``(connect, read)`` pair, their sum), and
    ``flush(timeout)``, ``close(timeout)`` and the exit flush bound the time
    they take, whatever the collector does. Redirects are followed as
    ``requests`` follows them, at most 5 per request (counted in
    ``stats().redirected``): 301, 302, 303, 307 and 308 for GET; 307 and 308
    for POST, which keep the body.

    After :meth:`close`, new events are not queued: they are counted as
    ``dropped["closed"]`` and reported to ``on_failure`` (no exception reaches
    ``track_*``).
    """

    def __init__(
        self,
        endpoint: str,
        protocol: str | None = None,
        port: int | None = None,
        method: str | None = None,
        buffer_size: int | None = None,
        on_success: SuccessCallback | None = None,
        on_failure: FailureCallback | None = None,
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
        flush_interval: float | None = None,
        max_queue_size: int | None = None,
        overflow: str = "drop_oldest",
        block_timeout: float = 1.0,
        max_event_bytes: int | None = None,
        exit_timeout: float = DEFAULT_EXIT_TIMEOUT,
        clock: Clock | None = None,
        defaults: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        options = V1Options(
            batch_size, buffer_capacity, custom_retry_codes, max_retry_delay_seconds, defaults
        )
        protocol, method = options.protocol(protocol), options.method(method)
        if contracts._enabled:
            check_emitter_args(endpoint, protocol, port, method, buffer_size, byte_limit)
            contracts.optional_callable("Emitter()", "on_success", on_success)
            contracts.optional_callable("Emitter()", "on_failure", on_failure)
            check_delivery_args(retry, flush_interval, max_queue_size, overflow, exit_timeout)
            check_transport_args(request_timeout, max_event_bytes, block_timeout, transport)
        #: "0.5" or "1.x": whose defaults this emitter took (decided here, once).
        self.defaults = options.defaults
        self.endpoint = Emitter.as_collector_uri(endpoint, protocol, port, method)
        self.method = method
        self.buffer_size = options.buffer_size(buffer_size, method)
        self.byte_limit = byte_limit or (DEFAULT_BYTE_LIMIT if method == "post" else None)
        self.on_success = on_success
        self.on_failure = on_failure
        self.request_timeout = request_timeout
        self.custom_retry_codes = dict(custom_retry_codes or {})
        self.max_retry_delay_seconds = options.max_retry_delay
        self.retry = retry if retry is not None else options.retry(self._default_retry())
        self.flush_interval = flush_interval
        self.exit_timeout = exit_timeout
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._session = session
        self._request_seconds = total_seconds(request_timeout or None)
        self._own_transport = transport is None
        self._transport = transport if transport is not None else self._new_transport()
        self.event_store = event_store if event_store is not None else MemoryEventStore()
        self._store: EventStore = as_store(self.event_store)
        self._core = DeliveryCore(
            self._store,
            batch_size=self.buffer_size,
            byte_limit=self.byte_limit,
            max_queue_size=options.queue_size(max_queue_size, DEFAULT_MAX_QUEUE_SIZE),
            overflow=overflow,
            block_timeout=block_timeout,
            flush_interval=flush_interval,
            clock=self._clock,
            report=self._report,
            max_event_bytes=max_event_bytes,
            compact=method == "post",
        )
        self._init_threads()
        self._closed = False
        _lifecycle.watch(self)
        logger.debug("Emitter initialized: %r", self)

    def _new_transport(self) -> Any:
        return choose_transport(self.endpoint, self._session, self.request_timeout or None)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({redact_url(self.endpoint)!r}, method={self.method!r}, "
            f"batch_size={self.buffer_size}, byte_limit={self.byte_limit}, "
            f"retry={'on' if self.retry.max_attempts != 1 else 'off'}, "
            f"defaults={self.defaults!r})"
        )

    @property
    def batch_size(self) -> int:
        """The 1.x name of :attr:`buffer_size`: events per request (POST) or flush."""
        return self.buffer_size

    def set_flush_timer(self, timeout: float, flush_now: bool = False) -> None:
        """Send what is queued every ``timeout`` seconds, buffer full or not (1.x);
        the same as ``flush_interval=timeout``. ``flush_now`` flushes once first."""
        if contracts._enabled:
            contracts.positive("set_flush_timer()", "timeout", timeout)
        if flush_now:
            self.request_flush()
        with self._core.lock:
            self.flush_interval = self._core.flush_interval = timeout
            if self._core.oldest_at is None and len(self._store):
                self._core.oldest_at = self._clock.monotonic()
            self._core.cond.notify_all()
        self._arm_timer()

    def cancel_flush_timer(self) -> None:
        """Stop the timer of :meth:`set_flush_timer` (or of ``flush_interval``)."""
        with self._core.lock:
            self.flush_interval = self._core.flush_interval = None
            self._core.cond.notify_all()

    @staticmethod
    def _default_retry() -> RetryPolicy:
        return RetryPolicy.never()

    def _init_threads(self) -> None:
        self._stop = threading.Event()
        self._threads_lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._auto_flush_at = 0  # queue position from which input() sends a full buffer
        self._auto_senders = 0  # threads in _auto_flush (under the core lock)
        self._deferred = False  # another thread filled a buffer meanwhile and left it to it

    @staticmethod
    def as_collector_uri(
        endpoint: str, protocol: str = "http", port: int | None = None, method: str = "get"
    ) -> str:
        """The collector URL: ``protocol://endpoint[:port]`` plus ``/i`` or the tp2 path.

        An endpoint that already names its scheme (``https://c.example.com``)
        keeps it, and a trailing ``/`` is dropped. An empty endpoint is refused.
        """
        if not endpoint:
            fail_value("as_collector_uri()", "endpoint", "a host name", endpoint)
        endpoint = endpoint.rstrip("/")
        if "://" in endpoint:
            protocol, endpoint = endpoint.split("://", 1)
        if contracts._enabled:
            check_netloc(endpoint, port)
        path = POST_PATH if method == "post" else GET_PATH
        netloc = endpoint if port is None else f"{endpoint}:{port}"
        return f"{protocol}://{netloc}{path}"

    # -- input ---------------------------------------------------------------------------------

    def input(self, payload: Mapping[str, Any]) -> None:
        """Queue one event (a dict of name-value pairs); send when the buffer is full."""
        self._queue_event(as_strings(payload, self._core.records is None))

    def _queue_event(self, event: Event) -> None:
        if self._closed:
            self._core.drop([event], "closed")
            return
        if self.flush_interval is not None and self._ticker is None:
            self._start_ticker()
        if self._core.add(event) and self._core.tail >= self._auto_flush_at:
            self._auto_flush()

    def _auto_flush(self) -> None:
        """Send a full buffer now, without sleeping in the tracking thread.

        Failures the retry policy would retry stay queued for a later flush;
        the next automatic attempt waits for another ``buffer_size`` events.

        When threads track at once, a thread that fills a buffer while another
        is sending leaves it queued, and the sending thread sends it next (up to
        ``MAX_FOLLOW_UPS`` times), so concurrent producers share requests
        instead of each sending a few events. Once ``MAX_BATCH_EVENTS`` are
        waiting, a producer sends itself again, as a lone one does: producers
        never outrun the senders into the queue bound.
        """
        core = self._core
        with core.lock:
            if self._auto_senders and len(self._store) < max(
                MAX_BATCH_EVENTS, 2 * self.buffer_size
            ):
                self._deferred = True
                return
            self._auto_senders += 1
        try:
            for _ in range(1 + MAX_FOLLOW_UPS):
                with core.lock:
                    self._deferred = False
                    batch = core.take(max(1, len(self._store)))
                all_sent = batch is None or self._send_batch(batch, None, sleep=False)
                with core.lock:
                    if not all_sent:  # no follow-up: a failing collector gets no retry storm
                        if len(self._store):
                            self._auto_flush_at = core.tail + self.buffer_size
                        break
                    if not (self._deferred and len(self._store) >= self.buffer_size):
                        break
        finally:
            with core.lock:
                self._auto_senders -= 1

    @property
    def buffer(self) -> list[Event]:
        """The events waiting to be sent, oldest first (a copy)."""
        with self._core.lock:
            peek = getattr(self._store, "peek", None)
            return list(peek()) if peek is not None else []

    def _take(self) -> list[Event]:
        """Remove and return everything queued, for a caller that sends it elsewhere."""
        with self._core.lock:
            batch = self._core.take(max(1, len(self._store)))
            if batch is None:
                return []
            self._core.in_flight.pop(batch.id, None)
            self._store.ack(batch.keys)
            self._core.cond.notify_all()
        return [decode_record(event) for event in batch.events]

    # -- flushing ------------------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything queued now, in this thread; True once all have a final outcome.

        With a retry policy, retries happen here too; if ``timeout`` seconds
        pass first, what is left stays queued for a later flush and the
        result is False.
        """
        deadline = None if timeout is None else self._clock.monotonic() + timeout
        with self._core.lock:
            target = self._core.tail
            batch = self._core.take(max(1, len(self._store)))
        if batch is not None:
            self._send_batch(batch, deadline)
        return self._wait_done(target, deadline)

    def _wait_done(self, target: int, deadline: float | None) -> bool:
        if self._core.in_report():
            return self._core.wait_done(target, 0)  # the batch being reported is this caller's
        remaining = None if deadline is None else max(0.0, deadline - self._clock.monotonic())
        return self._core.wait_done(target, remaining)

    def sync_flush(self, timeout: float | None = None) -> bool:
        """Send everything queued and wait for the outcome (the same as :meth:`flush`)."""
        return Emitter.flush(self, timeout)

    def request_flush(self) -> None:
        """Start sending everything queued without waiting (sends now for the sync Emitter)."""
        self.flush()

    def _send_batch(self, batch: Batch, deadline: float | None, sleep: bool = True) -> bool:
        """Deliver a leased batch and account for it; True if every event was sent."""
        try:
            units = self._units(batch.events)
            gen = deliver(units, self.retry, self._clock)
            outcome = run_sync(gen, self._send_unit, self._clock, self._stop, deadline, sleep)
        except Exception:  # a bug must not strand the batch in flight forever
            logger.exception("sending a batch failed unexpectedly")
            outcome = Outcome(["retries_exhausted"] * len(batch.events))
        self._core.finish(batch, outcome)
        return outcome.statuses.count(SENT) == len(outcome.statuses)

    def _units(self, events: Sequence[Record]) -> list[list[Record]]:
        """The sends a batch goes out in (CeleryEmitter publishes whole batches)."""
        return units_for(events, self.method, self.byte_limit)

    def _send_unit(self, events: list[Record], left: float) -> SendResult:
        """Send one request, within ``request_timeout`` and the ``left`` seconds a flush allows."""
        request = request_for(self.method, self.endpoint, events, _now_ms())
        result = send(self._transport, request, min(self._request_seconds, left))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s of %d event(s) to %s: %s",
                self.method.upper(),
                len(events),
                redact_url(self.endpoint),
                result.describe(),
            )
        return result

    def _deliver(self, batch: list[Event]) -> tuple[int, list[Event]]:
        """Send ``batch`` (not from the queue) now, with this emitter's retry policy.

        Calls one callback and returns ``(count_sent, unsent_events)``.
        """
        units = self._units(batch)
        gen = deliver(units, self.retry, self._clock)
        outcome = run_sync(gen, self._send_unit, self._clock, self._stop)
        unsent = [e for e, status in zip(batch, outcome.statuses) if status != "sent"]
        sent = len(batch) - len(unsent)
        with self._core.lock:
            self._core.counters.sent += sent
            self._core.counters.retried += outcome.retried
        self._report(sent, unsent)
        return sent, unsent

    def _report(self, sent: int, unsent: list[Event]) -> None:
        try:
            if unsent:
                if self.on_failure is not None:
                    self.on_failure(sent, unsent)
            elif self.on_success is not None:
                self.on_success(sent)
        except Exception:
            logger.exception("an emitter callback raised; the exception was ignored")

    # -- the interval timer (sync Emitter) -----------------------------------------------------

    def _arm_timer(self) -> None:
        """Make sure something sends when ``flush_interval`` passes: the sync Emitter's timer."""
        self._start_ticker()

    def _start_ticker(self) -> None:
        with self._threads_lock:
            if self._ticker is None:
                self._ticker = threading.Thread(
                    target=self._tick, name="snowplow-emitter-timer", daemon=True
                )
                self._ticker.start()

    def _tick(self) -> None:
        # Real waits on purpose: the timer must not spin when a test clock stands still.
        while not self._stop.wait((self.flush_interval or 1.0) / 4):
            with self._core.lock:
                if self.flush_interval is None:  # cancel_flush_timer()
                    self._ticker = None
                    return
                due = len(self._store) > 0 and self._core.interval_due()
            if due:
                self.flush()

    # -- lifecycle -----------------------------------------------------------------------------

    def stats(self) -> DeliveryStats:
        """Counts of events queued, in flight, sent, retried, failed and dropped by reason.

        .. versionadded:: 0.6.0
        """
        return self._core.stats()

    def close(self, timeout: float | None = None) -> bool:
        """Send what is queued, waiting at most ``timeout`` s (default ``exit_timeout``).

        What is still unsent then is dropped as ``shutdown_timeout`` and
        reported to ``on_failure``, or, with a durable ``event_store``, left
        there for the next process. Returns True if nothing was left. Later
        calls do nothing and return True.
        """
        with self._threads_lock:
            if self._closed:
                return True
            self._closed = True
        done = self._final_flush(self.exit_timeout if timeout is None else timeout)
        if not done:
            self._core.write_off()
        self._stop.set()
        self._shut_down(done)
        self._log_pending_drops()
        _lifecycle.unwatch(self)
        return done

    def _log_pending_drops(self) -> None:
        with self._core.lock:
            summary = self._core.drop_log.flush()
        if summary:
            logger.warning(summary)

    def _final_flush(self, timeout: float) -> bool:
        """Send what is queued, within ``timeout``; True if nothing is left queued.

        Batches other threads are sending are theirs to finish: close() and
        exit do not wait for them.
        """
        deadline = self._clock.monotonic() + timeout
        with self._core.lock:
            batch = self._core.take(max(1, len(self._store)))
        if batch is not None:
            self._send_batch(batch, deadline)
        with self._core.lock:
            return len(self._store) == 0

    def _shut_down(self, done: bool) -> None:
        with self._core.lock:
            self._core.closing = True
            self._core.cond.notify_all()
            idle = not self._core.in_flight
        self._transport.close()
        if done and idle:
            self._store.close()

    def _begin_exit_flush(self) -> None:
        """At exit, before any emitter is closed: start background sending (none here)."""

    def _close_at_exit(self, timeout: float) -> bool:
        return self.close(timeout)

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _after_fork_in_child(self) -> None:
        """In a forked child: fresh queue, locks and threads; the parent sends its own events."""
        inherited = self._store
        # A durable store's connection must not be used (or closed) in the child.
        self._inherited_store = inherited
        max_bytes = getattr(inherited, "max_bytes", None) if not inherited.durable else None
        self._store = MemoryEventStore(max_bytes)
        self._core.store = self._store
        self._core.reset()
        self._init_threads()
        if self._session is not None:
            self._session.close()  # the pooled sockets belong to the parent
        if self._own_transport:
            self._transport = self._new_transport()
