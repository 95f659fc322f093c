"""RedisWorker in this process: RedisEmitter -> Redis -> RedisWorker -> loopback collector."""

from __future__ import annotations

import json
import signal
import threading
from typing import Any

import pytest

from snowplow_tracker import (
    AsyncEmitter,
    Emitter,
    InvalidTypeError,
    InvalidValueError,
    RedisEmitter,
)
from snowplow_tracker.collector import Collector
from snowplow_tracker.redis_worker import RedisWorker, event_identity, slot_key

from .redis_celery_support import (
    Recorder,
    client_without_scripts,
    derived_keys,
    eids,
    track_many,
    track_varied,
    wait_until,
    without_stm,
)

pytestmark = pytest.mark.redis


class Running:
    """A worker running in a thread of this process (no signal handlers there)."""

    def __init__(self, worker: RedisWorker, **run_options: Any) -> None:
        self.worker = worker
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, kwargs=run_options, daemon=True)
        self.thread.start()

    def _run(self, **options: Any) -> None:
        try:
            self.worker.run(**options)
        except BaseException as exc:
            self.error = exc

    def stop(self, timeout: float = 10) -> dict[str, int]:
        self.worker.request_shutdown()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not stop"
        assert self.error is None
        return self.worker.stats()


def fast_worker(emitter: Any, key: str, client: Any, **options: Any) -> RedisWorker:
    settings: dict[str, Any] = {"poll_interval": 0.1, "backoff_base": 0.02, "backoff_cap": 0.1}
    settings.update(options)
    return RedisWorker(emitter, key, client, **settings)


def assert_nothing_left(client: Any, key: str) -> None:
    assert derived_keys(client, key) == [], "events or worker state left in Redis"


@pytest.mark.parametrize("method", ["get", "post"])
def test_every_event_arrives_with_its_fields_intact(
    client: Any, key: str, collector: Collector, method: str
) -> None:
    recorder = Recorder(RedisEmitter(client, key))
    track_varied(recorder)
    worker = fast_worker(Emitter(collector.endpoint, method=method), key, client)
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    arrived = collector.events
    assert [without_stm(e.raw) for e in arrived] == recorder.payloads
    assert all(e.valid for e in arrived), [e.errors for e in arrived]
    assert all(e.method == method.upper() for e in arrived)
    assert worker.stats()["sent"] == 3
    assert_nothing_left(client, key)


def test_async_emitter_target_with_many_threads(
    client: Any, key: str, collector: Collector
) -> None:
    track_many(RedisEmitter(client, key), 1000)
    emitter = AsyncEmitter(collector.endpoint, method="post", buffer_size=25, thread_count=3)
    worker = fast_worker(emitter, key, client)
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    counts = eids(collector.events)
    assert len(counts) == 1000
    assert max(counts.values()) == 1
    assert worker.stats()["sent"] == 1000
    assert_nothing_left(client, key)


def test_only_the_events_the_collector_refused_are_sent_again(
    client: Any, key: str, collector: Collector
) -> None:
    track_many(RedisEmitter(client, key), 5)
    collector.script(200, 200, 500)  # the third GET fails
    worker = fast_worker(Emitter(collector.endpoint), key, client)
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    counts = eids(collector.events)
    assert len(counts) == 5
    assert max(counts.values()) == 1
    assert [r.status for r in collector.requests] == [200, 200, 500, 200, 200, 200]
    # The refused event went to the back of the list: it arrives last.
    assert [e.raw["se_va"] for e in collector.events] == ["0", "1", "3", "4", "2"]
    assert worker.stats()["requeued"] == 1
    assert_nothing_left(client, key)


def test_user_callbacks_still_fire_and_are_restored(
    client: Any, key: str, collector: Collector
) -> None:
    successes: list[int] = []

    def on_success(count: int) -> None:
        successes.append(count)

    track_many(RedisEmitter(client, key), 7)
    emitter = Emitter(collector.endpoint, method="post", buffer_size=100, on_success=on_success)
    fast_worker(emitter, key, client).run(install_signal_handlers=False, stop_when_empty=True)
    assert successes == [7]
    assert emitter.on_success is on_success
    assert emitter.on_failure is None


def test_an_emitter_that_raises_keeps_the_events_in_redis(
    client: Any, key: str, collector: Collector
) -> None:
    class Flaky(Emitter):
        raised = 0

        def sync_flush(self, timeout: float | None = None) -> bool:
            if Flaky.raised < 2:
                Flaky.raised += 1
                self.buffer.clear()
                raise RuntimeError("emitter bug")
            return super().sync_flush(timeout)

    track_many(RedisEmitter(client, key), 10)
    emitter = Flaky(collector.endpoint, method="post", buffer_size=100)
    worker = fast_worker(emitter, key, client)
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    assert len(eids(collector.events)) == 10
    assert worker.stats()["requeued"] == 20
    assert_nothing_left(client, key)


