"""The delivery core shared by Emitter, AsyncEmitter and AsyncioEmitter.

Two sans-I/O parts, driven by each emitter in its own way (caller's thread,
worker threads, an asyncio task):

* :class:`DeliveryCore`: the bounded queue (an :class:`EventStore`) with its
  overflow policy, batching by count, bytes and interval, the watermarks that
  let ``flush`` wait for exactly the events queued before it, and the counters
  behind ``stats()``. All state changes happen under one lock, never held
  across network I/O.
* :func:`deliver`: a generator that sends one batch, yielding :class:`Send`
  and :class:`Sleep` commands and receiving their results, following a
  :class:`RetryPolicy`. The drivers answer a ``Sleep`` with an interruptible
  wait, so shutdown and flush deadlines cut a backoff short.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any, Optional, Protocol, Union

from ._sent import SentEvents
from ._values import Value
from .event_store import (
    EventStore,
    MemoryEventStore,
    Record,
    decode_record,
    encode_record,
    event_size,
)
from .retry import RetryPolicy

logger = logging.getLogger("snowplow_tracker.emitters")

Event = dict[str, str]

#: Why an event was given up; every one is counted in ``stats().dropped``.
DROP_REASONS = (
    "queue_full",
    "too_large",
    "non_retryable_status",
    "retries_exhausted",
    "shutdown_timeout",
    "expired",
    "closed",
)
OVERFLOW_POLICIES = ("drop_oldest", "drop_newest", "block")
SENT = "sent"
ABANDONED = "abandoned"  # not final: the batch was cut short by a deadline or shutdown


# -- clocks ------------------------------------------------------------------------------------


class SystemClock:
    """Monotonic time and real, interruptible waits."""

    def monotonic(self) -> float:
        return time.monotonic()

    def wait(self, event: threading.Event, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for ``event``; True if it is set."""
        return event.wait(timeout)

    async def async_wait(self, event: Any, timeout: float) -> bool:
        """The asyncio twin of :meth:`wait` for an ``asyncio.Event``."""
        import asyncio

        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(event.wait(), timeout)
        return bool(event.is_set())


class Clock(Protocol):
    """What the delivery code needs from a clock (SystemClock, or testing.FakeClock)."""

    def monotonic(self) -> float: ...

    def wait(self, event: threading.Event, timeout: float) -> bool: ...

    async def async_wait(self, event: Any, timeout: float) -> bool: ...


# -- stats -------------------------------------------------------------------------------------


class DeliveryStats(Value):
    """A snapshot of an emitter's counters (events, not requests).

    ``failed`` counts events whose final outcome was a failure; ``dropped``
    splits them by reason. ``spooled`` counts events left in a durable store
    at close, to be sent by the next process.

    .. versionadded:: 0.6.0
    """

    # The order of the fields in repr(), as in the constructor.
    __slots__ = ("queued", "in_flight", "sent", "retried", "failed", "dropped", "spooled")  # noqa: RUF023
    queued: int
    in_flight: int
    sent: int
    retried: int
    failed: int
    dropped: dict[str, int]
    spooled: int

    def __init__(
        self,
        queued: int,
        in_flight: int,
        sent: int,
        retried: int,
        failed: int,
        dropped: dict[str, int],
        spooled: int = 0,
    ) -> None:
        self._init(
            queued=queued,
            in_flight=in_flight,
            sent=sent,
            retried=retried,
            failed=failed,
            dropped=dropped,
            spooled=spooled,
        )

    def __hash__(self) -> int:
        raise TypeError("unhashable type: 'DeliveryStats' (its dropped field is a dict)")

    def as_dict(self) -> dict[str, Any]:
        return {
            "queued": self.queued,
            "in_flight": self.in_flight,
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "dropped": dict(self.dropped),
            "spooled": self.spooled,
        }


