"""Whole processes: exit without flush, exit with the collector down, fork, kill -9 with a spool."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from delivery_support import eids_of

from snowplow_tracker.collector import Collector

SCRIPT = textwrap.dedent(
    """
    import asyncio, atexit, json, os, sys, time
    from snowplow_tracker import AsyncEmitter, Emitter, RetryPolicy, SQLiteEventStore, Tracker
    from snowplow_tracker.aio import AsyncioEmitter

    args = json.loads(sys.argv[1])
    emitter = None

    class Recorder:
        eids = []
        def input(self, payload):
            self.eids.append(payload["eid"])

    def say(tag, value):
        print(tag, json.dumps(value), flush=True)

    atexit.register(lambda: emitter and say("STATS", emitter.stats().as_dict()))

    def make():
        options = dict(args.get("options", {}))
        if "retry" in options:
            options["retry"] = RetryPolicy(**options["retry"])
        if "spool" in args:
            options["event_store"] = SQLiteEventStore(args["spool"])
        kind = {"sync": Emitter, "thread": AsyncEmitter, "asyncio": AsyncioEmitter}[args["kind"]]
        return kind(args["endpoint"], **options)

    def track(tracker, count):
        for n in range(count):
            tracker.track_struct_event("cat", f"action-{n}")

    async def main_async():
        global emitter
        emitter = make()
        tracker = Tracker([emitter, Recorder()])
        track(tracker, args.get("count", 0))
        say("EIDS", Recorder.eids)
        if args.get("flush"):
            await emitter.flush(args["flush"])
        if args.get("hang"):
            say("READY", len(Recorder.eids))
            await asyncio.sleep(120)

    def main():
        global emitter
        emitter = make()
        tracker = Tracker([emitter, Recorder()])
        if args.get("fork"):
            track(tracker, 1)
            emitter.flush(5)  # workers and connections exist before the fork
            Recorder.eids.clear()
        track(tracker, args.get("count", 0))
        say("EIDS", Recorder.eids)
        if args.get("fork"):
            pid = os.fork()
            if pid == 0:
                Recorder.eids.clear()
                track(tracker, 2)
                say("CHILD", Recorder.eids)
                sys.exit(0)  # the child's own exit flush sends its two events
            os.waitpid(pid, 0)
        if args.get("flush"):
            emitter.flush(args["flush"])
        if args.get("hang"):
            say("READY", len(Recorder.eids))
            time.sleep(120)

    asyncio.run(main_async()) if args["kind"] == "asyncio" else main()
    """
)


def run_script(tmp_path: Path, **args: Any) -> dict[str, Any]:
    """Run the script to completion (a hang fails the test) and parse what it printed."""
    script = tmp_path / "track.py"
    script.write_text(SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), json.dumps(args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return parse(done.stdout)


def parse(stdout: str) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for line in stdout.splitlines():
        tag, _, value = line.partition(" ")
        found.setdefault(tag, []).append(json.loads(value))
    return found


@pytest.mark.parametrize(
    ("kind", "method"),
    [("thread", "get"), ("thread", "post"), ("sync", "post"), ("asyncio", "post")],
)
def test_script_exiting_without_flush_loses_nothing(
    tmp_path: Path, collector: Collector, kind: str, method: str
) -> None:
    """25 events tracked, no flush, normal exit: all 25 arrive, each once."""
    out = run_script(
        tmp_path,
        kind=kind,
        endpoint=collector.endpoint,
        count=25,
        options={"method": method, "flush_interval": None}
        if kind != "sync"
        else {"method": method},
    )
    eids = out["EIDS"][0]
    assert len(eids) == 25
    assert Counter(eids_of(collector)) == Counter(eids)
    assert out["STATS"][0]["sent"] == 25


DOWN_RETRY = {"max_attempts": None, "deadline": 60, "backoff_base": 0.05, "backoff_max": 0.2}


@pytest.mark.parametrize("kind", ["sync", "thread", "asyncio"])
def test_exit_is_bounded_when_the_collector_is_down(
    tmp_path: Path, dead_endpoint: str, kind: str
) -> None:
    """A dead collector cannot hang exit; every event is counted as dropped.

    (The sync Emitter tracks fewer events than its buffer size: with retries
    opted in, a full buffer is retried in the tracking thread itself.)
    """
    count = 5 if kind == "sync" else 25
    options = {"method": "post", "exit_timeout": 0.5, "retry": DOWN_RETRY}
    out = run_script(tmp_path, kind=kind, endpoint=dead_endpoint, count=count, options=options)
    stats = out["STATS"][0]
    assert stats["sent"] == 0
    assert stats["failed"] == count
    assert stats["dropped"]["shutdown_timeout"] == count


def test_exit_with_a_spool_keeps_the_events(tmp_path: Path, dead_endpoint: str) -> None:
    options = {"method": "post", "exit_timeout": 0.3, "retry": DOWN_RETRY}
    spool = str(tmp_path / "spool.db")
    out = run_script(
        tmp_path, kind="thread", endpoint=dead_endpoint, count=25, options=options, spool=spool
    )
    assert out["STATS"][0]["spooled"] == 25
    assert out["STATS"][0]["failed"] == 0
    assert spool_rows(spool) == 25


@pytest.mark.parametrize("kind", ["sync", "thread"])
def test_fork_after_construction(tmp_path: Path, collector: Collector, kind: str) -> None:
    """The child's events arrive once, the parent's are not duplicated, nothing hangs."""
    options = {"method": "post", "buffer_size": 100}
    if kind == "thread":
        options["flush_interval"] = None
    out = run_script(
        tmp_path, kind=kind, endpoint=collector.endpoint, count=3, fork=True, options=options
    )
    parent, child = out["EIDS"][0], out["CHILD"][0]
    assert len(parent) == 3
    assert len(child) == 2
    arrived = Counter(eids_of(collector))
    assert all(arrived[eid] == 1 for eid in parent + child)
    assert len(arrived) == 6  # plus the one event sent before the fork
    assert sum(arrived.values()) == 6


def spool_rows(path: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])


@pytest.mark.parametrize("kind", ["sync", "thread", "asyncio"])
def test_kill_9_with_a_sqlite_spool_then_restart(
    tmp_path: Path, collector: Collector, dead_endpoint: str, kind: str
) -> None:
    """Events queued and retrying in a killed process are all sent by the next one."""
    script = tmp_path / "track.py"
    script.write_text(SCRIPT)
    spool = str(tmp_path / "spool.db")
    fill = {
        "kind": kind,
        "endpoint": dead_endpoint,
        "count": 30,
        "spool": spool,
        "hang": True,
        "flush": 0.3,
        "options": {"method": "post", "buffer_size": 7, "retry": DOWN_RETRY},
    }
    process = subprocess.Popen(
        [sys.executable, str(script), json.dumps(fill)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline(), process.stdout.readline()]
        assert lines[1].startswith("READY"), lines
        eids = parse(lines[0])["EIDS"][0]
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
    assert process.returncode == -signal.SIGKILL
    assert spool_rows(spool) == 30
    out = run_script(
        tmp_path,
        kind=kind,
        endpoint=collector.endpoint,
        spool=spool,
        flush=20,
        options={"method": "post"},
    )
    assert Counter(eids_of(collector)) == Counter(eids)
    assert out["STATS"][0]["sent"] == 30
    assert spool_rows(spool) == 0


ASYNCIO_FORK_SCRIPT = textwrap.dedent(
    """
    import asyncio, json, os, sys
    from snowplow_tracker import Tracker
    from snowplow_tracker.aio import AsyncioEmitter

    endpoint = sys.argv[1]
    emitter = AsyncioEmitter(endpoint, method="post", buffer_size=100)
    tracker = Tracker(emitter)
    eids = []

    class Recorder:
        def input(self, payload):
            eids.append(payload["eid"])

    tracker.add_emitter(Recorder())

    def track(count):
        for n in range(count):
            tracker.track_struct_event("cat", f"action-{n}")

    async def send(count):
        track(count)
        assert await emitter.flush(10)

    asyncio.run(send(1))  # a sending task, an HTTP client and a loop existed before the fork
    eids.clear()
    track(3)  # queued outside any loop: the parent's, never the child's
    print("PARENT", json.dumps(eids), flush=True)
    pid = os.fork()
    if pid == 0:
        eids.clear()
        asyncio.run(send(2))  # a child runs its own loop, as a preforked server worker does
        print("CHILD", json.dumps(eids), flush=True)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert status == 0, status
    asyncio.run(send(0))  # the parent's three queued events go out from its next loop
    print("STATS", json.dumps(emitter.stats().as_dict()), flush=True)
    """
)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_asyncio_emitter_fork_between_loops(tmp_path: Path, collector: Collector) -> None:
    """A preforking asyncio server: the emitter is made in the parent, each process runs its
    own event loop; every event arrives once and the child never sends the parent's."""
    script = tmp_path / "fork_asyncio.py"
    script.write_text(ASYNCIO_FORK_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), collector.endpoint],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = parse(done.stdout)
    parent, child = out["PARENT"][0], out["CHILD"][0]
    assert (len(parent), len(child)) == (3, 2)
    arrived = Counter(eids_of(collector))
    assert sum(arrived.values()) == len(arrived) == 6  # plus the one sent before the fork
    assert all(arrived[eid] == 1 for eid in parent + child)
    assert out["STATS"][0]["sent"] == 4
