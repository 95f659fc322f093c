"""The delivery core shared by Emitter, AsyncEmitter and AsyncioEmitter.

Two sans-I/O parts, driven by each emitter in its own way (caller's thread,
worker threads, an asyncio task):

* ``_queue.DeliveryCore``: the bounded queue with its batching rules and
  counters (its own module).
* :func:`deliver`: a generator that sends one batch, yielding :class:`Send`
  and :class:`Sleep` commands and receiving their results, following a
  :class:`RetryPolicy`. The drivers answer a ``Sleep`` with an interruptible
  wait, so shutdown and flush deadlines cut a backoff short.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Optional, Protocol, Union

from ._body import Unencodable
from ._values import Value
from .event_store import Record
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
    "unencodable",
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
    at close, to be sent by the next process. ``redirected`` counts redirects
    followed (requests, not events).

    .. versionadded:: 0.6.0
    """

    # The order of the fields in repr(), as in the constructor.
    __slots__ = (  # noqa: RUF023
        "queued",
        "in_flight",
        "sent",
        "retried",
        "failed",
        "dropped",
        "spooled",
        "redirected",
    )
    queued: int
    in_flight: int
    sent: int
    retried: int
    failed: int
    dropped: dict[str, int]
    spooled: int
    redirected: int

    def __init__(
        self,
        queued: int,
        in_flight: int,
        sent: int,
        retried: int,
        failed: int,
        dropped: dict[str, int],
        spooled: int = 0,
        redirected: int = 0,
    ) -> None:
        self._init(
            queued=queued,
            in_flight=in_flight,
            sent=sent,
            retried=retried,
            failed=failed,
            dropped=dropped,
            spooled=spooled,
            redirected=redirected,
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
            "redirected": self.redirected,
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

    __slots__ = ("last_failure", "redirected", "retried", "statuses")

    def __init__(self, statuses: list[str]) -> None:
        self.statuses = statuses
        self.retried = 0
        self.redirected = 0
        self.last_failure: str | None = None  # how the last failed attempt ended, for the log


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
        if isinstance(unit, Unencodable):  # never sent: dropped alone, the rest goes out
            outcome.statuses.extend(["unencodable"] * len(unit))
            continue
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
        outcome.redirected += getattr(result, "redirects", 0)
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
    send: Callable[[list[Record], float], Any],
    clock: Clock,
    stop: threading.Event,
    deadline: float | None = None,
    sleep: bool = True,
) -> Outcome:
    """Drive :func:`deliver` in this thread; ``stop`` or ``deadline`` cut it short.

    ``send(events, seconds)`` gets the time left before ``deadline`` (``inf``
    without one) and must return by then. With ``sleep=False`` a backoff ends
    the delivery at once instead (the rest is abandoned, to be retried by a
    later flush).
    """
    command = next(gen)
    while True:
        if isinstance(command, Send):
            left = math.inf if deadline is None else deadline - clock.monotonic()
            reply: Any = STOP if stop.is_set() or left <= 0 else send(command.events, left)
            if reply is not None and reply.status is None and _past(deadline, clock):
                reply = STOP  # cut short by the caller's deadline, not failed: it stays queued
        else:
            reply = _sleep(command.seconds, clock, stop, deadline) if sleep else True
        try:
            command = gen.send(reply)
        except StopIteration as done:
            result: Outcome = done.value
            return result


def _past(deadline: float | None, clock: Clock) -> bool:
    return deadline is not None and clock.monotonic() >= deadline


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
