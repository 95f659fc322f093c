"""Where the collector keeps what it received: in memory, or in SQLite (survives a restart).

Both stores hold at most ``max_events`` records and drop the oldest first, so a
long-running collector or a flood of junk cannot grow without bound.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .enriched import event_schema
from .micro import Record
from .validate import CollectorPayload, Event, PayloadFailure, decode_entities

DEFAULT_MAX_EVENTS = 100_000


@dataclass(frozen=True)
class Query:
    """What the UI asks for: a kind, filters, and a window of ids."""

    kind: str = "all"  # all, good or bad
    event_type: Optional[str] = None
    schema: Optional[str] = None
    app_id: Optional[str] = None
    after: int = 0
    before: Optional[int] = None
    limit: int = 100


def record_fields(record: Record) -> tuple[bool, Optional[str], Optional[str], Optional[str]]:
    """(good, event type, schema, app id) of a record, the columns the UI filters on."""
    if isinstance(record, Event):
        return record.valid, record.event_type, event_schema(record), record.raw.get("aid")
    return False, None, None, None


def matches(record: Record, query: Query) -> bool:
    good, event_type, schema, app_id = record_fields(record)
    if query.kind != "all" and good != (query.kind == "good"):
        return False
    if query.event_type and event_type != query.event_type:
        return False
    if query.schema and schema != query.schema:
        return False
    return not query.app_id or app_id == query.app_id


class Store:
    """The interface the Micro API and the UI read through."""

    max_events: int

    def add(self, records: list[Record]) -> None:
        raise NotImplementedError

    def counts(self) -> tuple[int, int]:
        """(good, bad)."""
        raise NotImplementedError

    def newest_first(self, good: bool) -> Iterable[Record]:
        raise NotImplementedError

    def query(self, query: Query) -> list[Record]:
        """Records matching ``query``, newest first."""
        raise NotImplementedError

    def get(self, record_id: int) -> Record | None:
        raise NotImplementedError

    def facets(self) -> dict[str, list[str]]:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release resources."""


class _Facets:
    def __init__(self) -> None:
        self.values: dict[str, set[str]] = {"event_type": set(), "schema": set(), "app_id": set()}

    def add(self, record: Record) -> None:
        _, event_type, schema, app_id = record_fields(record)
        for name, value in (("event_type", event_type), ("schema", schema), ("app_id", app_id)):
            if value and len(self.values[name]) < 1000:
                self.values[name].add(value)

    def as_json(self) -> dict[str, list[str]]:
        return {name: sorted(values) for name, values in self.values.items()}


