"""Where an emitter keeps events until they reach a final outcome.

A store is a FIFO queue with leases: :meth:`take` hands out the oldest events
and keeps them (leased) until :meth:`ack` removes them for good or
:meth:`release` puts them back at the head. :class:`MemoryEventStore` is the
default; :class:`SQLiteEventStore` keeps events in a SQLite file (WAL mode) so
that events queued or waiting for a retry survive a crash or ``kill -9`` and
are sent by the next process that opens the same file.

A store belongs to one emitter in one process; emitters call it under their
own lock. A forked child does not use its parent's SQLite store: its emitter
keeps its events in memory.

.. versionadded:: 0.6.0
"""

from __future__ import annotations

import bisect
import itertools
import json
from collections import deque
from collections.abc import Iterable
from typing import Protocol, Union

from . import payload
from .payload import dumps_bytes

Event = dict[str, str]
Item = tuple[int, Event, int]  # key, event, approximate serialised size
#: An event as a POST emitter queues it: its compact JSON without the closing brace
#: (so a body is spliced with one ``join``, each event getting its ``"stm"`` pair),
#: or the dict itself when it has no such form (empty, or already carrying ``stm``).
Record = Union[Event, bytes]


def event_size(event: Event) -> int:
    """Approximate serialised bytes of one event: exact for ASCII without escapes."""
    return sum(map(len, event)) + sum(map(len, event.values())) + 6 * len(event) + 1


def encode_record(event: Record) -> Record:
    """The compact record of ``event``, or the event itself when it has none (or is one)."""
    if type(event) is bytes or not event or "stm" in event:
        return event
    try:
        if payload.use_orjson:  # the common case, without a further call
            try:
                data: bytes = payload._orjson.dumps(event, option=payload._ORJSON_OPTIONS)
                return data[:-1]
            except TypeError:
                pass  # orjson refuses it: the json path decides
        return dumps_bytes(event)[:-1]
    except (TypeError, ValueError):  # not JSON-able, or lone surrogates: keep the dict
        return event


def decode_record(record: Record) -> Event:
    """The event dict a record was made from (equal to it, key order included)."""
    if type(record) is bytes:
        event: Event = json.loads(record + b"}")
        return event
    return record  # type: ignore[return-value]


class EventStore(Protocol):
    """The storage an emitter queues events in (see the module docstring)."""

    #: True when events outlive the process (then unsent events are kept, not dropped, at exit).
    durable: bool

    def __len__(self) -> int:
        """Events waiting (not leased)."""

    @property
    def nbytes(self) -> int:
        """Approximate serialised bytes of the events waiting."""

    def add(self, event: Event, size: int) -> list[Event]:
        """Append an event; return the oldest waiting events evicted to respect the bounds."""

    def take(self, max_events: int, max_bytes: int | None) -> list[tuple[int, Event]]:
        """Lease up to ``max_events`` of the oldest waiting events (at least one if any)."""

    def ack(self, keys: Iterable[int]) -> None:
        """Remove leased events for good."""

    def release(self, keys: Iterable[int]) -> None:
        """Put leased events back at the head, in their order."""

    def evict_oldest(self, count: int) -> list[Event]:
        """Remove and return up to ``count`` of the oldest waiting events."""

    def expire(self) -> list[Event]:
        """Remove and return waiting events older than the store's age limit."""

    def close(self) -> None:
        """Release resources; unacknowledged events stay if the store is durable."""


