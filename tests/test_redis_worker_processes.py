"""RedisWorker as real processes: kill -9, four workers, SIGINT/SIGTERM, release-note example."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker import Emitter, RedisEmitter
from snowplow_tracker.collector import Collector, Response
from snowplow_tracker.redis_worker import RedisWorker, slot_key

from .redis_celery_support import (
    REDIS_URL,
    child_env,
    derived_keys,
    eids,
    end,
    start,
    stats_line,
    track_many,
    wait_until,
    worker_command,
)
from .test_seeds import PRELUDE, python_blocks, seed_file

pytestmark = pytest.mark.redis


def stored_eids(client: Any, key: str) -> list[str]:
    return [json.loads(raw)["eid"] for raw in client.lrange(key, 0, -1)]


def registered_worker(client: Any, key: str) -> str:
    wait_until(lambda: client.scard(slot_key(key, "workers")) == 1, 20, "the worker to register")
    (member,) = client.smembers(slot_key(key, "workers"))
    return str(member.decode())


def test_kill_9_mid_run_then_another_worker_loses_nothing(
    client: Any, key: str, collector: Collector, tmp_path: Path
) -> None:
    total, batch = 10_000, 100
    track_many(RedisEmitter(client, key), total)
    everything = set(stored_eids(client, key))
    command = worker_command(
        key, collector.endpoint, "--method", "post", "--batch-size", str(batch)
    )
    first = start([*command, "--heartbeat-ttl", "1"], tmp_path / "first.log")
    try:
        dead_id = registered_worker(client, key)
        processing = slot_key(key, f"processing:{dead_id}")
        wait_until(lambda: len(collector.events) >= 3000, 60, "3000 events sent")
        # Hold the next request: once it has taken the held answer, its batch sits in the
        # worker's processing list, unacknowledged, until the kill lands.
        collector.script(Response(200, delay=60))
        wait_until(
            lambda: collector.scripted() == 0 and client.llen(processing) > 0,
            60,
            "a batch held in flight",
        )
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    finally:
        end(first)
    in_flight = client.llen(processing)
    assert 0 < in_flight <= batch
    collector.respond_with(200)
    second = RedisWorker(
        Emitter(collector.endpoint, method="post", buffer_size=batch),
        key,
        client,
        heartbeat_ttl=1,
        poll_interval=0.1,
    )
    thread = threading.Thread(target=second.run, kwargs={"install_signal_handlers": False})
    thread.start()
    try:
        collector.wait_for(total, 60)
        # The dead worker's batch may have reached the collector before the kill (between the
        # answer and the ack), so every eid can be in before the recovery: wait for both.
        wait_until(
            lambda: set(eids(collector.events)) == everything and second.stats()["recovered"] > 0,
            60,
            "every eid, and the dead worker's batch recovered",
        )
    finally:
        second.request_shutdown()
        thread.join(20)
    counts = eids(collector.events)
    duplicates = sum(counts.values()) - total
    stats = second.stats()
    assert stats["recovered"] == in_flight  # counted, and only what the dead worker held
    assert 0 <= duplicates <= in_flight
    assert derived_keys(client, key) == []


def test_four_worker_processes_drain_one_key_without_loss_or_duplicates(
    client: Any, key: str, collector: Collector, tmp_path: Path
) -> None:
    total = 8000
    track_many(RedisEmitter(client, key), total)
    command = worker_command(
        key, collector.endpoint, "--method", "post", "--batch-size", "50", "--stop-when-empty"
    )
    logs = [tmp_path / f"worker{i}.log" for i in range(4)]
    processes = [start(command, log) for log in logs]
    try:
        for process in processes:
            assert process.wait(60) == 0
    finally:
        for process in processes:
            end(process)
    stats = [stats_line(log) for log in logs]
    counts = eids(collector.events)
    assert len(counts) == total
    assert max(counts.values()) == 1
    assert sum(s["sent"] for s in stats) == total
    assert sum(1 for s in stats if s["sent"]) >= 2, stats  # they really ran side by side
    assert derived_keys(client, key) == []


@pytest.mark.parametrize(
    ("signum", "delay", "shutdown_timeout"),
    [
        # The batch in flight finishes within the bound and is acknowledged.
        (signal.SIGINT, 0.05, 5.0),
        # The batch in flight outlasts the bound: it goes back to Redis.
        (signal.SIGTERM, 3.0, 0.5),
    ],
)
def test_a_signal_stops_the_worker_within_the_bound_and_loses_nothing(
    client: Any,
    key: str,
    collector: Collector,
    tmp_path: Path,
    signum: int,
    delay: float,
    shutdown_timeout: float,
) -> None:
    total = 500
    track_many(RedisEmitter(client, key), total)
    everything = set(stored_eids(client, key))
    collector.respond_with(200, delay=delay)
    command = worker_command(
        key,
        collector.endpoint,
        "--method",
        "post",
        "--batch-size",
        "20",
        "--shutdown-timeout",
        str(shutdown_timeout),
    )
    log = tmp_path / "worker.log"
    process = start(command, log)
    try:
        worker_id = registered_worker(client, key)
        processing = slot_key(key, f"processing:{worker_id}")
        wait_until(lambda: client.llen(processing) > 0, 20, "a batch in flight")
        signalled = time.monotonic()
        os.kill(process.pid, signum)
        # Bound: the batch in flight, plus one Redis poll, plus slack for a busy machine.
        assert process.wait(shutdown_timeout + 0.5 + 5) == 0
        elapsed = time.monotonic() - signalled
    finally:
        end(process)
    stats = stats_line(log)
    sent = set(eids(collector.events))
    left = set(stored_eids(client, key))
    assert sent | left == everything
    assert len(sent) + len(left) >= total
    assert stats["sent"] == len(sent)
    if delay > shutdown_timeout:
        assert stats["returned"] == 20
        assert elapsed >= shutdown_timeout
    assert derived_keys(client, key) == [key] or not left


def release_note_worker_example() -> str:
    """The 0.4.0 notes' RedisWorker block, exactly as published."""
    (block,) = [code for code in python_blocks(seed_file("0.4.0")) if "RedisWorker(e" in code]
    return block


