"""RedisWorker: no processing list is ever orphaned.

A worker paused past ``heartbeat_ttl`` (SIGSTOP, a GC pause, a frozen VM) is recovered and
removed from the workers set by another worker. These tests stage that pause without sleeping:
they delete the heartbeat and let another worker recover it, or hold the paused worker's Redis
commands until the test lets them go.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

import pytest

from snowplow_tracker import Emitter, RedisEmitter
from snowplow_tracker.collector import Collector
from snowplow_tracker.redis_worker import RedisWorker, slot_key

from .redis_celery_support import (
    REDIS_HOST,
    REDIS_PORT,
    client_without_scripts,
    eids,
    track_many,
    wait_until,
)
from .test_redis_worker import Running, assert_nothing_left, fast_worker

pytestmark = pytest.mark.redis

LONG_TTL = 300.0  # the heartbeat thread beats every 100 s: never while a test runs


def orphan(client: Any, key: str, worker_id: str, count: int) -> list[bytes]:
    """Move ``count`` events from ``key`` to the processing list of ``worker_id``, as that
    worker would, but with no heartbeat and no membership in the workers set."""
    processing = slot_key(key, f"processing:{worker_id}")
    for _ in range(count):
        client.lmove(key, processing, "LEFT", "RIGHT")
    return list(client.lrange(processing, 0, -1))


def drain(worker: RedisWorker) -> dict[str, int]:
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    return worker.stats()


class Held(Emitter):
    """Stands still in ``sync_flush`` of its first batch until released (a paused process);
    once ``killed`` it sends nothing (the process is gone). Give it a buffer larger than the
    batch, or ``input`` sends before the pause."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.holding = threading.Event()
        self.release = threading.Event()
        self.killed = False

    def sync_flush(self, timeout: float | None = None) -> bool:
        if not self.holding.is_set():
            self.holding.set()
            self.release.wait(30)
        if self.killed:
            self.buffer.clear()
            return True
        return super().sync_flush(timeout)


def test_a_starting_worker_recovers_a_list_whose_worker_is_in_no_set(
    client: Any, key: str, collector: Collector
) -> None:
    track_many(RedisEmitter(client, key), 25)
    stranded = orphan(client, key, "gone-host:123:abcd", 7)
    assert len(stranded) == 7
    worker = fast_worker(Emitter(collector.endpoint, method="post"), key, client, batch_size=10)
    stats = drain(worker)
    counts = eids(collector.events)
    assert len(counts) == 25
    assert max(counts.values()) == 1
    # The recovered events went back to the head of the list, in order.
    assert [e.raw["se_va"] for e in collector.events] == [str(i) for i in range(25)]
    assert stats["recovered"] == 7
    assert_nothing_left(client, key)


def test_a_live_workers_list_is_left_alone_until_its_heartbeat_expires(
    client: Any, key: str, collector: Collector
) -> None:
    track_many(RedisEmitter(client, key), 15)
    live = fast_worker(
        Emitter("127.0.0.1:9"), key, client, worker_id="live", batch_size=10, heartbeat_ttl=60
    )
    live._beat()
    taken = live._take()
    assert len(taken) == 10
    # Recovered by another worker while paused, then resumed: its heartbeat is back but it
    # is in no set until its next beat. It is alive; nobody may take its list.
    client.srem(live.workers_key, "live")
    first = fast_worker(Emitter(collector.endpoint, method="post"), key, client)
    assert drain(first)["recovered"] == 0
    assert client.lrange(live.processing_key, 0, -1) == taken
    assert len(collector.events) == 5
    # Then it dies before its next beat: its heartbeat expires and the next worker recovers it.
    client.delete(live._heartbeat_key("live"))
    second = fast_worker(Emitter(collector.endpoint, method="post"), key, client)
    assert drain(second)["recovered"] == 10
    counts = eids(collector.events)
    assert len(counts) == 15
    assert max(counts.values()) == 1
    assert_nothing_left(client, key)


