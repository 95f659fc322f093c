"""Where the collector keeps what it received: in memory, or in SQLite (survives a restart).

Both stores hold at most ``max_events`` records and drop the oldest first, so a
long-running collector or a flood of junk cannot grow without bound.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import parse_qsl

from .enriched import _SCHEMAS, event_schema
from .micro import Record
from .validate import EVENT_TYPES, CollectorPayload, Event, PayloadFailure, decode_entities

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


_SCHEMA_OF_TYPE = {t: f"iglu:{path}" for t, path in _SCHEMAS.items()}


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


def _unstruct_schema(event: Event) -> str | None:
    unstruct = event.unstruct_event
    schema = unstruct.get("schema") if unstruct is not None else None
    return schema if isinstance(schema, str) else None


class _Facets:
    """The distinct event types, schemas and app ids seen, for the UI's filters."""

    LIMIT = 1000

    def __init__(self) -> None:
        # Raw (e, schema, aid) triples: a set add per event, the names are made on read.
        self.seen: set[tuple[str | None, str | None, str | None]] = set()

    def add(self, record: Record) -> None:
        if isinstance(record, Event) and len(self.seen) < self.LIMIT:
            raw = record.raw
            self.seen.add((raw.get("e"), _unstruct_schema(record), raw.get("aid")))

    def add_all(self, records: list[Record]) -> None:
        seen = self.seen
        if len(seen) + len(records) <= self.LIMIT:  # cannot pass the limit: one C loop
            seen.update([(r.raw.get("e"), _unstruct_schema(r), r.raw.get("aid"))
                         for r in records if isinstance(r, Event)])  # fmt: skip
        elif len(seen) < self.LIMIT:
            for record in records:
                self.add(record)

    def as_json(self) -> dict[str, list[str]]:
        values: dict[str, set[str]] = {"event_type": set(), "schema": set(), "app_id": set()}
        for kind, schema, app_id in self.seen:
            event = Event("GET", {"e": kind} if kind else {})
            if schema:
                event.unstruct_event = {"schema": schema}
            for name, value in (
                ("event_type", event.event_type), ("schema", event_schema(event)),
                ("app_id", app_id),
            ):  # fmt: skip
                if value:
                    values[name].add(value)
        return {name: sorted(found) for name, found in values.items()}


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
            good = 0
            for record_id, record in enumerate(records, self._next_id):
                record.id = record_id
                good += record.valid
            self._next_id += len(records)
            self._good += good
            self._bad += len(records) - good
            self._facets.add_all(records)
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
CREATE TABLE IF NOT EXISTS payloads (id INTEGER PRIMARY KEY, data TEXT NOT NULL, body BLOB);
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    good INTEGER NOT NULL,
    event_type TEXT,
    schema TEXT,
    app_id TEXT,
    payload_id INTEGER,
    data TEXT NOT NULL
);
DROP INDEX IF EXISTS records_good;
"""
# records_good (good, id), which earlier versions made, cost a third of each insert and
# saved nothing: every read that filters on good reads the records in id order anyway.
_PAGE_SIZE = 16384  # fewer, larger writes per request body; applies to a new file only


def _payload_json(payload: CollectorPayload) -> str:
    return json.dumps({
        "method": payload.method, "path": payload.path, "query": payload.query,
        "headers": payload.headers, "content_type": payload.content_type,
        "timestamp": payload.timestamp, "ip": payload.ip, "useragent": payload.useragent,
        "referer": payload.referer, "network_userid": payload.network_userid,
        "hostname": payload.hostname,
    })  # fmt: skip


def _payload_from(text: str, body: bytes | None) -> CollectorPayload:
    data = json.loads(text)
    data["headers"] = [tuple(h) for h in data["headers"]]
    return CollectorPayload(body=body or b"", **data)


def _raw_events(payload: CollectorPayload) -> list[dict[str, str]]:
    """The raw events of a request that passed the adapter, as extract_events made them."""
    query = dict(parse_qsl(payload.query, keep_blank_values=True)) if payload.query else {}
    if not payload.body:
        return [query]
    events: list[dict[str, str]] = json.loads(payload.body)["data"]
    for event in events:
        event.update(query)
    return events


_COLUMNS = 7  # of records
_ROWS_PER_INSERT = 50


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _insert_sql(rows: int) -> str:
    return "INSERT INTO records VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?)"] * rows)


_GOOD_JSON: dict[str, tuple[str, str]] = {}


def _good_json(method: str, index: int) -> str:
    """``json.dumps({"t": "good", "i": index, "method": method})``, made by concatenation."""
    parts = _GOOD_JSON.get(method)
    if parts is None:
        parts = _GOOD_JSON[method] = ('{"t": "good", "i": ', f', "method": {json.dumps(method)}}}')
    return parts[0] + str(index) + parts[1]


def _record_json(record: Record, index: int) -> str:
    # A good event is stored as its index in its request's body: no per-event
    # serialisation on the hot path; it is decoded again when read.
    if isinstance(record, Event):
        if record.valid:
            return _good_json(record.method, index)
        return json.dumps({"t": "event", "method": record.method, "raw": record.raw,
                           "errors": record.errors, "messages": record.messages,
                           "bad_row_type": record.bad_row_type})  # fmt: skip
    return json.dumps({"t": "payload", "errors": record.errors, "messages": record.messages,
                       "bad_row_type": record.bad_row_type})  # fmt: skip


class SqliteStore(Store):
    """Records in one SQLite file: each request once (with its body), each event as a row."""

    def __init__(self, path: str | Path, max_events: int = DEFAULT_MAX_EVENTS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_events = max_events
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute(f"PRAGMA page_size={_PAGE_SIZE}")
        self._db.execute("PRAGMA journal_mode=WAL")
        # A local test collector: surviving a restart matters, surviving a power cut does not.
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.executescript(_SCHEMA)
        self._lock = threading.RLock()
        self._facets = _Facets()
        self._good, self._bad = self._count()
        self._next_id = (self._db.execute("SELECT MAX(id) FROM records").fetchone()[0] or 0) + 1
        self._payload_cache: dict[int, CollectorPayload] = {}
        # Decoded request bodies, by id() of the cached payload they belong to.
        self._raws: dict[int, tuple[CollectorPayload, list[dict[str, str]]]] = {}
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
        payload_ids: dict[int, int | None] = {}
        indexes: dict[int, int] = {}
        next_id = self._next_id
        rows: list[Any] = []  # flat: _COLUMNS values per record
        good_count = 0
        event_types, schemas, good_json = EVENT_TYPES, _SCHEMA_OF_TYPE, _good_json
        for record in records:
            payload = record.payload
            key = id(payload)
            if key in payload_ids:
                payload_id = payload_ids[key]
                index = indexes[key] = indexes[key] + 1
            else:
                payload_id = payload_ids[key] = self._insert_payload(payload)
                index = indexes[key] = 0
            record.id = next_id
            if record.valid and type(record) is Event:  # the common case, inlined
                raw = record.raw
                event_type = event_types.get(raw.get("e", ""))
                if event_type == "unstruct":
                    schema = record.event_schema
                else:
                    schema = schemas.get(event_type) if event_type else None
                rows += (next_id, 1, event_type, schema, raw.get("aid"), payload_id,
                         good_json(record.method, index))  # fmt: skip
                good_count += 1
            else:
                good, event_type, schema, app_id = record_fields(record)
                rows += (next_id, int(good), event_type, schema, app_id, payload_id,
                         _record_json(record, index))  # fmt: skip
                good_count += good
            next_id += 1
        # Multi-row INSERTs: a sixth cheaper per row than executemany.
        step = _ROWS_PER_INSERT * _COLUMNS
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            self._db.execute(_insert_sql(len(chunk) // _COLUMNS), chunk)
        self._facets.add_all(records)
        self._good += good_count
        self._bad += len(records) - good_count
        self._next_id = next_id

    def _insert_payload(self, payload: CollectorPayload | None) -> int | None:
        if payload is None:
            return None
        cursor = self._db.execute(
            "INSERT INTO payloads (data, body) VALUES (?, ?)",
            (_payload_json(payload), payload.body),
        )
        return int(cursor.lastrowid or 0)

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
            return [self._record(row[0], row[6], row[5]) for row in rows]

    def _record(self, record_id: int, text: str, payload_id: int | None) -> Record:
        payload = self._payload(payload_id)
        data: dict[str, Any] = json.loads(text)
        if data["t"] == "good":
            raws = self._raws.get(id(payload))
            if raws is None:
                raws = self._raws[id(payload)] = (payload, _raw_events(payload))
            event = Event(data["method"], raws[1][data["i"]], payload=payload, id=record_id)
        elif data["t"] == "event":
            event = Event(data["method"], data["raw"], data["errors"],
                          bad_row_type=data["bad_row_type"], messages=data["messages"],
                          payload=payload, id=record_id)  # fmt: skip
        else:
            return PayloadFailure(data["bad_row_type"], data["errors"], data["messages"],
                                  payload, record_id)  # fmt: skip
        decode_entities(event)
        return event

    def _payload(self, payload_id: int | None) -> CollectorPayload:
        if payload_id is None:
            return CollectorPayload("GET", "/i")
        cached = self._payload_cache.get(payload_id)
        if cached is None:
            row = self._db.execute(
                "SELECT data, body FROM payloads WHERE id = ?", (payload_id,)
            ).fetchone()
            cached = _payload_from(row[0], row[1]) if row else CollectorPayload("GET", "/i")
            if len(self._payload_cache) > 1000:
                self._payload_cache.clear()
                self._raws.clear()
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
            self._raws.clear()

    def close(self) -> None:
        with self._lock:
            self._db.close()
