"""The Celery app and task behind CeleryEmitter, built on first use, never at import."""

from __future__ import annotations

import importlib
import os
import threading
from typing import Any

from ._extras import require

BROKER_URL_ENV = "SNOWPLOW_CELERY_BROKER_URL"
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
TASK_NAME = "snowplow_tracker.send_events"

_lock = threading.Lock()
_app: Any = None
_tasks: dict[int, Any] = {}


def get_app() -> Any:
    """App: ``snowplow_celery_config`` if importable, else ``$SNOWPLOW_CELERY_BROKER_URL``."""
    global _app
    with _lock:
        if _app is None:
            celery = require("celery", "celery")
            app = celery.Celery("snowplow_tracker", set_as_current=False)
            try:
                config = importlib.import_module("snowplow_celery_config")
            except ImportError:
                app.conf.broker_url = os.environ.get(BROKER_URL_ENV, DEFAULT_BROKER_URL)
            else:
                app.config_from_object(config)
            _app = app
        return _app


def send_task(app: Any = None) -> Any:
    """The send task registered on ``app`` (default: :func:`get_app`)."""
    app = app if app is not None else get_app()
    with _lock:
        task = _tasks.get(id(app))
        if task is None:
            task = app.task(name=TASK_NAME)(_send_events)
            _tasks[id(app)] = task
    return task


def _send_events(endpoint: str, method: str, events: list[dict[str, str]], byte_limit: Any) -> int:
    from .emitters import Emitter

    emitter = Emitter("localhost", method=method, byte_limit=byte_limit)
    emitter.endpoint = endpoint  # already a full collector URL
    sent, unsent = emitter._deliver(events)
    if unsent:
        raise RuntimeError(f"{len(unsent)} of {len(events)} events were not accepted")
    return sent