def test_a_running_worker_scans_again_every_scan_interval(
    client: Any, key: str, collector: Collector
) -> None:
    worker = fast_worker(Emitter(collector.endpoint, method="post"), key, client, scan_interval=0.2)
    running = Running(worker, install_signal_handlers=False)
    wait_until(lambda: client.sismember(worker.workers_key, worker.worker_id), 10, "registration")
    track_many(RedisEmitter(client, f"{key}:source"), 5)
    stranded = slot_key(key, "processing:gone")
    while client.lmove(f"{key}:source", stranded, "LEFT", "RIGHT") is not None:
        pass
    collector.wait_for(5, 10)
    stats = running.stop()
    assert stats["recovered"] == 5
    assert max(eids(collector.events).values()) == 1
    assert_nothing_left(client, key)


def test_the_scan_pattern_matches_only_this_keys_processing_lists(client: Any, key: str) -> None:
    class Keep:
        def __init__(self) -> None:
            self.got: list[dict[str, Any]] = []

        def input(self, payload: dict[str, Any]) -> None:
            self.got.append(payload)

    # "?" and "[...]" are glob characters: unescaped, this key's pattern would match the other's.
    mine, other = f"{key}[?]", f"{key}[x]"
    mine_list = slot_key(mine, "processing:gone")
    other_list = slot_key(other, "processing:gone")
    client.rpush(mine_list, *(json.dumps({"e": "pv", "n": str(i)}) for i in range(2)))
    client.rpush(other_list, *(json.dumps({"e": "pv", "n": str(i)}) for i in range(3)))
    sink = Keep()
    worker = fast_worker(sink, mine, client)
    assert drain(worker)["recovered"] == 2
    assert [e["n"] for e in sink.got] == ["0", "1"]
    assert client.llen(other_list) == 3


def test_a_worker_paused_past_its_ttl_then_killed_leaves_no_orphan(
    client: Any, key: str, collector: Collector
) -> None:
    import redis

    class Pausable(redis.Redis):
        """Commands wait while paused, as in a process stopped by SIGSTOP."""

        running = threading.Event()
        parked = threading.Event()

        def _gate(self) -> None:
            if not self.running.is_set():
                self.parked.set()
                self.running.wait(30)

        def execute_command(self, *args: Any, **options: Any) -> Any:
            self._gate()
            return super().execute_command(*args, **options)

        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            pipe = super().pipeline(transaction, shard_hint)
            execute = pipe.execute

            def gated(raise_on_error: bool = True) -> Any:
                self._gate()
                return execute(raise_on_error)

            pipe.execute = gated
            return pipe

    Pausable.running.set()
    emitter = Held(collector.endpoint, method="post", buffer_size=100)
    paused = fast_worker(
        emitter,
        key,
        Pausable(host=REDIS_HOST, port=REDIS_PORT),
        batch_size=10,
        heartbeat_ttl=LONG_TTL,
    )
    process = Running(paused, install_signal_handlers=False)
    try:
        wait_until(
            lambda: client.sismember(paused.workers_key, paused.worker_id), 10, "registration"
        )
        # SIGSTOP, while idle: its next Redis command waits.
        Pausable.running.clear()
        wait_until(Pausable.parked.is_set, 10, "the worker to stand still")
        # Longer than heartbeat_ttl: its heartbeat expires and another worker recovers it.
        client.delete(paused._heartbeat_key(paused.worker_id))
        other = fast_worker(Emitter("127.0.0.1:9"), key, client)
        other.recover()
        assert not client.sismember(paused.workers_key, paused.worker_id)
        track_many(RedisEmitter(client, key), 30)
        # SIGCONT: it takes a batch before its heartbeat thread beats again...
        Pausable.running.set()
        assert emitter.holding.wait(10)
        assert client.llen(paused.processing_key) == 10
        # ...having registered again as it took it, and noticed it had been presumed dead.
        assert client.sismember(paused.workers_key, paused.worker_id)
        assert paused.stats()["presumed_dead"] == 1
        # kill -9 before its next beat: the heartbeat runs out, nothing is sent or acknowledged.
        client.delete(paused._heartbeat_key(paused.worker_id))
        starting = fast_worker(Emitter(collector.endpoint, method="post"), key, client)
        assert drain(starting)["recovered"] == 10
    finally:
        Pausable.running.set()
        paused._abandon.set()  # the "killed" worker's loop returns without acknowledging
        process.stop()
        emitter.killed = True
        emitter.release.set()
    counts = eids(collector.events)
    assert len(counts) == 30
    assert max(counts.values()) == 1
    assert_nothing_left(client, key)


