"""The delivery core's queue: :class:`DeliveryCore`, shared by every emitter.

The bounded queue (an :class:`~snowplow_tracker.event_store.EventStore`) with
its overflow policy, batching by count, bytes and interval, the watermarks
that let ``flush`` wait for exactly the events queued before it, and the
counters behind ``stats()``. All state changes happen under one lock, never
held across network I/O.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable

from ._delivery import (
    ABANDONED,
    DROP_REASONS,
    SENT,
    Batch,
    Clock,
    DeliveryStats,
    DropLog,
    Outcome,
    logger,
)
from ._sent import SentEvents
from ._text import check_event_text
from .event_store import (
    EventStore,
    MemoryEventStore,
    Record,
    decode_record,
    encode_record,
    event_size,
)

Event = dict[str, str]


class Counters:
    __slots__ = ("dropped", "redirected", "retried", "sent", "spooled")

    def __init__(self) -> None:
        self.sent = 0
        self.redirected = 0
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
        self.memory_queue_size = max_queue_size
        self.max_queue_size = max_queue_size  # set by reset(): the bound of the store in use
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
        self.max_queue_size = self.memory_queue_size
        if store.durable:
            # A durable store is bounded by its own max_events (it evicts the oldest, counted
            # as queue_full); max_queue_size bounds the memory queue it falls back to.
            self.max_queue_size = getattr(store, "max_events", None) or self.memory_queue_size
            if hasattr(store, "memory_limit"):
                store.memory_limit = self.memory_queue_size
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
            if record.__class__ is bytes:
                size = len(record) + 1
            else:
                # The input() that queued it left the text check to the encoding, which
                # failed (or had nothing to do): a lone surrogate is refused here, at that call.
                check_event_text(event)
                size = event_size(event)
        else:
            size = event_size(event)
        if self.max_event_bytes is not None and size > self.max_event_bytes:
            self.drop([event], "too_large")
            return 0
        store = self.store
        dropped: list[Event] = []
        expired: list[Event] = []
        with self.lock:
            if store.durable:  # max_age holds while the process runs, not only at start
                expired = store.expire()
                self.head += len(expired)
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
        if expired:
            self.drop(expired, "expired")
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
        self.counters.redirected += outcome.redirected
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
                redirected=self.counters.redirected,
            )