@pytest.mark.parametrize("emitter_class", ["Emitter", "AsyncEmitter"])
def test_the_release_note_example_runs_and_stops_on_sigint(
    client: Any, key: str, collector: Collector, tmp_path: Path, emitter_class: str
) -> None:
    # The block imports AsyncEmitter but calls Emitter (defined by the notes' first import line,
    # which a reader's session has run), and the prose says AsyncEmitter: both readings run,
    # with our collector as the host and a unique key.
    block = release_note_worker_example()
    assert 'r = RedisWorker(e, key="snowplow_redis_key")' in block
    assert "r.run()" in block
    code = block.replace("d3rkrsqld9gmqf.cloudfront.net", collector.endpoint)
    code = code.replace("snowplow_redis_key", key).replace("e = Emitter(", f"e = {emitter_class}(")
    script = tmp_path / "example.py"
    script.write_text(f"{PRELUDE}\n{code}")
    track_many(RedisEmitter(client, key), 25)
    log = tmp_path / "example.log"
    process = start([sys.executable, str(script)], log, child_env(SNOWPLOW_REDIS_URL=REDIS_URL))
    try:
        collector.wait_for(25, 30)
        registered_worker(client, key)
        os.kill(process.pid, signal.SIGINT)
        assert process.wait(20) == 0, log.read_text()
    finally:
        end(process)
    counts = eids(collector.events)
    assert len(counts) == 25
    assert max(counts.values()) == 1
    assert derived_keys(client, key) == []


def test_the_cli_help_names_every_option() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "snowplow_tracker.cli", "redis-worker", "--help"],
        capture_output=True,
        text=True,
        env=child_env(),
        check=True,
    )
    for option in ("--redis-url", "--key", "--endpoint", "--method"):
        assert option in result.stdout
    assert textwrap.dedent(result.stderr) == ""
