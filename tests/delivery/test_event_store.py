"""The event stores: FIFO leases, bounds, and SQLite durability across reopening."""

from __future__ import annotations

from pathlib import Path

import pytest

from snowplow_tracker import MemoryEventStore, SQLiteEventStore


def ev(n: int) -> dict[str, str]:
    return {"eid": str(n), "e": "pv"}


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> object:
    if request.param == "memory":
        return MemoryEventStore()
    return SQLiteEventStore(tmp_path / "spool.db")


def test_take_ack_release_keep_fifo_order(store: object) -> None:
    s: SQLiteEventStore = store  # type: ignore[assignment]
    for n in range(5):
        s.add(ev(n), 10)
    first = s.take(2, None)
    second = s.take(2, None)
    assert [e["eid"] for _, e in first + second] == ["0", "1", "2", "3"]
    assert len(s) == 1
    s.release([key for key, _ in first])
    s.ack([key for key, _ in second])
    assert [e["eid"] for _, e in s.take(10, None)] == ["0", "1", "4"]
    assert len(s) == 0
    assert s.nbytes == 0


def test_take_respects_bytes_but_returns_at_least_one(store: object) -> None:
    s: SQLiteEventStore = store  # type: ignore[assignment]
    for n in range(4):
        s.add(ev(n), 100)
    assert len(s.take(10, 250)) == 2
    assert len(s.take(10, 50)) == 1
    assert [e["eid"] for e in s.evict_oldest(5)] == ["3"]


def test_sqlite_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    store = SQLiteEventStore(path)
    for n in range(3):
        store.add(ev(n), 10)
    leased = store.take(2, None)
    store.ack([leased[0][0]])
    store.close()  # the leased, unacknowledged event comes back
    again = SQLiteEventStore(path)
    assert len(again) == 2
    assert [e["eid"] for _, e in again.take(10, None)] == ["1", "2"]
    again.close()


def test_sqlite_bounds_drop_the_oldest(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "a.db", max_events=3, max_bytes=10_000)
    evicted = [e for n in range(5) for e in store.add(ev(n), 10)]
    assert [e["eid"] for e in evicted] == ["0", "1"]
    by_bytes = SQLiteEventStore(tmp_path / "b.db", max_bytes=25)
    evicted = [e for n in range(4) for e in by_bytes.add(ev(n), 10)]
    assert [e["eid"] for e in evicted] == ["0", "1"]
    assert len(by_bytes) == 2


def test_sqlite_expires_old_events(tmp_path: Path) -> None:
    now = [1000.0]
    store = SQLiteEventStore(tmp_path / "c.db", max_age=60, wall_clock=lambda: now[0])
    store.add(ev(0), 10)
    now[0] += 30
    store.add(ev(1), 10)
    now[0] += 40
    assert [e["eid"] for e in store.expire()] == ["0"]
    assert store.expire() == []  # checked at most once a minute
    assert len(store) == 1
