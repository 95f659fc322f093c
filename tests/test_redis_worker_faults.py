"""RedisWorker under real faults: lost replies, restarts of Redis under load, poison values.

Each test runs a redis-server of its own (free loopback port, append-only file) so that it
can restart it or put a proxy that loses replies in front of it; the shared server is never
touched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker import Emitter, RedisEmitter
from snowplow_tracker.collector import Collector
from snowplow_tracker.emitters import stringify
from snowplow_tracker.payload import dumps
from snowplow_tracker.redis_worker import slot_key

from .redis_celery_support import derived_keys, eids, track_many
from .redis_fault_support import OwnRedis, ReplyDropper
from .test_redis_worker import Running, fast_worker

pytestmark = pytest.mark.redis
redis = pytest.importorskip("redis", reason="the redis extra is not installed")

KEY = "snowplow-faults"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def no_retries() -> dict[str, Any]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"retry": Retry(NoBackoff(), 0)}


def duplicates(counts: Any) -> int:
    return int(sum(counts.values()) - len(counts))


@pytest.mark.parametrize("scripts", [True, False], ids=["scripts", "plain-commands"])
@pytest.mark.parametrize("retries", ["redis-py-default", "none"])
def test_a_lost_reply_to_any_command_loses_no_event(
    own_redis: OwnRedis, collector: Collector, retries: str, scripts: bool
) -> None:
    """The proxy loses one reply to each kind of command the worker sends (the command ran
    in Redis; the worker never hears). redis-py's default retry runs it again; without
    retries the worker sees the error. Either way every event arrives, and every duplicate
    is counted."""
    direct = own_redis.client()
    total = 300
    track_many(RedisEmitter(direct, KEY), total)
    proxy = ReplyDropper(own_redis.port)
    options = {} if retries == "redis-py-default" else no_retries()

    class Client(redis.Redis):  # type: ignore[misc]
        def register_script(self, script: Any) -> Any:
            if scripts:
                return super().register_script(script)

            def refuse(keys: Any = None, args: Any = None, client: Any = None) -> Any:
                raise redis.ResponseError("unknown command 'EVALSHA'")

            return refuse

    through_proxy = Client(host="127.0.0.1", port=proxy.port, socket_timeout=10, **options)
    emitter = Emitter(collector.endpoint, method="post", buffer_size=100)
    worker = fast_worker(emitter, KEY, through_proxy, batch_size=10, heartbeat_ttl=60)
    proxy.armed.set()
    try:
        worker.run(install_signal_handlers=False, stop_when_empty=True)
        worker.run(install_signal_handlers=False, stop_when_empty=True)  # what errors returned
    finally:
        proxy.close()
    stats = worker.stats()
    counts = eids(collector.events)
    assert len(counts) == total, f"lost {total - len(counts)} event(s); {stats}"
    assert duplicates(counts) == stats["resent"] + stats["recovered"], stats
    assert stats["sent"] == total
    moving = {"BLMOVE", "EVALSHA"} if scripts else {"BLMOVE", "LMOVE", "EXEC"}
    assert moving <= {kind.split()[0] for kind in proxy.dropped}, proxy.dropped
    assert "?" not in proxy.dropped  # every reply was matched to its command
    assert derived_keys(direct, KEY) == []


def test_eight_restarts_under_load_lose_nothing(own_redis: OwnRedis, collector: Collector) -> None:
    """Two workers drain 8 000 events while their Redis (append-only, fsync on every write)
    is restarted 8 times, half of them a crash (SIGKILL): every event arrives. One worker's
    client retries as redis-py does by default, the other's never (it sees every error)."""
    direct = own_redis.client()
    total = 8000
    stored = tracked(total)
    for start in range(0, total, 1000):  # one RPUSH per 1000: quick to load
        direct.rpush(KEY, *stored[start : start + 1000])
    workers = [
        fast_worker(
            Emitter(collector.endpoint, method="post", buffer_size=100),
            KEY,
            own_redis.client(**options),
            batch_size=20,
            heartbeat_ttl=60,
        )
        for options in ({}, no_retries())
    ]
    running = [Running(worker, install_signal_handlers=False) for worker in workers]
    restarts = 0
    for restart in range(8):
        threshold = (restart + 1) * total // 10
        _wait_for(lambda n=threshold: len(collector.events) >= n, 60, f"{threshold} events")
        own_redis.restart(hard=restart % 2 == 1)
        restarts += 1
    collector.wait_for(total, 60)
    _wait_for(lambda: direct.llen(KEY) == 0, 30, "an empty list")
    stats = [r.stop() for r in running]
    counts = eids(collector.events)
    assert restarts == 8
    assert len(counts) == total, f"lost {total - len(counts)} event(s); {stats}"
    assert sum(s["sent"] for s in stats) == total
    assert stats[1]["redis_errors"] >= 8  # each restart was felt
    assert duplicates(counts) == sum(s["resent"] + s["recovered"] for s in stats)
    assert derived_keys(direct, KEY) == []


def test_poison_values_are_set_aside_and_the_events_behind_them_go_out(
    own_redis: OwnRedis, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="snowplow_tracker.redis_worker")
    direct = own_redis.client()
    deep = "[" * 2000 + "]" * 2000  # deeper than the recursion limit, within max_event_bytes
    nested = json.dumps({"e": "pv", "co": {"a": {"b": 1}}})
    large = json.dumps({"e": "pv", "url": "x" * 5000})
    poison = [deep, nested, large, "[1, 2]", "not json"]
    values: list[str] = []
    for index, event in enumerate(tracked(10)):
        values.append(event)
        if index < len(poison):
            values.append(poison[index])
    direct.rpush(KEY, *values)
    worker = fast_worker(
        Emitter(collector.endpoint, method="post"),
        KEY,
        own_redis.client(),
        batch_size=3,
        max_event_bytes=4096,
    )
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    assert sorted(int(e.raw["se_va"]) for e in collector.events) == list(range(10))
    invalid = slot_key(KEY, "invalid")
    assert [raw.decode() for raw in direct.lrange(invalid, 0, -1)] == poison
    assert worker.stats()["invalid"] == 5
    assert len([r for r in caplog.records if "moved aside" in r.getMessage()]) == 5
    assert "nested too deep" in caplog.text
    direct.delete(invalid)
    assert derived_keys(direct, KEY) == []


def tracked(count: int) -> list[str]:
    """``count`` structured events as a RedisEmitter stores them (``se_va`` is the index)."""

    class Stored:
        def __init__(self) -> None:
            self.values: list[str] = []

        def input(self, payload: dict[str, Any]) -> None:
            self.values.append(dumps(stringify(payload)))

    sink = Stored()
    track_many(sink, count)
    return sink.values


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    from .redis_celery_support import wait_until

    wait_until(predicate, timeout, what)