def test_an_emitter_without_callbacks_is_trusted(client: Any, key: str) -> None:
    class Plain:  # the 0.4.0 minimum: only input()
        def __init__(self) -> None:
            self.got: list[dict[str, Any]] = []

        def input(self, payload: dict[str, Any]) -> None:
            self.got.append(payload)

    track_many(RedisEmitter(client, key), 4)
    plain = Plain()
    fast_worker(plain, key, client).run(install_signal_handlers=False, stop_when_empty=True)
    assert [e["se_va"] for e in plain.got] == ["0", "1", "2", "3"]
    assert_nothing_left(client, key)


def test_an_emitter_that_under_reports_gets_its_events_again(client: Any, key: str) -> None:
    class Silent(Emitter):  # has the callback attributes but never reports
        def sync_flush(self, timeout: float | None = None) -> bool:
            self.buffer.clear()
            return True

    track_many(RedisEmitter(client, key), 3)
    worker = fast_worker(Silent("127.0.0.1:9", method="post"), key, client)
    running = Running(worker, install_signal_handlers=False)
    wait_until(lambda: worker.stats()["requeued"] >= 6, 10, "two unreported rounds")
    stats = running.stop()
    assert stats["sent"] == 0
    assert client.llen(key) == 3


def test_events_that_are_not_json_objects_are_moved_aside(
    client: Any, key: str, collector: Collector
) -> None:
    client.rpush(key, "not json", json.dumps([1, 2]), json.dumps({"e": "pv", "url": "http://a"}))
    worker = fast_worker(Emitter(collector.endpoint), key, client)
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    assert [e.raw["url"] for e in collector.events] == ["http://a"]
    invalid = slot_key(key, "invalid")
    assert client.lrange(invalid, 0, -1) == [b"not json", b"[1, 2]"]
    assert worker.stats()["invalid"] == 2
    client.delete(invalid)
    assert_nothing_left(client, key)


def test_collector_down_keeps_events_in_redis_until_it_returns(client: Any, key: str) -> None:
    down = Collector().start()
    port = down.port
    down.stop()  # nothing listens on the port now: connection refused
    total = 200
    track_many(RedisEmitter(client, key), total)
    worker = fast_worker(Emitter(f"127.0.0.1:{port}", method="post"), key, client)
    running = Running(worker, install_signal_handlers=False)
    wait_until(lambda: worker.stats()["requeued"] >= 3 * total, 20, "three failed rounds")
    pipe = client.pipeline(transaction=True)  # one atomic snapshot of both lists
    pipe.llen(key)
    pipe.llen(worker.processing_key)
    assert sum(pipe.execute()) == total
    assert worker.stats()["sent"] == 0
    with Collector(port=port) as back:
        back.wait_for(total, 20)
        stats = running.stop()
        counts = eids(back.events)
    assert len(counts) == total
    assert max(counts.values()) == 1
    assert stats["sent"] == total
    assert_nothing_left(client, key)


def test_four_workers_in_threads_share_one_key(client: Any, key: str, collector: Collector) -> None:
    total = 2000
    track_many(RedisEmitter(client, key), total)
    workers = [
        fast_worker(Emitter(collector.endpoint, method="post"), key, client, batch_size=50)
        for _ in range(4)
    ]
    running = [Running(worker, install_signal_handlers=False) for worker in workers]
    collector.wait_for(total, 30)
    stats = [r.stop() for r in running]
    counts = eids(collector.events)
    assert len(counts) == total
    assert max(counts.values()) == 1
    assert sum(s["sent"] for s in stats) == total
    assert_nothing_left(client, key)


def test_request_shutdown_returns_the_batch_in_flight(client: Any, key: str) -> None:
    with Collector() as slow:
        slow.respond_with(200, delay=5)  # longer than the shutdown bound
        track_many(RedisEmitter(client, key), 30)
        worker = fast_worker(
            Emitter(slow.endpoint, method="post"), key, client, batch_size=10, shutdown_timeout=0.3
        )
        running = Running(worker, install_signal_handlers=False)
        wait_until(lambda: len(slow.requests) + client.llen(worker.processing_key) > 0, 10, "send")
        wait_until(lambda: client.llen(worker.processing_key) == 10, 10, "a batch in flight")
        stats = running.stop(timeout=5)
    assert stats["returned"] == 10
    assert client.llen(key) == 30  # all back, the returned batch at the head in order
    values = [json.loads(raw)["se_va"] for raw in client.lrange(key, 0, -1)]
    assert values == [str(i) for i in range(30)]


def test_run_in_a_thread_installs_no_signal_handler(client: Any, key: str) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    worker = fast_worker(Emitter("127.0.0.1:9"), key, client)
    running = Running(worker)
    wait_until(lambda: client.exists(slot_key(key, "workers")) == 1, 10, "registration")
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    running.stop()
    assert_nothing_left(client, key)


@pytest.mark.parametrize("install", [True, False])
def test_run_in_the_main_thread_installs_handlers_unless_told_not_to(
    client: Any, key: str, install: bool
) -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    seen: list[Any] = []

    class Probe:
        def input(self, payload: dict[str, Any]) -> None:
            seen.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))
            worker.request_shutdown()

    worker = fast_worker(Probe(), key, client)
    RedisEmitter(client, key).input({"e": "pv"})
    worker.run(install_signal_handlers=install)
    expected = (worker._on_signal, worker._on_signal) if install else before
    assert seen == [expected]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
    assert_nothing_left(client, key)