class MemoryStore(Store):
    def __init__(self, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.max_events = max_events
        self._records: list[Record] = []
        self._good = self._bad = 0
        self._next_id = 1
        self._facets = _Facets()
        self._lock = threading.RLock()

    def add(self, records: list[Record]) -> None:
        with self._lock:
            for record in records:
                record.id = self._next_id
                self._next_id += 1
                if record.valid:
                    self._good += 1
                else:
                    self._bad += 1
                self._facets.add(record)
            self._records.extend(records)
            excess = len(self._records) - self.max_events
            if excess > 0:
                for record in self._records[:excess]:
                    if record.valid:
                        self._good -= 1
                    else:
                        self._bad -= 1
                del self._records[:excess]

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self._good, self._bad

    def newest_first(self, good: bool) -> list[Record]:
        with self._lock:
            return [r for r in reversed(self._records) if r.valid == good]

    def query(self, query: Query) -> list[Record]:
        found: list[Record] = []
        with self._lock:
            for record in reversed(self._records):
                if record.id <= query.after:
                    break
                if query.before is not None and record.id >= query.before:
                    continue
                if matches(record, query):
                    found.append(record)
                    if len(found) >= query.limit:
                        break
        return found

    def get(self, record_id: int) -> Record | None:
        with self._lock:
            for record in reversed(self._records):
                if record.id == record_id:
                    return record
        return None

    def facets(self) -> dict[str, list[str]]:
        with self._lock:
            return self._facets.as_json()

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._good = self._bad = 0
            self._facets = _Facets()


# -- SQLite ---------------------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS payloads (id INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    good INTEGER NOT NULL,
    event_type TEXT,
    schema TEXT,
    app_id TEXT,
    payload_id INTEGER,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_good ON records (good, id);
"""


def _payload_json(payload: CollectorPayload, keep_body: bool) -> str:
    return json.dumps(
        {
            "method": payload.method,
            "path": payload.path,
            "query": payload.query,
            "headers": payload.headers,
            "body": base64.b64encode(payload.body).decode("ascii") if keep_body else "",
            "content_type": payload.content_type,
            "timestamp": payload.timestamp,
            "ip": payload.ip,
            "useragent": payload.useragent,
            "referer": payload.referer,
            "network_userid": payload.network_userid,
            "hostname": payload.hostname,
        }
    )


def _payload_from(text: str) -> CollectorPayload:
    data = json.loads(text)
    data["body"] = base64.b64decode(data["body"])
    data["headers"] = [tuple(h) for h in data["headers"]]
    return CollectorPayload(**data)


def _record_json(record: Record) -> str:
    if isinstance(record, Event):
        return json.dumps(
            {
                "t": "event",
                "method": record.method,
                "raw": record.raw,
                "errors": record.errors,
                "messages": record.messages,
                "bad_row_type": record.bad_row_type,
            }
        )
    return json.dumps(
        {
            "t": "payload",
            "errors": record.errors,
            "messages": record.messages,
            "bad_row_type": record.bad_row_type,
        }
    )


def _record_from(record_id: int, text: str, payload: CollectorPayload) -> Record:
    data: dict[str, Any] = json.loads(text)
    if data["t"] == "event":
        event = Event(
            data["method"],
            data["raw"],
            data["errors"],
            bad_row_type=data["bad_row_type"],
            messages=data["messages"],
            payload=payload,
            id=record_id,
        )
        decode_entities(event)
        return event
    return PayloadFailure(
        data["bad_row_type"], data["errors"], data["messages"], payload, record_id
    )


class SqliteStore(Store):
    """Records in one SQLite file; requests are stored once, bodies only for bad ones."""

    def __init__(self, path: str | Path, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._facets = _Facets()
        self._good, self._bad = self._count()
        self._payload_cache: dict[int, CollectorPayload] = {}
        for record in self._load("SELECT * FROM records ORDER BY id DESC LIMIT 1000", ()):
            self._facets.add(record)

    def _count(self) -> tuple[int, int]:
        rows = dict(self._db.execute("SELECT good, COUNT(*) FROM records GROUP BY good"))
        return int(rows.get(1, 0)), int(rows.get(0, 0))

    def add(self, records: list[Record]) -> None:
        if not records:
            return
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._insert(records)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            if self._good + self._bad > self.max_events * 1.1:
                self._trim()

    def _insert(self, records: list[Record]) -> None:
        payload_ids: dict[int, int] = {}
        next_id = (self._db.execute("SELECT MAX(id) FROM records").fetchone()[0] or 0) + 1
        rows = []
        for record in records:
            payload = record.payload
            if payload is not None and id(payload) not in payload_ids:
                keep_body = any(not r.valid for r in records if r.payload is payload)
                cursor = self._db.execute(
                    "INSERT INTO payloads (data) VALUES (?)", (_payload_json(payload, keep_body),)
                )
                payload_ids[id(payload)] = int(cursor.lastrowid or 0)
            good, event_type, schema, app_id = record_fields(record)
            record.id = next_id
            next_id += 1
            rows.append(
                (
                    record.id,
                    int(good),
                    event_type,
                    schema,
                    app_id,
                    payload_ids.get(id(payload)),
                    _record_json(record),
                )
            )
            self._facets.add(record)
            if good:
                self._good += 1
            else:
                self._bad += 1
        self._db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)", rows)

    def _trim(self) -> None:
        cutoff = self._db.execute(
            "SELECT id FROM records ORDER BY id DESC LIMIT 1 OFFSET ?", (self.max_events,)
        ).fetchone()
        if cutoff is not None:
            self._db.execute("DELETE FROM records WHERE id <= ?", (cutoff[0],))
            self._db.execute(
                "DELETE FROM payloads WHERE id < (SELECT COALESCE(MIN(payload_id), 0) FROM records)"
            )
        self._good, self._bad = self._count()

    def _load(self, sql: str, params: tuple[Any, ...]) -> list[Record]:
        with self._lock:
            rows = self._db.execute(sql, params).fetchall()
            out = []
            for row in rows:
                record_id, payload_id, data = row[0], row[5], row[6]
                out.append(_record_from(record_id, data, self._payload(payload_id)))
            return out

    def _payload(self, payload_id: int | None) -> CollectorPayload:
        if payload_id is None:
            return CollectorPayload("GET", "/i")
        cached = self._payload_cache.get(payload_id)
        if cached is None:
            row = self._db.execute(
                "SELECT data FROM payloads WHERE id = ?", (payload_id,)
            ).fetchone()
            cached = _payload_from(row[0]) if row else CollectorPayload("GET", "/i")
            if len(self._payload_cache) > 1000:
                self._payload_cache.clear()
            self._payload_cache[payload_id] = cached
        return cached

    def counts(self) -> tuple[int, int]:
        with self._lock:
            return self._good, self._bad

    def newest_first(self, good: bool) -> list[Record]:
        return self._load("SELECT * FROM records WHERE good = ? ORDER BY id DESC", (int(good),))

    def query(self, query: Query) -> list[Record]:
        where, params = ["id > ?"], [query.after]
        if query.before is not None:
            where.append("id < ?")
            params.append(query.before)
        if query.kind != "all":
            where.append("good = ?")
            params.append(int(query.kind == "good"))
        for column in ("event_type", "schema", "app_id"):
            value = getattr(query, column)
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        sql = f"SELECT * FROM records WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        return self._load(sql, (*params, query.limit))

    def get(self, record_id: int) -> Record | None:
        found = self._load("SELECT * FROM records WHERE id = ?", (record_id,))
        return found[0] if found else None

    def facets(self) -> dict[str, list[str]]:
        with self._lock:
            return self._facets.as_json()

    def reset(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM records")
            self._db.execute("DELETE FROM payloads")
            self._good = self._bad = 0
            self._facets = _Facets()
            self._payload_cache.clear()

    def close(self) -> None:
        with self._lock:
            self._db.close()