class DropLog:
    """Logs dropped events as one summary line per ``interval`` seconds, never one per event."""

    def __init__(self, clock: Clock, interval: float = 10.0) -> None:
        self.clock = clock
        self.interval = interval
        self._pending: dict[str, int] = {}
        self._cause: str | None = None
        self._next = 0.0

    def note(self, reason: str, count: int, cause: str | None = None) -> str | None:
        """Record drops; return a summary to log when one is due (call under the core lock)."""
        self._pending[reason] = self._pending.get(reason, 0) + count
        if cause is not None:
            self._cause = cause
        now = self.clock.monotonic()
        if now < self._next:
            return None
        return self._summary(now)

    def flush(self) -> str | None:
        return self._summary(self.clock.monotonic()) if self._pending else None

    def _summary(self, now: float) -> str:
        self._next = now + self.interval
        parts = ", ".join(f"{n} {reason}" for reason, n in sorted(self._pending.items()))
        cause = f"; last failure: {self._cause}" if self._cause else ""
        self._pending, self._cause = {}, None
        return f"snowplow emitter dropped events ({parts}{cause}); see stats() for totals"


# -- batches and their delivery ----------------------------------------------------------------


class Batch:
    """Events leased from the store for one delivery, with their place in the queue."""

    __slots__ = ("events", "id", "keys", "start", "written_off")

    def __init__(self, id: int, keys: list[int], events: list[Record], start: int) -> None:
        self.id = id
        self.keys = keys
        self.events = events  # compact records from a memory store; decode_record() gives dicts
        self.start = start  # queue sequence number of the first event
        self.written_off = False  # close() timed out and already accounted for it


class Send:
    """Command: send these events in one request (GET: one event; POST: one body)."""

    __slots__ = ("events",)

    def __init__(self, events: list[Record]) -> None:
        self.events = events


