"""The SQLite spool under faults: a full or read-only disk, a second store on its file, and
its bounds (count, memory fallback, age) while the process runs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from snowplow_tracker import (
    AsyncEmitter,
    Emitter,
    EventStoreLockedError,
    RetryPolicy,
    SQLiteEventStore,
    Tracker,
)
from snowplow_tracker.collector import Collector
from snowplow_tracker.testing import MemoryTransport

FULL_DISK_CHILD = """
import json, logging, os, resource, signal, sys
from snowplow_tracker import {kind}, SQLiteEventStore, Tracker

logging.basicConfig(level=logging.WARNING)
path, endpoint = sys.argv[1], sys.argv[2]
store = SQLiteEventStore(path)
# Writing past the limit fails with EFBIG (SIGXFSZ ignored), as a full disk fails with ENOSPC:
# the spool's file and its write-ahead log can grow by a few pages only.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
limit = os.path.getsize(path) + 16384
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
emitter = {kind}(endpoint, method="post", buffer_size=100, event_store=store)
tracker = Tracker(emitter)
raised = 0
for n in range(1500):
    try:
        tracker.track_struct_event("disk", "full", label=str(n))
    except Exception:
        raised += 1
done = emitter.flush(timeout=20)
stats = emitter.stats()
emitter.close(timeout=5)
print(json.dumps({{"raised": raised, "done": done, "sent": stats.sent, "failed": stats.failed}}))
"""


@pytest.mark.parametrize("kind", ["Emitter", "AsyncEmitter"])
def test_a_full_disk_never_raises_into_track_and_loses_nothing(
    kind: str, collector: Collector, tmp_path: Path
) -> None:
    script = FULL_DISK_CHILD.format(kind=kind)
    child = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "spool.db"), collector.endpoint],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert child.returncode == 0, child.stderr
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report == {"raised": 0, "done": True, "sent": 1500, "failed": 0}
    assert "events wait in memory" in child.stderr  # the disk did fill up
    labels = {event["se_la"] for event in collector.wait_for(1500)}
    assert len(labels) == 1500


HOLDER = """
import sys
from snowplow_tracker import SQLiteEventStore
store = SQLiteEventStore(sys.argv[1])
print("ready", flush=True)
sys.stdin.read()
"""


def test_a_second_store_on_a_file_another_process_uses_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(EventStoreLockedError, match="another store"):
            SQLiteEventStore(path)
    finally:
        holder.communicate("", timeout=10)
    SQLiteEventStore(path).close()  # free again once that process ended


def test_a_second_store_on_a_file_this_process_uses_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    first = SQLiteEventStore(path)
    with pytest.raises(EventStoreLockedError):
        SQLiteEventStore(path)
    first.close()
    SQLiteEventStore(path).close()


def test_a_store_dropped_without_close_gives_its_file_up(tmp_path: Path) -> None:
    import gc

    path = tmp_path / "spool.db"
    SQLiteEventStore(path).add({"e": "pv"}, 10)
    gc.collect()
    again = SQLiteEventStore(path)
    assert len(again) == 1
    again.close()


def test_a_forked_child_leaves_the_lock_to_its_parent(tmp_path: Path) -> None:
    path = tmp_path / "spool.db"
    store = SQLiteEventStore(path)
    pid = os.fork()
    if pid == 0:  # the child only exists; it must not keep the lock once the parent closes
        os._exit(0 if store._lock_fd == -1 else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store.close()
    SQLiteEventStore(path).close()


def test_max_events_bounds_the_spool_not_max_queue_size(tmp_path: Path) -> None:
    store = SQLiteEventStore(tmp_path / "spool.db", max_events=300)
    emitter = Emitter(
        "c.example.com", method="post", buffer_size=1000, max_queue_size=100,
        event_store=store, transport=MemoryTransport(),
    )  # fmt: skip
    for n in range(250):
        emitter.input({"e": "pv", "eid": str(n)})
    assert (emitter.stats().queued, emitter.stats().dropped["queue_full"]) == (250, 0)
    for n in range(250, 350):
        emitter.input({"e": "pv", "eid": str(n)})
    assert (emitter.stats().queued, emitter.stats().dropped["queue_full"]) == (300, 50)
    emitter.close(timeout=1)


def test_max_queue_size_bounds_the_memory_queue() -> None:
    emitter = Emitter(
        "c.example.com", method="post", buffer_size=1000, max_queue_size=100,
        transport=MemoryTransport(),
    )  # fmt: skip
    for n in range(150):
        emitter.input({"e": "pv", "eid": str(n)})
    assert (emitter.stats().queued, emitter.stats().dropped["queue_full"]) == (100, 50)
    emitter.close(timeout=1)


def test_a_read_only_spool_falls_back_to_memory_bounded_by_max_queue_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="snowplow_tracker")
    store = SQLiteEventStore(tmp_path / "spool.db")
    transport = MemoryTransport()
    emitter = Emitter(
        "c.example.com", method="post", buffer_size=1000, max_queue_size=100,
        event_store=store, transport=transport,
    )  # fmt: skip
    store._db.execute("PRAGMA query_only=1")  # SQLite refuses every write from now on
    for n in range(150):
        emitter.input({"e": "pv", "eid": str(n)})
    assert (emitter.stats().queued, emitter.stats().dropped["queue_full"]) == (100, 50)
    assert "events wait in memory" in caplog.text
    store._db.execute("PRAGMA query_only=0")  # writable again
    emitter.input({"e": "pv", "eid": "150"})
    assert "works again" in caplog.text
    assert emitter.flush()
    assert [event["eid"] for event in transport.events] == [str(n) for n in range(50, 151)]
    emitter.close()


def test_max_age_is_enforced_while_the_process_runs(tmp_path: Path) -> None:
    now = [1_000_000.0]
    store = SQLiteEventStore(tmp_path / "spool.db", max_age=3600, wall_clock=lambda: now[0])
    dead = MemoryTransport(statuses=[503] * 100)
    emitter = AsyncEmitter(
        "c.example.com", method="post", buffer_size=1000, flush_interval=None,
        retry=RetryPolicy.never(), event_store=store, transport=dead,
    )  # fmt: skip
    tracker = Tracker(emitter)
    for _ in range(5):
        tracker.track_page_view("http://example.com/old")
    now[0] += 3601 + 60
    tracker.track_page_view("http://example.com/new")
    stats = emitter.stats()
    assert (stats.dropped["expired"], stats.queued) == (5, 1)
    emitter.close(timeout=1)


def test_the_spool_checks_its_bounds_at_construction(tmp_path: Path) -> None:
    from snowplow_tracker import InvalidTypeError, InvalidValueError

    with pytest.raises(InvalidValueError):
        SQLiteEventStore(tmp_path / "a.db", max_events=0)
    with pytest.raises(InvalidTypeError):
        SQLiteEventStore(tmp_path / "b.db", max_age="week")  # type: ignore[arg-type]
