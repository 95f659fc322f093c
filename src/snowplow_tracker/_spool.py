"""SQLiteEventStore: the durable spool (re-exported by :mod:`snowplow_tracker.event_store`)."""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Union

from .exceptions import EventStoreLockedError
from .payload import dumps

logger = logging.getLogger("snowplow_tracker.event_store")

Event = dict[str, str]
Item = tuple[int, Event, int]  # key, event, approximate serialised size

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    size INTEGER NOT NULL,
    body TEXT NOT NULL
)
"""
#: Events kept in memory at most while the file cannot be written (the emitter sets it to
#: its ``max_queue_size``).
DEFAULT_MEMORY_LIMIT = 10_000


class SQLiteEventStore:
    """A durable FIFO in one SQLite file (WAL), bounded by count, bytes and age.

    Each event is committed before ``input()`` returns, so a ``kill -9`` loses
    none of them; the next process opening ``path`` sends them. When a bound is
    exceeded the oldest waiting events are dropped and counted by the emitter
    (``queue_full``; ``expired`` for ``max_age``, checked at open and then at
    most once a minute as events arrive). ``max_events`` bounds the spool; the
    emitter's ``max_queue_size`` does not apply to it. An event is removed only
    once it has a final outcome, so one that was in flight at a crash may be
    sent twice: delivery is at least once and the collector's pipeline
    de-duplicates on ``eid``.

    One store owns its file: a second store on the same path, in this process
    or another, gets :class:`~snowplow_tracker.exceptions.EventStoreLockedError`
    when it is built (an exclusive lock on ``<path>.lock``, released by
    :meth:`close` or the process's end).

    When the file cannot be written (disk full, read-only, I/O error), events
    wait in memory instead (at most the emitter's ``max_queue_size``; the
    oldest give way, counted as ``queue_full``), with a warning; nothing is
    raised to ``track_*`` or to the sending thread.
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
        from .contracts import integer, number

        where = "SQLiteEventStore()"
        integer(where, "max_events", max_events, minimum=1)
        integer(where, "max_bytes", max_bytes, minimum=1)
        number(where, "max_age", max_age, optional=True)
        self.path = Path(path)
        self.max_events = max_events
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.memory_limit = DEFAULT_MEMORY_LIMIT
        self._clock = wall_clock
        self._lock = threading.RLock()
        self._lock_fd = _lock(self.path)
        _watch(self)
        try:
            self._db = _open(self.path)
            row = self._db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM events").fetchone()
        except BaseException:
            _unlock(self._lock_fd)
            raise
        self._cursor = 0  # highest id handed out by take()
        self._released: deque[Item] = deque()
        self._leased: dict[int, Item] = {}
        self._memory: deque[Item] = deque()  # events the file could not take
        self._memory_keys = itertools.count(-1, -1)
        self._undeleted: list[int] = []  # acknowledged rows a failed DELETE left behind
        self._failing = False
        self._next_expiry = 0.0
        self._count, self._bytes = int(row[0]), int(row[1])

    def __repr__(self) -> str:
        return f"SQLiteEventStore({str(self.path)!r}, max_events={self.max_events})"

    def __len__(self) -> int:
        return self._count - len(self._leased)

    @property
    def nbytes(self) -> int:
        return self._bytes - sum(item[2] for item in self._leased.values())

    def add(self, event: Event, size: int) -> list[Event]:
        with self._lock:
            try:
                if self._memory:  # the file failed before: what waits in memory goes first
                    self._spill()
                self._db.execute(
                    "INSERT INTO events (created, size, body) VALUES (?, ?, ?)",
                    (self._clock(), size, dumps(event)),
                )
                self._working()
            except UnicodeEncodeError:
                # Not storable as UTF-8: it waits in memory, and is dropped as unencodable
                # (alone) when its batch is sent.
                self._memory.append((next(self._memory_keys), event, size))
            except Exception as exc:  # sqlite3.Error or OSError: disk full, read-only, I/O
                self._failed("store an event", exc)
                self._memory.append((next(self._memory_keys), event, size))
            self._count += 1
            self._bytes += size
            evicted = self._evict_memory_overflow()
            over = self._count - self.max_events
            if over > 0:
                evicted.extend(self.evict_oldest(over))
            while self._bytes > self.max_bytes and len(self) > 1:
                evicted.extend(self.evict_oldest(1))
            return evicted

    def _spill(self) -> None:
        """Move the events waiting in memory into the file, in one transaction, oldest first
        (they are newer than every event in the file, older than the one being added)."""
        kept: deque[Item] = deque()
        rows = []
        now = self._clock()
        for item in self._memory:
            body = dumps(item[1])
            try:
                body.encode()
            except UnicodeEncodeError:  # never storable: it stays, to be dropped when sent
                kept.append(item)
                continue
            rows.append((now, item[2], body))
        if rows:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(
                    "INSERT INTO events (created, size, body) VALUES (?, ?, ?)", rows
                )
                self._db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(Exception):
                    self._db.execute("ROLLBACK")
                raise
        self._memory = kept

    def _evict_memory_overflow(self) -> list[Event]:
        evicted: list[Event] = []
        while len(self._memory) > self.memory_limit:
            evicted.extend(self._remove([self._memory.popleft()]))
        return evicted

    def take(self, max_events: int, max_bytes: int | None) -> list[tuple[int, Event]]:
        with self._lock:
            items = self._oldest(max_events)
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

    def _oldest(self, count: int) -> list[Item]:
        """Up to ``count`` waiting items, oldest first, removed from where they wait."""
        items = [self._released.popleft() for _ in range(min(count, len(self._released)))]
        if len(items) < count:
            items.extend(self._select(count - len(items)))
        while len(items) < count and self._memory:
            items.append(self._memory.popleft())
        return items

    def _select(self, limit: int) -> list[Item]:
        try:
            rows = self._db.execute(
                "SELECT id, body, size FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (self._cursor, limit),
            ).fetchall()
        except Exception as exc:  # the events stay in the file for a later attempt
            self._failed("read events", exc)
            return []
        if rows:
            self._cursor = int(rows[-1][0])
        return [(int(key), _loads(body), int(size)) for key, body, size in rows]

    def ack(self, keys: Iterable[int]) -> None:
        with self._lock:
            items = [self._leased.pop(key) for key in keys if key in self._leased]
            self._delete([item[0] for item in items if item[0] > 0])
            self._count -= len(items)
            self._bytes -= sum(item[2] for item in items)

    def release(self, keys: Iterable[int]) -> None:
        with self._lock:
            items = [self._leased.pop(key) for key in keys if key in self._leased]
            self._released.extendleft(reversed(items))

    def evict_oldest(self, count: int) -> list[Event]:
        with self._lock:
            return self._remove(self._oldest(count))

    def expire(self) -> list[Event]:
        with self._lock:
            now = self._clock()
            if self.max_age is None or now < self._next_expiry:
                return []
            self._next_expiry = now + 60.0
            cutoff = now - self.max_age
            try:
                old = [item for item in self._released if self._created(item[0]) < cutoff]
                rows = self._db.execute(
                    "SELECT id, body, size FROM events WHERE id > ? AND created < ? ORDER BY id",
                    (self._cursor, cutoff),
                ).fetchall()
            except Exception as exc:
                self._failed("expire events", exc)
                return []
            for item in old:
                self._released.remove(item)
            old.extend((int(key), _loads(body), int(size)) for key, body, size in rows)
            if rows:
                self._cursor = max(self._cursor, int(rows[-1][0]))
            return self._remove(old)

    def _created(self, key: int) -> float:
        if key < 0:
            return float("inf")  # waiting in memory: not aged here
        row = self._db.execute("SELECT created FROM events WHERE id = ?", (key,)).fetchone()
        return float(row[0]) if row else 0.0

    def _remove(self, items: list[Item]) -> list[Event]:
        self._delete([item[0] for item in items if item[0] > 0])
        self._count -= len(items)
        self._bytes -= sum(item[2] for item in items)
        return [item[1] for item in items]

    def _delete(self, keys: list[int]) -> None:
        keys = self._undeleted + keys
        self._undeleted = []
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            try:
                self._db.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk)
            except Exception as exc:  # tried again with the next deletion
                self._failed("delete sent events", exc)
                self._undeleted.extend(keys[start:])
                return

    def _failed(self, action: str, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            logger.warning(
                "the SQLite spool %s could not %s (%s: %s); events wait in memory until "
                "it works again",
                self.path,
                action,
                type(exc).__name__,
                exc,
            )

    def _working(self) -> None:
        if self._failing:
            self._failing = False
            logger.warning("the SQLite spool %s works again", self.path)

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except Exception as exc:
                self._failed("close", exc)
            _unlock(self._lock_fd)
            self._lock_fd = -1

    def __del__(self) -> None:
        # A store dropped without close() gives its file up for the next one in this process.
        fd, self._lock_fd = getattr(self, "_lock_fd", -1), -1
        try:  # noqa: SIM105 - no contextlib here: modules may be torn down at exit
            _unlock(fd)
        except Exception:
            pass


def _open(path: Path) -> Any:
    import sqlite3  # here, so that importing the package does not load SQLite

    db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a commit survives the process being killed (not a power loss), without fsync.
        db.execute("PRAGMA synchronous=NORMAL")
        db.execute("PRAGMA busy_timeout=5000")
        db.execute(_SCHEMA)
    except BaseException:
        db.close()
        raise
    return db


def _lock(path: Path) -> int:
    """An exclusive lock on ``<path>.lock``: one store per file, across processes too."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; SQLite's own locking still applies
        return -1
    lock_path = f"{path}.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise EventStoreLockedError(
            f"SQLiteEventStore({str(path)!r}): another store, in this process or another, "
            f"uses this file (it holds {lock_path}); give each emitter its own path"
        ) from None
    return fd


_OPEN: weakref.WeakSet[SQLiteEventStore] = weakref.WeakSet()


def _forget_locks_in_child() -> None:
    # A forked child does not use its parent's store: it closes its copy of the lock file's
    # descriptor, so that the lock ends when the parent closes the store, not when the child
    # exits (the parent's descriptor keeps the lock meanwhile).
    for store in list(_OPEN):
        fd, store._lock_fd = store._lock_fd, -1
        _unlock(fd)


def _watch(store: SQLiteEventStore) -> None:
    """Remember ``store`` for the fork hook, installed with the first store (not at import)."""
    global _hooked
    if not _hooked and hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_forget_locks_in_child)
        _hooked = True
    _OPEN.add(store)


_hooked = False


def _unlock(fd: int) -> None:
    if fd >= 0:
        os.close(fd)  # closing the descriptor releases the lock


def _loads(body: str) -> Event:
    value: Event = json.loads(body)
    return value