class Sleep:
    """Command: wait this long before retrying; answer True if the wait was cut short."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


#: The answer to a ``Send`` when the driver will not send (deadline passed or shutting down).
STOP = None


class Outcome:
    """One status per event of a batch: SENT, ABANDONED or a drop reason."""

    __slots__ = ("last_failure", "retried", "statuses")

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.retried = 0
        self.last_failure: str | None = None  # how the last failed attempt ended, for the log


def units_for(
    events: Sequence[Record], method: str, split: Callable[[Sequence[Record]], list[list[Record]]]
) -> list[list[Record]]:
    """The requests a batch is sent in: one per event for GET, byte-limited bodies for POST."""
    if method == "get":
        return [[event] for event in events]
    return split(events)


def deliver(
    units: list[list[Record]],
    policy: RetryPolicy,
    clock: Clock,
    rand: Callable[[], float] = random.random,
) -> Generator[Union[Send, Sleep], Any, Outcome]:
    """Send ``units`` in order, retrying each as ``policy`` allows; return every event's status.

    A unit is retried before the next is sent, so order is kept. When a unit
    exhausts its retries without any answer (the collector is unreachable),
    the units after it fail the same way without being tried.
    """
    outcome = Outcome([])
    for index, unit in enumerate(units):
        status, answered = yield from _deliver_unit(unit, policy, clock, rand, outcome)
        outcome.statuses.extend([status] * len(unit))
        if status == ABANDONED or (status == "retries_exhausted" and not answered):
            rest = sum(len(later) for later in units[index + 1 :])
            outcome.statuses.extend([status] * rest)
            break
    return outcome


def _deliver_unit(
    unit: list[Record],
    policy: RetryPolicy,
    clock: Clock,
    rand: Callable[[], float],
    outcome: Outcome,
) -> Generator[Union[Send, Sleep], Any, tuple[str, bool]]:
    """Send one request until it succeeds or gives up: (status, whether the collector answered)."""
    first = clock.monotonic()
    attempt = 1
    while True:
        result = yield Send(unit)
        if result is STOP:
            return ABANDONED, True
        if result.ok:
            return SENT, True
        outcome.last_failure = result.describe()
        delay = policy.next_delay(result, attempt, clock.monotonic() - first, rand)
        if delay is None:
            return _final_reason(policy, result.status), result.status is not None
        if (yield Sleep(delay)):
            return ABANDONED, True
        outcome.retried += len(unit)
        attempt += 1


def _final_reason(policy: RetryPolicy, status: Optional[int]) -> str:
    if status == 413:
        return "too_large"
    if policy.is_retryable(status):
        return "retries_exhausted"
    return "non_retryable_status"


def run_sync(
    gen: Generator[Union[Send, Sleep], Any, Outcome],
    send: Callable[[list[Record]], Any],
    clock: Clock,
    stop: threading.Event,
    deadline: float | None = None,
    sleep: bool = True,
) -> Outcome:
    """Drive :func:`deliver` in this thread; ``stop`` or ``deadline`` cut it short.

    With ``sleep=False`` a backoff ends the delivery at once instead (the rest
    is abandoned, to be retried by a later flush).
    """
    command = next(gen)
    while True:
        if isinstance(command, Send):
            late = deadline is not None and clock.monotonic() >= deadline
            reply: Any = STOP if stop.is_set() or late else send(command.events)
        else:
            reply = _sleep(command.seconds, clock, stop, deadline) if sleep else True
        try:
            command = gen.send(reply)
        except StopIteration as done:
            result: Outcome = done.value
            return result


def _sleep(seconds: float, clock: Clock, stop: threading.Event, deadline: float | None) -> bool:
    if deadline is not None:
        remaining = deadline - clock.monotonic()
        if remaining < seconds:
            clock.wait(stop, max(remaining, 0.0))
            return True
    return bool(clock.wait(stop, seconds))


async def run_async(
    gen: Generator[Union[Send, Sleep], Any, Outcome],
    send: Callable[[list[Record]], Awaitable[Any]],
    clock: Clock,
    stop: Any,
) -> Outcome:
    """Drive :func:`deliver` in an asyncio task; ``stop`` (an ``asyncio.Event``) cuts it short."""
    command = next(gen)
    while True:
        if isinstance(command, Send):
            reply: Any = STOP if stop.is_set() else await send(command.events)
        else:
            reply = await clock.async_wait(stop, command.seconds)
        try:
            command = gen.send(reply)
        except StopIteration as done:
            result: Outcome = done.value
            return result


# -- the queue ---------------------------------------------------------------------------------


class Counters:
    __slots__ = ("dropped", "retried", "sent", "spooled")

    def __init__(self) -> None:
        self.sent = 0
        self.retried = 0
        self.spooled = 0
        self.dropped: dict[str, int] = dict.fromkeys(DROP_REASONS, 0)


Report = Callable[[int, list[Event]], None]


#: A producer spends at most one part in this many of its time in ``yield_to_consumers``.
YIELD_SHARE_INVERSE = 10


class DeliveryCore:
    """The bounded queue, its batching rules and its accounting (see the module docstring).

    ``report(sent_count, failed_events)`` is called, outside the lock, once per
    final outcome: a finished batch, or events dropped from the queue.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        batch_size: int,
        byte_limit: int | None,
        max_queue_size: int,
        overflow: str,
        block_timeout: float,
        flush_interval: float | None,
        clock: Clock,
        report: Report,
        max_event_bytes: int | None = None,
        compact: bool = False,
    ) -> None:
        self.store = store
        self.compact = compact  # queue POST events as compact records (serialised once)
        self.batch_size = batch_size
        self.byte_limit = byte_limit
        self.max_queue_size = max_queue_size
        self.overflow = overflow
        self.block_timeout = block_timeout
        self.flush_interval = flush_interval
        self.max_event_bytes = max_event_bytes
        self.clock = clock
        self.report = report
        self.wake: Callable[[], None] | None = None  # set by an asyncio driver
        self._local = threading.local()
        self.reset()

    def _call_report(self, sent: int, failed: list[Event]) -> None:
        depth = getattr(self._local, "reporting", 0)
        self._local.reporting = depth + 1  # a depth: callbacks may flush, and so report, again
        try:
            self.report(sent, failed)
        finally:
            self._local.reporting = depth

    def in_report(self) -> bool:
        """Whether this thread is inside a callback (a flush there must not wait for itself)."""
        return bool(getattr(self._local, "reporting", False))

    def reset(self) -> None:
        """Fresh lock, watermarks and counters (at construction and in a forked child)."""
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.counters = Counters()
        self.drop_log = DropLog(self.clock)
        self.head = 0  # events removed from the queue's head so far (taken or evicted)
        self.tail = len(self.store)  # events ever queued (this process)
        self.flush_target = 0
        self.in_flight: dict[int, Batch] = {}
        self.batch_ids = itertools.count(1)
        self.idle = 0  # consumers waiting on ``cond`` for a batch: only they need a notify
        self.yielding = 0  # producers in yield_to_consumers, waiting for a take
        self.takes = 0  # batches taken so far
        self.next_yield = 0.0  # time.monotonic() from which a producer may yield again
        store = self.store
        self.records = store if self.compact and isinstance(store, MemoryEventStore) else None
        # With no per-event or per-store byte bound, add() has a shorter path for records.
        records = self.records
        bare = records is not None and records.max_bytes is None and not self.max_event_bytes
        self.bare_records = records if bare else None
        self.closing = False
        self.oldest_at: float | None = self.clock.monotonic() if self.tail else None
        expired = self.store.expire()
        if expired:
            self.drop(expired, "expired")

    # -- producers -----------------------------------------------------------------------------

    def add(self, event: Event) -> int:
        """Queue one event; when a batch is ready (the caller may flush or wake a worker),
        return how many events wait, else 0."""
        records = self.bare_records
        if records is not None:
            record = encode_record(event)
            if record.__class__ is bytes:
                with self.lock:
                    queued = len(records.queue)
                    if queued < self.max_queue_size and self.oldest_at is not None:
                        # The usual case, in short: room, and no interval timer to start.
                        queued = records.push(record)
                        self.tail += 1
                        if queued < self.batch_size and (
                            self.byte_limit is None or records.nbytes < self.byte_limit
                        ):
                            return 0
                        if self.idle:
                            self.cond.notify()
                    else:
                        queued = 0
                if queued:
                    if self.wake is not None:
                        self.wake()
                    return queued
            return self._add(event, record)
        return self._add(event, encode_record(event) if self.records is not None else event)

    def _add(self, event: Event, record: Record) -> int:
        records = self.records
        if records is not None:
            size = len(record) + 1 if record.__class__ is bytes else event_size(event)
        else:
            size = event_size(event)
        if self.max_event_bytes is not None and size > self.max_event_bytes:
            self.drop([event], "too_large")
            return 0
        store = self.store
        dropped: list[Event] = []
        with self.lock:
            if len(store) < self.max_queue_size or self._make_room(dropped):
                if records is not None:
                    evicted = records.add_record(record, size)
                else:
                    evicted = store.add(event, size)
                if evicted:
                    dropped.extend(evicted)
                if dropped:
                    self.head += len(dropped)  # evicted events leave the queue at its head
                self.tail += 1
                started = self.oldest_at is None
                if started:
                    self.oldest_at = self.clock.monotonic()
                    started = self.flush_interval is not None
            else:
                dropped.append(event)
                started = False
            ready = len(store) >= self.batch_size or (
                self.byte_limit is not None and store.nbytes >= self.byte_limit
            )
            if (ready or started) and self.idle:
                # Full, or the first event of an interval: a worker must (re)arm its timer.
                # (Condition.notify costs microseconds even with nobody waiting: skip it then.)
                self.cond.notify()
            queued = len(store) if ready else 0
        if dropped:
            self.drop(dropped, "queue_full")
        if (ready or started) and self.wake is not None:
            self.wake()
        return queued

    def yield_to_consumers(self, timeout: float) -> None:
        """Let consumer threads run until one takes a batch; wait ``timeout`` s at most.

        A producer thread that never blocks holds the GIL and this lock nearly
        all the time, and on a multi-core machine a worker thread woken for a
        batch could then wait for them for seconds while the queue overflowed
        (it lost 80 % of a tight loop's events). Waiting on ``cond`` releases
        both, and ``take()`` ends the wait at once. A wait that times out (the
        consumer is busy on the network or backing off) is not repeated before
        nine times its length has passed (real time, as the GIL's scheduling
        is), so a slow or dead collector slows tracking by 10 % at most.
        """
        with self.lock:
            start = time.monotonic()
            if start < self.next_yield or self.closing:
                return
            takes = self.takes
            self.yielding += 1
            try:
                took = self.cond.wait_for(lambda: self.takes != takes or self.closing, timeout)
            finally:
                self.yielding -= 1
            if not took:  # the consumer is busy elsewhere (the network): do not insist
                end = time.monotonic()
                self.next_yield = end + (end - start) * (YIELD_SHARE_INVERSE - 1)

    def _make_room(self, dropped: list[Event]) -> bool:
        if self.overflow == "drop_oldest":
            dropped.extend(self.store.evict_oldest(1))
            return True
        if self.overflow == "block" and self.block_timeout > 0:
            self.cond.notify_all()  # make sure a worker is draining
            return (
                self.cond.wait_for(
                    lambda: len(self.store) < self.max_queue_size or self.closing,
                    self.block_timeout,
                )
                and not self.closing
            )
        return False

    def drop(self, events: list[Event], reason: str) -> None:
        """Account for events given up outside a batch, and report them."""
        with self.lock:
            self.counters.dropped[reason] += len(events)
            summary = self.drop_log.note(reason, len(events))
        if summary:
            logger.warning(summary)
        self._call_report(0, events)

    # -- consumers -----------------------------------------------------------------------------

    def ready(self) -> bool:
        """Whether a batch should be sent now (call under the lock)."""
        queued = len(self.store)
        if not queued:
            return False
        if queued >= self.batch_size or self.flush_target > self.head or self.closing:
            return True
        if self.byte_limit is not None and self.store.nbytes >= self.byte_limit:
            return True
        return self.flush_interval is not None and self.interval_due()

    def can_grow(self, limit: int, body: tuple[int, int] | None = None) -> bool:
        """Whether the next batch could still grow toward ``limit`` events, or one POST
        ``body`` (as in :meth:`take`), while nobody waits for it (call under the lock)."""
        queued = len(self.store)
        if body is not None:
            full = self.store.nbytes + body[1] * queued >= body[0]
        else:
            full = self.byte_limit is not None and self.store.nbytes >= self.byte_limit
        return queued < limit and not full and self.flush_target <= self.head and not self.closing

    def interval_due(self) -> bool:
        return self.oldest_at is not None and (
            self.clock.monotonic() - self.oldest_at >= (self.flush_interval or 0.0)
        )

    def next_timer(self) -> float | None:
        """Seconds until the interval makes a batch ready, or None (call under the lock)."""
        if self.flush_interval is None or self.oldest_at is None:
            return None
        return max(0.0, self.oldest_at + self.flush_interval - self.clock.monotonic())

    def take(
        self, max_events: int | None = None, body: tuple[int, int] | None = None
    ) -> Batch | None:
        """Lease the next batch (call under the lock).

        ``body`` is ``(max_bytes, bytes_per_event)`` of one POST body: with a
        memory store, take only what fits in one request.
        """
        limit = max_events or self.batch_size
        max_bytes = self.byte_limit if max_events is None else None
        if self.records is not None:
            if body is None:
                keys, events = self.records.take_records(limit, max_bytes)
            else:
                keys, events = self.records.take_records(limit, *body)
        else:
            items = self.store.take(limit, max_bytes)
            keys, events = [k for k, _ in items], [e for _, e in items]
        if not keys:
            return None
        batch = Batch(next(self.batch_ids), keys, events, self.head)
        self.head += len(keys)
        self.takes += 1
        self.in_flight[batch.id] = batch
        self.oldest_at = self.clock.monotonic() if len(self.store) else None
        if self.overflow == "block" or self.yielding:
            self.cond.notify_all()
        return batch

    def finish(self, batch: Batch, outcome: Outcome) -> None:
        """Account for a delivered batch and report its final outcomes once."""
        sent_keys, sent, failed, abandoned = [], [], [], []
        reasons: dict[str, int] = {}
        statuses = outcome.statuses
        if statuses.count(SENT) == len(statuses):  # the common case, without a loop
            sent_keys, sent, statuses = batch.keys, batch.events, []
        for key, event, status in zip(batch.keys, batch.events, statuses):
            if status == SENT:
                sent_keys.append(key)
                sent.append(event)
            elif status == ABANDONED:
                abandoned.append(key)
            else:
                failed.append((key, decode_record(event)))
                reasons[status] = reasons.get(status, 0) + 1
        with self.lock:
            summary = self._account(batch, outcome, sent_keys, failed, abandoned, reasons)
        if summary:
            logger.warning(summary)
        if not batch.written_off and (sent_keys or failed):
            self._call_report(SentEvents(sent), [event for _, event in failed])
        with self.lock:
            # Only now is the batch done: a flush() returns after its callback has run.
            self.in_flight.pop(batch.id, None)
            self.cond.notify_all()

    def _account(
        self,
        batch: Batch,
        outcome: Outcome,
        sent_keys: list[int],
        failed: list[tuple[int, Event]],
        abandoned: list[int],
        reasons: dict[str, int],
    ) -> str | None:
        self.store.ack(sent_keys + [key for key, _ in failed])
        self.counters.sent += len(sent_keys)
        self.counters.retried += outcome.retried
        if abandoned and not batch.written_off:
            # Cut short by a flush deadline: back to the head, to be sent later.
            self.store.release(abandoned)
            self.head -= len(abandoned)
        summary = None
        if not batch.written_off:
            for reason, count in reasons.items():
                self.counters.dropped[reason] += count
                summary = self.drop_log.note(reason, count, outcome.last_failure) or summary
        return summary

    # -- flushing ------------------------------------------------------------------------------

    def request_flush(self) -> int:
        """Ask for everything queued so far to be sent; return the watermark to wait for."""
        with self.lock:
            self.flush_target = max(self.flush_target, self.tail)
            self.cond.notify_all()
            target = self.tail
        if self.wake is not None:
            self.wake()
        return target

    def done_through(self, target: int) -> bool:
        """Whether every event queued before ``target`` has a final outcome (under the lock)."""
        if self.head < target:
            return len(self.store) == 0 and not self.in_flight
        return all(batch.start >= target for batch in self.in_flight.values())

    def wait_done(self, target: int, timeout: float | None) -> bool:
        with self.lock:
            return self.cond.wait_for(lambda: self.done_through(target), timeout)

    # -- shutdown ------------------------------------------------------------------------------

    def write_off(self) -> None:
        """After a close timeout: count everything unsent as dropped, or as spooled if durable."""
        with self.lock:
            self.closing = True
            events: list[Event] = []
            durable = self.store.durable
            if not durable:
                events = self.store.evict_oldest(len(self.store))
            pending = len(self.store) if durable else 0
            for batch in self.in_flight.values():
                batch.written_off = True
                if durable:
                    pending += len(batch.events)
                else:
                    events.extend(map(decode_record, batch.events))
            self.counters.spooled += pending
            self.counters.dropped["shutdown_timeout"] += len(events)
            summary = self.drop_log.note("shutdown_timeout", len(events)) if events else None
            self.cond.notify_all()
        if summary:
            logger.warning(summary)
        if events:
            self._call_report(0, events)

    def stats(self) -> DeliveryStats:
        with self.lock:
            in_flight = sum(len(b.events) for b in self.in_flight.values() if not b.written_off)
            dropped = dict(self.counters.dropped)
            return DeliveryStats(
                queued=len(self.store),
                in_flight=in_flight,
                sent=self.counters.sent,
                retried=self.counters.retried,
                failed=sum(dropped.values()),
                dropped=dropped,
                spooled=self.counters.spooled,
            )
