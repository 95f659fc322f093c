"""RedisEmitter and RedisWorker with a real Redis Cluster and a real Sentinel-managed master.

The fixtures start their own ``redis-server`` processes on free loopback ports
(3 cluster masters; a master plus a sentinel) and end exactly those, by pid.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker import Emitter, InvalidValueError, RedisEmitter
from snowplow_tracker.collector import Collector
from snowplow_tracker.redis_worker import RedisWorker, slot_key

from .redis_celery_support import end, track_many, unique_key, wait_until

pytestmark = pytest.mark.redis

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"
HOST = "127.0.0.1"
BUS_OFFSET = 10000  # a cluster node also listens on port + 10000 (the cluster bus)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def free_port(taken: set[int], *, cluster_bus: bool = False) -> int:
    """A port the OS gave out as free (and, for a cluster node, whose bus port is free too)."""
    for _ in range(200):
        with socket.socket() as probe:
            probe.bind((HOST, 0))
            port = int(probe.getsockname()[1])
        if port in taken:
            continue
        if cluster_bus and (port + BUS_OFFSET > 65535 or not _port_free(port + BUS_OFFSET)):
            continue
        taken.add(port)
        return port
    raise RuntimeError("no free port pair found")


class Servers:
    """The redis-server processes one fixture started, in a temp dir of its own."""

    def __init__(self, prefix: str) -> None:
        if shutil.which(REDIS_SERVER) is None or shutil.which(REDIS_CLI) is None:
            pytest.skip(f"{REDIS_SERVER} or {REDIS_CLI} is not installed")
        pytest.importorskip("redis", reason="the redis extra is not installed")
        self.dir = Path(tempfile.mkdtemp(prefix=prefix))
        self.processes: list[subprocess.Popen[bytes]] = []
        self.ports: set[int] = set()

    def start(self, name: str, *args: str) -> None:
        with (self.dir / f"{name}.log").open("wb") as log:
            self.processes.append(
                subprocess.Popen([REDIS_SERVER, *args], stdout=log, stderr=subprocess.STDOUT)
            )

    def wait_ready(self, port: int) -> None:
        import redis

        def answers() -> bool:
            try:
                return bool(redis.Redis(host=HOST, port=port, socket_timeout=1).ping())
            except redis.exceptions.ConnectionError:
                return False

        wait_until(answers, 10, f"redis-server on port {port} ({self.logs()})")

    def logs(self) -> str:
        return "; ".join(
            f"{p.name}: {p.read_text(errors='replace')}" for p in self.dir.glob("*.log")
        )

    def stop(self) -> None:
        for process in self.processes:
            end(process, grace=5)
        shutil.rmtree(self.dir, ignore_errors=True)


def node_args(servers: Servers, port: int) -> list[str]:
    return [
        "--port",
        str(port),
        "--bind",
        HOST,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--dir",
        str(servers.dir),
    ]


@pytest.fixture(scope="session")
def cluster_port() -> Iterator[int]:
    """A 3-master Redis Cluster on loopback; yields the port of one node."""
    servers = Servers("snowplow-cluster-")
    try:
        ports = [free_port(servers.ports, cluster_bus=True) for _ in range(3)]
        for port in ports:
            conf = servers.dir / f"nodes-{port}.conf"
            servers.start(
                f"node-{port}",
                *node_args(servers, port),
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(conf),
            )
        for port in ports:
            servers.wait_ready(port)
        create = subprocess.run(
            [
                REDIS_CLI,
                "--cluster",
                "create",
                *(f"{HOST}:{p}" for p in ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            timeout=30,
        )
        assert create.returncode == 0, create.stdout + create.stderr
        wait_until(lambda: all(_cluster_ok(p) for p in ports), 20, "cluster_state:ok")
        yield ports[0]
    finally:
        servers.stop()


def _cluster_ok(port: int) -> bool:
    import redis

    info = redis.Redis(host=HOST, port=port, socket_timeout=1).execute_command("CLUSTER INFO")
    if isinstance(info, dict):  # redis-py parses the reply
        return bool(info.get("cluster_state") == "ok")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


@pytest.fixture(scope="session")
def sentinel_ports() -> Iterator[tuple[int, int]]:
    """A master and one sentinel monitoring it as ``mymaster``; yields both ports."""
    servers = Servers("snowplow-sentinel-")
    try:
        master, sentinel = free_port(servers.ports), free_port(servers.ports)
        servers.start("master", *node_args(servers, master))
        servers.wait_ready(master)
        conf = servers.dir / "sentinel.conf"  # sentinel rewrites it: it must be writable
        conf.write_text(
            f"port {sentinel}\nbind {HOST}\ndir {servers.dir}\n"
            f"sentinel monitor mymaster {HOST} {master} 1\n"
        )
        servers.start("sentinel", str(conf), "--sentinel")
        servers.wait_ready(sentinel)
        wait_until(lambda: _sentinel_knows(sentinel, master), 10, "sentinel sees mymaster")
        yield master, sentinel
    finally:
        servers.stop()


def _sentinel_knows(sentinel: int, master: int) -> bool:
    from redis.sentinel import Sentinel

    return bool(Sentinel([(HOST, sentinel)]).discover_master("mymaster") == (HOST, master))


@pytest.fixture
def cluster(cluster_port: int) -> Iterator[Any]:
    from redis.cluster import RedisCluster

    client = RedisCluster(host=HOST, port=cluster_port, socket_timeout=10)
    yield client
    client.close()


@pytest.fixture
def sentinel_master(sentinel_ports: tuple[int, int]) -> Iterator[Any]:
    from redis.sentinel import Sentinel

    client = Sentinel([(HOST, sentinel_ports[1])], socket_timeout=10).master_for("mymaster")
    yield client
    client.close()


@pytest.fixture(params=["cluster", "sentinel"])
def client(request: pytest.FixtureRequest) -> Any:
    """Each test runs with a cluster client and with a sentinel master client."""
    return request.getfixturevalue("cluster" if request.param == "cluster" else "sentinel_master")


def stored(client: Any, key: str) -> list[dict[str, Any]]:
    raws = client.lrange(key, 0, -1)
    events = [json.loads(raw) for raw in raws]
    assert all(isinstance(event, dict) for event in events)
    return events


def post_emitter(collector: Collector, buffer_size: int = 10) -> Emitter:
    return Emitter(collector.endpoint, method="post", buffer_size=buffer_size)


def drain(worker: RedisWorker) -> None:
    worker.run(install_signal_handlers=False, stop_when_empty=True)


def assert_clean(client: Any, key: str, *workers: RedisWorker) -> None:
    """Nothing left to send and no processing list, heartbeat or registration left over."""
    assert client.llen(key) == 0
    for worker in workers:
        assert client.exists(worker.processing_key) == 0
        assert client.exists(worker._heartbeat_key(worker.worker_id)) == 0
    assert client.smembers(workers[0].workers_key) == set()
    assert client.exists(workers[0].invalid_key) == 0


def delivered(collector: Collector) -> Counter[str]:
    assert collector.bad() == []
    return Counter(event.raw["se_va"] for event in collector.events)


def test_emitter_stores_one_json_string_per_event(client: Any) -> None:
    key = unique_key("emitter")
    emitter = RedisEmitter(rdb=client, key=key)
    track_many(emitter, 7)
    events = stored(client, key)
    assert [event["se_va"] for event in events] == [str(i) for i in range(7)]
    assert all(isinstance(v, str) for event in events for v in event.values())
    assert emitter.stats() == {"stored": 7, "retried": 0, "failed": 0}
    client.delete(key)


def test_emitter_threads_share_pushes(client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Concurrent tracking; with a push chunk of 2 a group of 3+ goes out as a pipeline."""
    monkeypatch.setattr("snowplow_tracker._redis.PUSH_CHUNK", 2)
    key = unique_key("emitter-threads")
    emitter = RedisEmitter(rdb=client, key=key)
    threads = [threading.Thread(target=track_many, args=(emitter, 25)) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert Counter(event["se_va"] for event in stored(client, key)) == Counter(
        {str(i): 4 for i in range(25)}
    )
    assert emitter.stats()["failed"] == 0
    client.delete(key)


def test_worker_delivers_every_event_exactly_once(client: Any, collector: Collector) -> None:
    key = unique_key("worker")
    track_many(RedisEmitter(rdb=client, key=key), 57)
    worker = RedisWorker(post_emitter(collector), key, client, batch_size=10, poll_interval=0.1)
    drain(worker)
    assert worker._move_script is not None  # batches were moved by the Lua script
    assert delivered(collector) == Counter(str(i) for i in range(57))
    assert worker.stats()["sent"] == 57
    assert_clean(client, key, worker)


def test_worker_requeues_failed_sends_then_delivers(client: Any, collector: Collector) -> None:
    """A refused batch goes back to the list (transaction) and is sent on a later round."""
    key = unique_key("worker-retry")
    track_many(RedisEmitter(rdb=client, key=key), 12)
    collector.script(500)  # the first POST, carrying all 12 events, is refused
    worker = RedisWorker(
        post_emitter(collector, buffer_size=20),
        key,
        client,
        batch_size=12,
        poll_interval=0.1,
        backoff_base=0.01,
        backoff_cap=0.02,
    )
    drain(worker)
    assert worker.stats()["requeued"] == 12
    assert Counter(event.raw["se_va"] for event in collector.good()) == Counter(
        str(i) for i in range(12)
    )
    assert_clean(client, key, worker)


def test_two_cluster_workers_on_one_key_lose_nothing(cluster: Any, collector: Collector) -> None:
    key = unique_key("two-workers")
    track_many(RedisEmitter(rdb=cluster, key=key), 300)
    workers = [
        RedisWorker(post_emitter(collector), key, cluster, batch_size=7, poll_interval=0.1)
        for _ in range(2)
    ]
    threads = [threading.Thread(target=drain, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert not any(thread.is_alive() for thread in threads)
    assert delivered(collector) == Counter(str(i) for i in range(300))
    assert sum(worker.stats()["sent"] for worker in workers) == 300
    assert_clean(cluster, key, *workers)


def test_worker_recovers_a_dead_workers_batch_on_the_cluster(
    cluster: Any, collector: Collector
) -> None:
    """Events left in a dead worker's processing list (no heartbeat) are sent by another."""
    key = unique_key("recover")
    track_many(RedisEmitter(rdb=cluster, key=key), 5)
    dead = RedisWorker(post_emitter(collector), key, cluster, worker_id="dead", batch_size=3)
    dead._beat()
    assert len(dead._fill()) == 3 and cluster.llen(dead.processing_key) == 3
    cluster.delete(dead._heartbeat_key("dead"))  # as if its TTL ran out
    worker = RedisWorker(post_emitter(collector), key, cluster, poll_interval=0.1)
    drain(worker)
    assert worker.stats()["recovered"] == 3
    assert delivered(collector) == Counter(str(i) for i in range(5))
    assert_clean(cluster, key, worker, dead)


def test_worker_recovers_a_list_in_no_set_and_leaves_a_live_one(
    client: Any, collector: Collector
) -> None:
    """The keyspace scan (SCAN on every primary of a cluster) finds a processing list whose
    worker is in no workers set; a list whose worker has a live heartbeat stays until it expires."""
    key = unique_key("orphan")
    track_many(RedisEmitter(rdb=client, key=key), 9)
    orphan, busy = slot_key(key, "processing:gone"), slot_key(key, "processing:busy")
    for name, count in ((orphan, 4), (busy, 2)):
        for _ in range(count):
            client.lmove(key, name, "LEFT", "RIGHT")
    busy_heartbeat = slot_key(key, "alive:busy")
    client.set(busy_heartbeat, "1", px=60_000)
    first = RedisWorker(post_emitter(collector), key, client, poll_interval=0.1)
    drain(first)
    assert first.stats()["recovered"] == 4
    assert client.exists(orphan) == 0
    assert client.llen(busy) == 2
    client.delete(busy_heartbeat)  # the busy worker died
    second = RedisWorker(post_emitter(collector), key, client, poll_interval=0.1)
    drain(second)
    assert second.stats()["recovered"] == 2
    assert delivered(collector) == Counter(str(i) for i in range(9))
    assert_clean(client, key, first, second)
    assert client.exists(orphan, busy) == 0


def test_cluster_keys_of_a_worker_share_one_slot(cluster: Any) -> None:
    worker = RedisWorker(Emitter("127.0.0.1:9"), unique_key("slots"), cluster)
    names = [
        worker.key,
        worker.processing_key,
        worker.workers_key,
        worker.invalid_key,
        worker._heartbeat_key(worker.worker_id),
    ]
    assert len({cluster.keyslot(name) for name in names}) == 1


def test_cluster_key_that_cannot_share_a_slot_is_refused(cluster: Any) -> None:
    """``a}b`` hashes whole; no ``{tag}`` can reproduce its slot for the derived keys."""
    with pytest.raises(InvalidValueError, match="key"):
        RedisWorker(Emitter("127.0.0.1:9"), "snowplow}events", cluster)
    RedisWorker(Emitter("127.0.0.1:9"), "{snowplow}}events", cluster)  # a tag: accepted


class ClusterWithoutTransactions:
    """A RedisCluster as redis-py < 6.1 has it: ``pipeline(transaction=True)`` is refused
    (only redis-py 8 is installable here, so the old refusal is reproduced). It refuses Lua
    scripts too, so that the worker acknowledges with plain commands."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def register_script(self, script: Any) -> Any:
        from redis.exceptions import ResponseError

        def refuse(keys: Any = None, args: Any = None, client: Any = None) -> Any:
            raise ResponseError("unknown command 'EVALSHA'")

        return refuse

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        from redis.exceptions import RedisClusterException

        if transaction:
            raise RedisClusterException("transaction is deprecated in cluster mode")
        return self.client.pipeline(transaction=transaction, shard_hint=shard_hint)


def test_worker_acknowledges_in_order_without_cluster_transactions(
    cluster: Any, collector: Collector
) -> None:
    key = unique_key("no-multi")
    track_many(RedisEmitter(rdb=cluster, key=key), 12)
    collector.script(500)  # the first POST, carrying all 12 events, is refused
    old_client = ClusterWithoutTransactions(cluster)
    worker = RedisWorker(
        post_emitter(collector, buffer_size=20),
        key,
        old_client,
        batch_size=12,
        poll_interval=0.1,
        backoff_base=0.01,
        backoff_cap=0.02,
    )
    drain(worker)
    assert worker._transactions is False
    assert worker.stats()["requeued"] == 12
    assert Counter(event.raw["se_va"] for event in collector.good()) == Counter(
        str(i) for i in range(12)
    )
    assert_clean(cluster, key, worker)
