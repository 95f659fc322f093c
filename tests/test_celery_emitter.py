"""CeleryEmitter with real `celery worker` processes (Redis broker; RabbitMQ when it runs)."""

from __future__ import annotations

import base64
import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from snowplow_tracker import CeleryEmitter, Tracker
from snowplow_tracker.collector import Collector

from .redis_celery_support import (
    RABBIT_URL,
    REDIS_URL,
    Recorder,
    child_env,
    delete_keys,
    eids,
    end,
    reachable,
    redis_client,
    start,
    track_many,
    track_varied,
    wait_for_text,
    without_stm,
)

pytestmark = [pytest.mark.celery, pytest.mark.redis]
celery = pytest.importorskip("celery", reason="the celery extra is not installed")

from snowplow_tracker import _celery_app  # noqa: E402

WORKER_OPTIONS = [
    "--loglevel=debug",
    "--pool=solo",
    "-c",
    "1",
    "--without-gossip",
    "--without-mingle",
    "--without-heartbeat",
]


@contextmanager
def celery_worker(log: Path, env: dict[str, str], name: str) -> Iterator[Path]:
    """``celery -A snowplow_tracker.emitters worker``, as the 0.4.0 release notes start it."""
    command = [sys.executable, "-m", "celery", "-A", "snowplow_tracker.emitters", "worker"]
    process = start([*command, *WORKER_OPTIONS, "-n", f"{name}@%h"], log, env)
    try:
        wait_for_text(log, " ready.", 60)
        yield log
    finally:
        end(process, grace=3)  # a warm shutdown over AMQP can linger for seconds