class MemoryEventStore:
    """An in-memory FIFO, bounded by the emitter's ``max_queue_size`` and by ``max_bytes``.

    A POST emitter hands it each event already serialised (a :data:`Record`):
    one ``bytes`` object per waiting event, about half the memory of the dict,
    and the POST body is spliced from those bytes without serialising again.
    Events come back out of :meth:`take`, :meth:`evict_oldest` and :meth:`peek`
    as the same dicts that went in.
    """

    durable = False
    #: Accepts compact records through :meth:`add_record` / :meth:`take_records`.
    compact = True

    def __init__(self, max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        #: The waiting events as stored (read-only outside this class: its length is how
        #: many wait).
        self.queue: deque[_Stored] = deque()
        # The keys of the waiting events, in queue order, with no int object per event: the
        # runs [first key, count] of released events, then the open run from _tail_key up to
        # _next_key, which each added event extends without any bookkeeping.
        self._runs: deque[list[int]] = deque()
        self._leased: dict[int, _Stored] = {}
        self._loose = 0  # waiting events stored as (event, size) rather than bare bytes
        self._next_key = 0
        self._tail_key = 1
        #: Serialised bytes of the waiting events: read-only outside this class, and like
        #: ``queue`` a plain attribute rather than a property, because the delivery core
        #: reads both for every event it adds.
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.queue)

    def add(self, event: Event, size: int) -> list[Event]:
        return self.add_record(event, size)

    def push(self, record: bytes) -> int:
        """Append a compact record when there is no ``max_bytes``; return how many wait."""
        self._next_key += 1
        queue = self.queue
        queue.append(record)
        self.nbytes += len(record) + 1
        return len(queue)

    def add_record(self, record: Record, size: int) -> list[Event]:
        """Append an event, or its compact record (``size`` is then ``len(record) + 1``)."""
        self._next_key += 1
        if type(record) is bytes and size == len(record) + 1:
            self.queue.append(record)
        else:
            self.queue.append((record, size))
            self._loose += 1
        self.nbytes += size
        if self.max_bytes is not None and self.nbytes > self.max_bytes:
            return self._evict_to_fit()
        return _NOTHING

    def _evict_to_fit(self) -> list[Event]:
        evicted: list[Event] = []
        while self.queue and self.max_bytes is not None and self.nbytes > self.max_bytes:
            evicted.extend(self.evict_oldest(1))
        return evicted

    def take(self, max_events: int, max_bytes: int | None) -> list[tuple[int, Event]]:
        keys, records = self.take_records(max_events, max_bytes)
        return list(zip(keys, map(decode_record, records)))

    def take_records(
        self, max_events: int, max_bytes: int | None, overhead: int = 0
    ) -> tuple[list[int], list[Record]]:
        """Like :meth:`take`, but the events as stored: compact records or dicts.

        ``overhead`` bytes are added to each event's size when fitting ``max_bytes``.
        """
        queue = self.queue
        count = min(max_events, len(queue))
        if max_bytes is not None and count:
            count = self._fitting(count, max_bytes, overhead)
        stored = list(map(deque.popleft, itertools.repeat(queue, count)))  # popped in C
        keys = self._pop_keys(count)
        self._leased.update(zip(keys, stored))
        if not self._loose:  # only bare records: no per-event Python code
            self.nbytes -= sum(map(len, stored)) + count
            return keys, stored  # type: ignore[return-value]
        self.nbytes -= sum(map(_stored_size, stored))
        self._loose -= sum(type(item) is tuple for item in stored)
        return keys, [_stored_record(item) for item in stored]

    def _fitting(self, count: int, max_bytes: int, overhead: int) -> int:
        """How many of the first ``count`` waiting events fit in ``max_bytes`` (at least one)."""
        head = list(itertools.islice(self.queue, count))
        if not self._loose:  # bare records: the running body size, and its cut, in C
            sizes = list(itertools.accumulate(map((1 + overhead).__add__, map(len, head))))
            return max(1, bisect.bisect_right(sizes, max_bytes))
        fitting, size = 0, 0
        for item in head:
            item_size = _stored_size(item) + overhead
            if fitting and size + item_size > max_bytes:
                break
            size += item_size
            fitting += 1
        return fitting

    def _pop_keys(self, count: int) -> list[int]:
        keys: list[int] = []
        runs = self._runs
        while count and runs:
            run = runs[0]
            first, length = run
            if length <= count:
                runs.popleft()
                keys.extend(range(first, first + length))
                count -= length
            else:
                keys.extend(range(first, first + count))
                run[0] += count
                run[1] -= count
                count = 0
        if count:  # the rest from the open run
            keys.extend(range(self._tail_key, self._tail_key + count))
            self._tail_key += count
        return keys

    def ack(self, keys: Iterable[int]) -> None:
        # Consumed in C: map calls pop for each key without Python code per event.
        deque(map(self._leased.pop, keys, itertools.repeat(None)), maxlen=0)

    def release(self, keys: Iterable[int]) -> None:
        items = [(key, self._leased.pop(key)) for key in keys if key in self._leased]
        runs = self._runs
        for key, item in reversed(items):
            self.queue.appendleft(item)
            self.nbytes += _stored_size(item)
            self._loose += type(item) is tuple
            if runs and runs[0][0] == key + 1:
                runs[0][0] = key
                runs[0][1] += 1
            else:
                runs.appendleft([key, 1])

    def evict_oldest(self, count: int) -> list[Event]:
        count = min(count, len(self.queue))
        stored = [self.queue.popleft() for _ in range(count)]
        self._pop_keys(count)
        self.nbytes -= sum(map(_stored_size, stored))
        self._loose -= sum(type(item) is tuple for item in stored)
        return [decode_record(_stored_record(item)) for item in stored]

    def expire(self) -> list[Event]:
        return []

    @property
    def event_buffer(self) -> list[Event]:
        """The waiting events, oldest first (a copy; the 1.x store's attribute)."""
        return self.peek()

    def peek(self) -> list[Event]:
        """The waiting events, oldest first."""
        return [decode_record(_stored_record(item)) for item in self.queue]

    def close(self) -> None:
        """Nothing to release."""


#: What ``add_record`` returns when nothing was evicted (shared: callers only read it).
_NOTHING: list[Event] = []

#: How the memory store keeps an event: a bare compact record, or (event or record, size).
_Stored = Union[bytes, tuple[Record, int]]


def _stored_size(item: _Stored) -> int:
    return len(item) + 1 if type(item) is bytes else item[1]


def _stored_record(item: _Stored) -> Record:
    return item if type(item) is bytes else item[0]  # type: ignore[return-value]


# The durable store lives in its own module; it is part of this module's API.
from ._spool import SQLiteEventStore  # noqa: E402

# The 1.x store protocol and its default store (snowplow_tracker.event_store.InMemoryEventStore).
from ._store_v1 import InMemoryEventStore, V1EventStore  # noqa: E402

__all__ = [
    "EventStore",
    "InMemoryEventStore",
    "MemoryEventStore",
    "Record",
    "SQLiteEventStore",
    "V1EventStore",
    "decode_record",
    "encode_record",
    "event_size",
]