def test_defaults_and_the_0_5_0_argument_order(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SNOWPLOW_REDIS_URL", "redis://127.0.0.1:6379/0")
    worker = RedisWorker(Emitter("127.0.0.1:9"))
    assert worker.key == "snowplow"
    assert worker.rdb.connection_pool.connection_kwargs["port"] == 6379
    old_order = RedisWorker(Emitter("127.0.0.1:9"), client, "old_key")
    assert (old_order.key, old_order.rdb) == ("old_key", client)


def test_arguments_are_checked(client: Any) -> None:
    with pytest.raises(InvalidTypeError):
        RedisWorker(object(), "k", client)
    with pytest.raises(InvalidValueError):
        RedisWorker(Emitter("h"), "", client)
    with pytest.raises(InvalidValueError):
        RedisWorker(Emitter("h"), "k", client, batch_size=0)
    for name in ("poll_interval", "heartbeat_ttl", "scan_interval"):
        for bad in (0, -1.5):
            with pytest.raises(InvalidValueError, match=name):
                RedisWorker(Emitter("h"), "k", client, **{name: bad})
        with pytest.raises(InvalidTypeError, match=name):
            RedisWorker(Emitter("h"), "k", client, **{name: "1"})


def test_processing_keys_share_the_hash_slot_of_the_key() -> None:
    from redis.crc import key_slot

    for key in ("snowplow", "a{tag}b", "{x}", "odd}key", "open{"):
        derived = slot_key(key, "processing:w1")
        if "}" not in key or ("{" in key and key.index("}") > key.index("{") + 1):
            assert key_slot(derived.encode()) == key_slot(key.encode()), key
        assert derived.endswith(":processing:w1")


def test_event_identity_prefers_eid() -> None:
    assert event_identity({"eid": "abc", "stm": "1"}) == "abc"
    assert event_identity({"b": 2, "a": "1", "stm": "9"}) == event_identity({"a": "1", "b": "2"})


def test_a_worker_outlives_a_redis_that_is_down(key: str) -> None:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # Nothing listens on port 1; no client-side retries, so each error shows at once.
    down = redis.Redis(host="127.0.0.1", port=1, retry=Retry(NoBackoff(), 0))
    worker = fast_worker(Emitter("127.0.0.1:9"), key, down)
    running = Running(worker, install_signal_handlers=False)
    wait_until(lambda: worker.stats()["redis_errors"] >= 3, 20, "three Redis errors")
    stats = running.stop()
    assert stats["taken"] == 0


def test_without_lua_scripts_events_move_one_by_one(
    client: Any, key: str, collector: Collector
) -> None:
    track_many(RedisEmitter(client, key), 30)
    worker = fast_worker(
        Emitter(collector.endpoint, method="post", buffer_size=10),
        key,
        client_without_scripts(),
        batch_size=10,
    )
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    assert [e.raw["se_va"] for e in collector.events] == [str(i) for i in range(30)]
    assert_nothing_left(client, key)


def test_the_cli_drains_a_key(
    client: Any, key: str, collector: Collector, capsys: pytest.CaptureFixture[str]
) -> None:
    from snowplow_tracker.cli import main

    track_many(RedisEmitter(client, key), 12)
    client.rpush(key, json.dumps({"e": "pv", "url": "x" * 2000}))  # over --max-event-bytes
    argv = ["redis-worker", "--redis-url", "redis://127.0.0.1:6379/0", "--key", key]
    argv += ["--endpoint", collector.endpoint, "--method", "post", "--stop-when-empty"]
    argv += ["--max-event-bytes", "1500"]
    assert main(argv) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["sent"], stats["invalid"]) == (12, 1)
    assert len(eids(collector.events)) == 12
    client.delete(slot_key(key, "invalid"))
    assert_nothing_left(client, key)


def test_a_failed_acknowledgement_sends_the_batch_again_and_loses_nothing(
    client: Any, key: str, collector: Collector
) -> None:
    import redis

    track_many(RedisEmitter(client, key), 20)
    worker = fast_worker(
        Emitter(collector.endpoint, method="post", buffer_size=10), key, client, batch_size=10
    )
    acknowledge = worker._ack_script
    lost: list[int] = []

    def lost_on_the_way(keys: Any, args: Any) -> Any:
        if not lost:  # the first acknowledgement never reaches Redis
            lost.append(1)
            raise redis.ConnectionError("connection lost during the acknowledgement")
        return acknowledge(keys=keys, args=args)

    worker._ack_script = lost_on_the_way
    worker.run(install_signal_handlers=False, stop_when_empty=True)
    counts = eids(collector.events)
    assert len(counts) == 20
    assert sum(counts.values()) == 30  # the unacknowledged batch went out twice
    stats = worker.stats()
    assert (stats["redis_errors"], stats["resent"], stats["sent"]) == (1, 10, 20)
    assert_nothing_left(client, key)