def test_a_resumed_worker_notices_and_its_recovered_batch_is_only_duplicated(
    client: Any, key: str, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="snowplow_tracker.redis_worker")
    track_many(RedisEmitter(client, key), 30)
    everything = [json.loads(raw)["eid"] for raw in client.lrange(key, 0, -1)]
    emitter = Held(collector.endpoint, method="post", buffer_size=100)
    paused = fast_worker(emitter, key, client, batch_size=10, heartbeat_ttl=LONG_TTL)
    process = Running(paused, install_signal_handlers=False, stop_when_empty=True)
    # Paused mid-send, longer than heartbeat_ttl: another worker recovers the batch in flight.
    assert emitter.holding.wait(10)
    client.delete(paused._heartbeat_key(paused.worker_id))
    other = fast_worker(Emitter("127.0.0.1:9"), key, client)
    assert other.recover() == 10
    # Resumed: it finishes sending that batch, then drains the list, recovered copies included.
    emitter.release.set()
    process.thread.join(30)
    assert not process.thread.is_alive()
    assert process.error is None
    counts = eids(collector.events)
    assert set(counts) == set(everything)
    assert {eid for eid, n in counts.items() if n > 1} == set(everything[:10])
    assert max(counts.values()) == 2
    assert paused.stats()["presumed_dead"] == 1
    assert "presumed dead" in caplog.text
    assert_nothing_left(client, key)


@pytest.mark.parametrize("refusal", ["acl", "client"])
def test_a_refused_scan_leaves_recovery_to_the_workers_set(
    client: Any, key: str, collector: Collector, caplog: pytest.LogCaptureFixture, refusal: str
) -> None:
    import redis

    class NoScan(redis.Redis):  # an ACL without SCAN, a proxy, or a client without scan_iter
        def scan_iter(self, *args: Any, **kwargs: Any) -> Any:
            if refusal == "client":
                raise AttributeError("'NoScan' object has no attribute 'scan_iter'")
            raise redis.ResponseError("NOPERM this user has no permissions to run 'scan'")

    caplog.set_level(logging.WARNING, logger="snowplow_tracker.redis_worker")
    track_many(RedisEmitter(client, key), 12)
    dead = fast_worker(Emitter("127.0.0.1:9"), key, client, worker_id="dead", batch_size=4)
    dead._beat()
    assert len(dead._take()) == 4
    client.delete(dead._heartbeat_key("dead"))  # in the set, heartbeat expired
    worker = fast_worker(
        Emitter(collector.endpoint, method="post"), key, NoScan(host=REDIS_HOST, port=REDIS_PORT)
    )
    stats = drain(worker)
    assert stats["recovered"] == 4
    assert stats["redis_errors"] == 0
    assert len(eids(collector.events)) == 12
    assert "SCAN" in caplog.text
    assert_nothing_left(client, key)


def test_without_lua_scripts_recovery_still_spares_a_live_worker(
    client: Any, key: str, collector: Collector
) -> None:
    track_many(RedisEmitter(client, key), 10)
    orphan(client, key, "gone", 3)
    busy = orphan(client, key, "busy", 2)
    client.set(slot_key(key, "alive:busy"), "1", px=60_000)
    worker = fast_worker(
        Emitter(collector.endpoint, method="post"),
        key,
        client_without_scripts(),
    )
    assert drain(worker)["recovered"] == 3
    assert worker._recover_script is None
    assert client.lrange(slot_key(key, "processing:busy"), 0, -1) == busy
    counts = eids(collector.events)
    assert len(counts) == 8
    assert max(counts.values()) == 1
