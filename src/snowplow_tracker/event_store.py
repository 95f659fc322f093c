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
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, Union

from . import payload
from .payload import dumps, dumps_bytes

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
        self._queue: deque[_Stored] = deque()
        # The keys of the waiting events, in queue order, with no int object per event: the
        # runs [first key, count] of released events, then the open run from _tail_key up to
        # _next_key, which each added event extends without any bookkeeping.
        self._runs: deque[list[int]] = deque()
        self._leased: dict[int, _Stored] = {}
        self._loose = 0  # waiting events stored as (event, size) rather than bare bytes
        self._next_key = 0
        self._tail_key = 1
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def nbytes(self) -> int:
        return self._bytes

    @property
    def queue(self) -> deque[_Stored]:
        """The waiting events as stored (for reading: its length is how many wait)."""
        return self._queue

    def add(self, event: Event, size: int) -> list[Event]:
        return self.add_record(event, size)

    def push(self, record: bytes) -> int:
        """Append a compact record when there is no ``max_bytes``; return how many wait."""
        self._next_key += 1
        queue = self._queue
        queue.append(record)
        self._bytes += len(record) + 1
        return len(queue)

    def add_record(self, record: Record, size: int) -> list[Event]:
        """Append an event, or its compact record (``size`` is then ``len(record) + 1``)."""
        self._next_key += 1
        if type(record) is bytes and size == len(record) + 1:
            self._queue.append(record)
        else:
            self._queue.append((record, size))
            self._loose += 1
        self._bytes += size
        if self.max_bytes is not None and self._bytes > self.max_bytes:
            return self._evict_to_fit()
        return _NOTHING

    def _evict_to_fit(self) -> list[Event]:
        evicted: list[Event] = []
        while self._queue and self.max_bytes is not None and self._bytes > self.max_bytes:
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
        queue = self._queue
        count = min(max_events, len(queue))
        if max_bytes is not None and count:
            count = self._fitting(count, max_bytes, overhead)
        stored = list(map(deque.popleft, itertools.repeat(queue, count)))  # popped in C
        keys = self._pop_keys(count)
        self._leased.update(zip(keys, stored))
        if not self._loose:  # only bare records: no per-event Python code
            self._bytes -= sum(map(len, stored)) + count
            return keys, stored  # type: ignore[return-value]
        self._bytes -= sum(map(_stored_size, stored))
        self._loose -= sum(type(item) is tuple for item in stored)
        return keys, [_stored_record(item) for item in stored]

    def _fitting(self, count: int, max_bytes: int, overhead: int) -> int:
        """How many of the first ``count`` waiting events fit in ``max_bytes`` (at least one)."""
        head = list(itertools.islice(self._queue, count))
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
            self._queue.appendleft(item)
            self._bytes += _stored_size(item)
            self._loose += type(item) is tuple
            if runs and runs[0][0] == key + 1:
                runs[0][0] = key
                runs[0][1] += 1
            else:
                runs.appendleft([key, 1])

    def evict_oldest(self, count: int) -> list[Event]:
        count = min(count, len(self._queue))
        stored = [self._queue.popleft() for _ in range(count)]
        self._pop_keys(count)
        self._bytes -= sum(map(_stored_size, stored))
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
        return [decode_record(_stored_record(item)) for item in self._queue]

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


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL
)
"""


class SQLiteEventStore:
    """A durable FIFO in one SQLite file (WAL), bounded by count, bytes and age.

    Each event is committed before ``input()`` returns, so a ``kill -9`` loses
    none of them; the next process opening ``path`` sends them. When a bound is
    exceeded the oldest waiting events are dropped and counted by the emitter
    (``queue_full``; ``expired`` for ``max_age``, checked at open and every
    minute). An event is removed only once it has a final outcome, so one that
    was in flight at a crash may be sent twice: delivery is at least once and
    the collector's pipeline de-duplicates on ``eid``.
    """

    durable = True

    def __init__(
        self,
        path: Union[str, Path],
        *,
        max_events: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_age: float | None = 7 * 24 * 3600.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_age = max_age
        self._clock = wall_clock
        self._lock = threading.RLock()
        import sqlite3  # here, so that importing the package does not load SQLite

        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives the process being killed (not a power loss), without fsync.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.execute(_SCHEMA)
        self._cursor = 0  # highest id handed out by take()
        self._released: deque[Item] = deque()
        self._leased: dict[int, Item] = {}
        self._next_expiry = 0.0
        row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])

    def __len__(self) -> int:
        return self._count - len(self._leased)

    @property
    def nbytes(self) -> int:
        return self._bytes - sum(item[2] for item in self._leased.values())

    def add(self, event: Event, size: int) -> list[Event]:
        with self._lock:
            self._db.execute(
                "INSERT INTO events (created, size, body) VALUES (?, ?, ?)",
                (self._clock(), size, dumps(event)),
            )
            self._count += 1
            self._bytes += size
            over = self._count - self.max_events
            evicted = self.evict_oldest(over) if over > 0 else []
            while self._bytes > self.max_bytes and len(self) > 1:
                evicted.extend(self.evict_oldest(1))
            return evicted

    def take(self, max_events: int, max_bytes: int | None) -> list[tuple[int, Event]]:
        with self._lock:
            items = [self._released.popleft() for _ in range(min(max_events, len(self._released)))]
            if len(items) < max_events:
                items.extend(self._select(max_events - len(items)))
            taken: list[tuple[int, Event]] = []
            size = 0
            for index, item in enumerate(items):
                if taken and max_bytes is not None and size + item[2] > max_bytes:
                    self._released.extendleft(reversed(items[index:]))
                    break
                size += item[2]
                self._leased[item[0]] = item
                taken.append((item[0], item[1]))
            return taken

    def _select(self, limit: int) -> list[Item]:
        rows = self._db.execute(
            "SELECT id, body, size FROM events WHERE id > ? ORDER BY id LIMIT ?",
            (self._cursor, limit),
        ).fetchall()
        if rows:
            self._cursor = int(rows[-1][0])
        return [(int(key), _loads(body), int(size)) for key, body, size in rows]

    def ack(self, keys: Iterable[int]) -> None:
        with self._lock:
            items = [self._leased.pop(key) for key in keys if key in self._leased]
            self._delete([item[0] for item in items])
            self._count -= len(items)
            self._bytes -= sum(item[2] for item in items)

    def release(self, keys: Iterable[int]) -> None:
        with self._lock:
            items = [self._leased.pop(key) for key in keys if key in self._leased]
            self._released.extendleft(reversed(items))

    def evict_oldest(self, count: int) -> list[Event]:
        with self._lock:
            items = [self._released.popleft() for _ in range(min(count, len(self._released)))]
            if len(items) < count:
                items.extend(self._select(count - len(items)))
            return self._remove(items)

    def expire(self) -> list[Event]:
        with self._lock:
            now = self._clock()
            if self.max_age is None or now < self._next_expiry:
                return []
            self._next_expiry = now + 60.0
            cutoff = now - self.max_age
            old = [item for item in self._released if self._created(item[0]) < cutoff]
            for item in old:
                self._released.remove(item)
            rows = self._db.execute(
                "SELECT id, body, size FROM events WHERE id > ? AND created < ? ORDER BY id",
                (self._cursor, cutoff),
            ).fetchall()
            old.extend((int(key), _loads(body), int(size)) for key, body, size in rows)
            return self._remove(old)

    def _created(self, key: int) -> float:
        row = self._db.execute("SELECT created FROM events WHERE id = ?", (key,)).fetchone()
        return float(row[0]) if row else 0.0

    def _remove(self, items: list[Item]) -> list[Event]:
        self._delete([item[0] for item in items])
        self._count -= len(items)
        self._bytes -= sum(item[2] for item in items)
        return [item[1] for item in items]

    def _delete(self, keys: list[int]) -> None:
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            self._db.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _loads(body: str) -> Event:
    value: Event = json.loads(body)
    return value


# The 1.x store protocol and its default store (snowplow_tracker.event_store.InMemoryEventStore).
from ._store_v1 import InMemoryEventStore as InMemoryEventStore  # noqa: E402
from ._store_v1 import V1EventStore as V1EventStore  # noqa: E402
