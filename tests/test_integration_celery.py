"""The scope carried into Celery tasks run by a real ``celery worker`` (threads pool)."""

from __future__ import annotations

import sys
import threading
import uuid
from pathlib import Path

import pytest

from snowplow_tracker.collector import Collector
from snowplow_tracker.scope import current_fields, tracker_scope

from .redis_celery_support import REDIS_URL, delete_keys, redis_client
from .web_support import CLIENTS, EXAMPLES, Server, check_own_fields, example_env, user

pytestmark = [pytest.mark.celery, pytest.mark.redis]
pytest.importorskip("celery", reason="the celery extra is not installed")
sys.path.insert(0, str(EXAMPLES))

TASKS = 2000


def test_16_users_2000_tasks_each_tracks_with_its_requests_scope(
    collector: Collector, tmp_path: Path
) -> None:
    """Like 16 web requests queueing tasks: each task's event carries the fields of the scope
    that queued it, though 8 worker threads run them interleaved."""
    client = redis_client()
    queue = f"test-snowplow-scope-{uuid.uuid4().hex}"
    import celery_tasks

    celery_tasks.app.conf.task_default_queue = queue
    env = example_env(SNOWPLOW_COLLECTOR=collector.endpoint, CELERY_QUEUE=queue)
    env["CELERY_BROKER_URL"] = REDIS_URL
    command = [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool=threads"]
    command += ["-c", "8", "--without-gossip", "--without-mingle", "--without-heartbeat"]
    worker = Server(
        [*command, "--loglevel=info", "-n", f"{queue}@%h"], tmp_path / "w.log", env, None
    )
    try:
        worker.wait_for(" ready.")
        labels: list[str] = []

        def request(number: int) -> None:
            for n in range(TASKS // CLIENTS):
                with tracker_scope(fields=user(number)):
                    celery_tasks.record_purchase.delay(f"{number}-{n}", current_fields())
                labels.append(f"{number}-{n}")

        threads = [threading.Thread(target=request, args=(c,)) for c in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        events = collector.wait_for(TASKS, timeout=60)
    finally:
        worker.stop(15)
        delete_keys(client, queue)
    check_own_fields(events, labels)