@contextmanager
def producer_env(**variables: str) -> Iterator[None]:
    """This process builds its default app from ``variables`` (and forgets it afterwards)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in variables.items():
            patch.setenv(name, value)
        _celery_app.reset_app()
        try:
            yield
        finally:
            _celery_app.reset_app()


@pytest.fixture(scope="module")
def redis_queue() -> Iterator[str]:
    client = redis_client()
    queue = f"test-snowplow-{uuid.uuid4().hex}"
    yield queue
    delete_keys(client, queue)


@pytest.fixture(scope="module")
def default_worker(tmp_path_factory: pytest.TempPathFactory, redis_queue: str) -> Iterator[Path]:
    """A worker on the default configuration: broker and queue from the environment."""
    settings = {"SNOWPLOW_CELERY_BROKER_URL": REDIS_URL, "SNOWPLOW_CELERY_QUEUE": redis_queue}
    log = tmp_path_factory.mktemp("celery") / "default.log"
    with celery_worker(log, child_env(**settings), "default"), producer_env(**settings):
        yield log


def sent_in_order(recorder: Recorder, collector: Collector) -> None:
    arrived = sorted((without_stm(e.raw) for e in collector.events), key=lambda e: e["eid"])
    assert arrived == sorted(recorder.payloads, key=lambda e: e["eid"])
    assert all(e.valid for e in collector.events), [e.errors for e in collector.events]


@pytest.mark.parametrize("method", ["post", "get"])
def test_the_default_worker_receives_batches_and_delivers_them(
    default_worker: Path, collector: Collector, method: str
) -> None:
    emitter = CeleryEmitter(collector.endpoint, method=method, buffer_size=2)
    recorder = Recorder(emitter)
    track_varied(recorder)  # 3 events: a batch of 2 is handed over in the background
    Tracker(emitter).flush(timeout=30)
    assert emitter.buffer == []
    collector.wait_for(3, 30)
    sent_in_order(recorder, collector)
    assert {e.method for e in collector.events} == {method.upper()}
    stats = emitter.stats()
    assert (stats.sent, stats.failed, stats.queued, stats.in_flight) == (3, 0, 0, 0)
    assert "snowplow_tracker.send_events" in default_worker.read_text()


def test_a_failing_collector_makes_the_task_retry_not_drop(
    default_worker: Path, collector: Collector
) -> None:
    collector.script(500, 503)
    emitter = CeleryEmitter(collector.endpoint, method="post", buffer_size=10)
    track_many(emitter, 4)
    emitter.flush()
    collector.wait_for(4, 30)
    assert [r.status for r in collector.requests] == [500, 503, 200]
    counts = eids(collector.events)
    assert len(counts) == 4
    assert max(counts.values()) == 1
    assert default_worker.read_text().count("Retry in") >= 2


def test_a_rejected_batch_is_not_retried(default_worker: Path, collector: Collector) -> None:
    collector.script(400)
    emitter = CeleryEmitter(collector.endpoint, method="post")
    marker = f"se_la-{uuid.uuid4().hex}"
    Tracker(emitter).track_struct_event("c", "a", label=marker).track_struct_event("c", "b")
    emitter.flush()
    wait_for_text(default_worker, "'unsent': 2}", 30)
    assert [r.status for r in collector.requests] == [400]
    assert "rejected 2 event(s); not retried" in default_worker.read_text()


def test_batches_travel_as_json_never_pickles(collector: Collector) -> None:
    client = redis_client()
    queue = f"test-snowplow-idle-{uuid.uuid4().hex}"  # no worker consumes it
    try:
        with producer_env(SNOWPLOW_CELERY_BROKER_URL=REDIS_URL, SNOWPLOW_CELERY_QUEUE=queue):
            emitter = CeleryEmitter(collector.endpoint, method="post", port=None)
            track_many(emitter, 3)
            emitter.flush()
        (raw,) = client.lrange(queue, 0, -1)
        message = json.loads(raw)
        assert message["content-type"] == "application/json"
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        assert [event["se_va"] for event in args[0]] == ["0", "1", "2"]
        assert kwargs["endpoint"] == collector.endpoint
        assert kwargs["method"] == "post"
    finally:
        delete_keys(client, queue)


def test_snowplow_celery_config_is_used_by_producer_and_worker(
    tmp_path: Path, collector: Collector, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = redis_client()
    queue = f"test-snowplow-config-{uuid.uuid4().hex}"
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    (config_dir / "snowplow_celery_config.py").write_text(
        f"broker_url = {REDIS_URL!r}\n"
        f"task_default_queue = {queue!r}\n"
        "task_serializer = 'json'\n"
        "accept_content = ['json']\n"
        "broker_connection_retry_on_startup = True\n"
        "snowplow_retry_backoff = 0.1\n"
    )
    # The environment points elsewhere: only the config module can make this test pass.
    wrong = {"SNOWPLOW_CELERY_BROKER_URL": "redis://127.0.0.1:1/0", "SNOWPLOW_CELERY_QUEUE": "no"}
    env = child_env(**wrong)
    env["PYTHONPATH"] = f"{config_dir}:{env['PYTHONPATH']}"
    monkeypatch.syspath_prepend(str(config_dir))
    monkeypatch.delitem(sys.modules, "snowplow_celery_config", raising=False)
    try:
        with celery_worker(tmp_path / "config.log", env, "config"), producer_env(**wrong):
            assert _celery_app.get_app().conf.task_default_queue == queue
            collector.script(502)
            emitter = CeleryEmitter(collector.endpoint, method="post", buffer_size=3)
            track_many(emitter, 3)
            collector.wait_for(3, 30)
            assert [r.status for r in collector.requests] == [502, 200]
    finally:
        sys.modules.pop("snowplow_celery_config", None)
        delete_keys(client, queue)


@pytest.mark.skipif(not reachable("127.0.0.1", 5672), reason="no RabbitMQ on 127.0.0.1:5672")
def test_a_rabbitmq_broker_works_too(tmp_path: Path, collector: Collector) -> None:
    queue = f"test-snowplow-amqp-{uuid.uuid4().hex}"
    settings = {"SNOWPLOW_CELERY_BROKER_URL": RABBIT_URL, "SNOWPLOW_CELERY_QUEUE": queue}
    try:
        log = tmp_path / "amqp.log"
        with celery_worker(log, child_env(**settings), "amqp"), producer_env(**settings):
            emitter = CeleryEmitter(collector.endpoint, method="post", buffer_size=5)
            track_many(emitter, 5)
            collector.wait_for(5, 30)
        assert len(eids(collector.events)) == 5
    finally:
        with celery.Celery(broker=RABBIT_URL).connection_for_write() as connection:
            connection.default_channel.queue_delete(queue)


def test_binding_to_your_own_app(collector: Collector) -> None:
    _celery_app.reset_app()
    app = celery.Celery("mine", set_as_current=False)
    app.conf.task_always_eager = True  # runs the task here: the point is the binding
    emitter = CeleryEmitter(collector.endpoint, method="post", app=app)
    track_many(emitter, 3)
    emitter.flush()
    assert len(collector.events) == 3
    assert "snowplow_tracker.send_events" in app.tasks
    assert CeleryEmitter.register_task(app) is app.tasks["snowplow_tracker.send_events"]
    assert _celery_app._app is None  # the default app was never built


def test_the_worker_command_finds_the_app_lazily() -> None:
    code = (
        "import sys, snowplow_tracker.emitters as m\n"
        "assert 'celery' not in sys.modules\n"
        "app = m.app\n"
        "assert type(app).__name__ == 'Celery' and m.app is app\n"
        "assert 'snowplow_tracker.send_events' in app.tasks\n"
        "try:\n    m.nothing_here\nexcept AttributeError:\n    print('ok')\n"
    )
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_publish_timeout_is_checked() -> None:
    from snowplow_tracker import InvalidTypeError, InvalidValueError

    for bad in (0, -1):
        with pytest.raises(InvalidValueError, match="publish_timeout"):
            CeleryEmitter("127.0.0.1:9", publish_timeout=bad)
    with pytest.raises(InvalidTypeError, match="publish_timeout"):
        CeleryEmitter("127.0.0.1:9", publish_timeout="2")


def test_retry_classification() -> None:
    assert _celery_app.is_retryable(None)
    assert all(_celery_app.is_retryable(s) for s in (408, 425, 429, 500, 502, 503, 504))
    assert not any(_celery_app.is_retryable(s) for s in (400, 401, 403, 404, 410, 413, 422))
