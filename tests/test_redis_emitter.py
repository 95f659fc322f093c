"""RedisEmitter against a real Redis server."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from snowplow_tracker import InvalidTypeError, InvalidValueError, RedisEmitter, Tracker

from .redis_celery_support import track_many, wait_until

pytestmark = pytest.mark.redis


def test_each_event_is_one_json_string_with_string_values(client: Any, key: str) -> None:
    emitter = RedisEmitter(client, key)
    emitter.input({"e": "se", "se_va": 2.5, "n": 3, "flag": True, "none": None, "t": "ü"})
    Tracker(emitter, app_id="a").track_page_view("http://example.com")
    stored = [json.loads(raw) for raw in client.lrange(key, 0, -1)]
    assert stored[0] == {"e": "se", "se_va": "2.5", "n": "3", "flag": "True", "t": "ü"}
    assert stored[1]["url"] == "http://example.com"
    assert all(isinstance(v, str) for event in stored for v in event.values())
    assert emitter.stats() == {"stored": 2, "retried": 0, "failed": 0}


def test_flush_and_sync_flush_are_harmless(client: Any, key: str) -> None:
    emitter = RedisEmitter(client, key)
    tracker = Tracker(emitter)
    tracker.track_page_view("http://example.com")
    assert emitter.flush() is True
    assert emitter.sync_flush() is True
    assert emitter.close() is True
    tracker.flush()
    assert client.llen(key) == 1


def test_default_client_comes_from_the_environment_and_connects_lazily(
    client: Any, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNOWPLOW_REDIS_URL", "redis://127.0.0.1:6379/0")
    emitter = RedisEmitter(key=key)
    assert emitter.rdb.connection_pool.connection_kwargs["port"] == 6379
    Tracker(emitter).track_page_view("http://example.com")
    assert client.llen(key) == 1


def test_unreachable_redis_never_raises_and_is_counted_and_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("redis")
    # Nothing listens on port 1: every push fails, as with a Redis that is down.
    monkeypatch.setenv("SNOWPLOW_REDIS_URL", "redis://127.0.0.1:1/0")
    failures: list[tuple[int, list[dict[str, str]]]] = []
    emitter = RedisEmitter(
        max_attempts=3, retry_backoff=0.0, on_failure=lambda n, ev: failures.append((n, ev))
    )
    tracker = Tracker(emitter)
    tracker.track_page_view("http://example.com/1").track_page_view("http://example.com/2")
    assert emitter.stats() == {"stored": 0, "retried": 4, "failed": 2}
    assert [(n, [e["url"] for e in ev]) for n, ev in failures] == [
        (0, ["http://example.com/1"]),
        (0, ["http://example.com/2"]),
    ]


def test_a_transient_error_is_retried(client: Any, key: str) -> None:
    import redis

    class FlakyOnce(redis.Redis):
        fail = True

        def rpush(self, name: Any, *values: Any) -> Any:
            if FlakyOnce.fail:
                FlakyOnce.fail = False
                raise redis.ConnectionError("connection reset")
            return super().rpush(name, *values)

    emitter = RedisEmitter(FlakyOnce(host="127.0.0.1", port=6379), key, retry_backoff=0.0)
    Tracker(emitter).track_page_view("http://example.com")
    assert client.llen(key) == 1
    assert emitter.stats() == {"stored": 1, "retried": 1, "failed": 0}


def test_a_failing_callback_is_contained(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("redis")
    monkeypatch.setenv("SNOWPLOW_REDIS_URL", "redis://127.0.0.1:1/0")

    def explode(count: int, events: list[dict[str, str]]) -> None:
        raise RuntimeError("callback bug")

    emitter = RedisEmitter(max_attempts=1, on_failure=explode)
    Tracker(emitter).track_page_view("http://example.com")
    assert emitter.stats()["failed"] == 1


def test_concurrent_events_share_one_pipelined_push(
    client: Any, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    monkeypatch.setattr("snowplow_tracker._redis.PUSH_CHUNK", 3)
    threads_count, per_thread = 8, 50
    total = threads_count * per_thread
    calls: list[int] = []

    class Counting(redis.Redis):
        def rpush(self, name: Any, *values: Any) -> Any:
            calls.append(len(values))
            if len(calls) == 1:
                # Hold the first push until every other thread has an event waiting behind it.
                wait_until(lambda: emitter._enqueued == threads_count, 10, "all producers")
            return super().rpush(name, *values)

        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            calls.append(-1)  # marks a pipeline
            return super().pipeline(transaction, shard_hint)

    emitter = RedisEmitter(Counting(host="127.0.0.1", port=6379), key)
    barrier = threading.Barrier(threads_count)

    def produce() -> None:
        barrier.wait()
        track_many(emitter, per_thread)

    threads = [threading.Thread(target=produce) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = [json.loads(raw)["eid"] for raw in client.lrange(key, 0, -1)]
    assert len(stored) == len(set(stored)) == total
    assert emitter.stats() == {"stored": total, "retried": 0, "failed": 0}
    # The first push held one event; the 7 that waited behind it went together, as one
    # pipeline (7 values are more than one RPUSH of PUSH_CHUNK=3 holds).
    assert calls[:2] == [1, -1]
    assert len(calls) < total


def test_arguments_are_checked() -> None:
    with pytest.raises(InvalidValueError):
        RedisEmitter(key="")
    with pytest.raises(InvalidTypeError):
        RedisEmitter(rdb="redis://localhost")
    with pytest.raises(InvalidValueError):
        RedisEmitter(key=str(uuid.uuid4()), max_attempts=0)
