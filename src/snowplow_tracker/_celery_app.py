"""The Celery app and task behind CeleryEmitter, built on first use, never at import.

The app is built from the module ``snowplow_celery_config`` if it can be
imported, else from a default configuration: broker ``$SNOWPLOW_CELERY_BROKER_URL``
(default ``redis://localhost:6379/0``), queue ``$SNOWPLOW_CELERY_QUEUE`` (default
``snowplow``), JSON messages only. It is never made the current or default app,
so it cannot take over an application's own Celery app.

The task sends a batch with the same delivery core as :class:`~snowplow_tracker.Emitter`.
Events the collector did not accept are retried with Celery's retry, with
exponential backoff and full jitter, when the failure can pass (a network
error, 408, 429, 5xx); a batch the collector rejects (another 4xx) is logged
and not retried. The message is acknowledged only after the task ran
(``acks_late``), so a worker that dies mid-send leaves it to another worker.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
from typing import Any

from ._extras import require
from ._http import new_session
from .retry import RetryPolicy

logger = logging.getLogger("snowplow_tracker.celery")

BROKER_URL_ENV = "SNOWPLOW_CELERY_BROKER_URL"
DEFAULT_BROKER_URL = "redis://localhost:6379/0"
QUEUE_ENV = "SNOWPLOW_CELERY_QUEUE"
DEFAULT_QUEUE = "snowplow"
CONFIG_MODULE = "snowplow_celery_config"
TASK_NAME = "snowplow_tracker.send_events"
#: Settings the task reads from the app's configuration (defaults in seconds).
RETRY_BACKOFF_SETTING = "snowplow_retry_backoff"
RETRY_BACKOFF_MAX_SETTING = "snowplow_retry_backoff_max"
MAX_RETRIES_SETTING = "snowplow_max_retries"
DEFAULT_RETRY_BACKOFF = 1.0
DEFAULT_RETRY_BACKOFF_MAX = 600.0

_lock = threading.RLock()
_app: Any = None


def get_app() -> Any:
    """The default app (built on first call), with the send task registered."""
    global _app
    with _lock:
        if _app is None:
            _app = _build_app()
            register_task(_app)
        return _app


def reset_app() -> None:
    """Forget the default app, so the next use builds it again from the configuration."""
    global _app
    with _lock:
        _app = None


def _build_app() -> Any:
    celery = require("celery", "celery")
    app = celery.Celery("snowplow_tracker", set_as_current=False)
    try:
        config = importlib.import_module(CONFIG_MODULE)
    except ModuleNotFoundError as exc:
        if exc.name != CONFIG_MODULE:
            raise  # the config module exists but one of its own imports is missing
        app.conf.update(
            broker_url=os.environ.get(BROKER_URL_ENV) or DEFAULT_BROKER_URL,
            task_default_queue=os.environ.get(QUEUE_ENV) or DEFAULT_QUEUE,
            task_serializer="json",
            accept_content=["json"],
            broker_connection_retry_on_startup=True,
        )
        logger.debug("Celery app for snowplow_tracker: default configuration")
    else:
        app.config_from_object(config)
        logger.debug("Celery app for snowplow_tracker: configured by %s", CONFIG_MODULE)
    return app


def register_task(app: Any) -> Any:
    """Register the send task on ``app`` (yours, or the default one) and return it.

    A worker for your own app must run this too (for example in the module
    that creates the app), so that it knows the task.
    """
    with _lock:
        return app.task(
            name=TASK_NAME,
            bind=True,
            acks_late=True,
            reject_on_worker_lost=True,
            max_retries=None,  # bounded per app by the snowplow_max_retries setting
            serializer="json",
        )(send_events)


def send_task(app: Any = None) -> Any:
    """The send task registered on ``app`` (default: :func:`get_app`)."""
    return register_task(app) if app is not None else register_task(get_app())


def send_events(
    task: Any,
    events: list[dict[str, str]],
    endpoint: str,
    protocol: str = "http",
    port: int | None = None,
    method: str = "get",
    byte_limit: int | None = None,
) -> dict[str, int]:
    """Send ``events``; retry those not accepted if the failure can pass."""
    sent, unsent, retryable = deliver(events, endpoint, protocol, port, method, byte_limit)
    if unsent and retryable:
        conf = task.app.conf
        retries = task.request.retries
        limit = conf.get(MAX_RETRIES_SETTING)
        if limit is None or retries < limit:
            base = float(conf.get(RETRY_BACKOFF_SETTING, DEFAULT_RETRY_BACKOFF))
            cap = float(conf.get(RETRY_BACKOFF_MAX_SETTING, DEFAULT_RETRY_BACKOFF_MAX))
            policy = RetryPolicy(backoff_base=base, backoff_max=cap)
            countdown = policy.backoff(retries + 1)
            logger.warning(
                "%d of %d event(s) not accepted; retry %d in %.2f s",
                len(unsent),
                len(events),
                retries + 1,
                countdown,
            )
            kwargs = {"endpoint": endpoint, "protocol": protocol, "port": port}
            kwargs.update(method=method, byte_limit=byte_limit)
            raise task.retry(args=(unsent,), kwargs=kwargs, countdown=countdown)
        logger.error("%d event(s) dropped after %d retries", len(unsent), retries)
    elif unsent:
        logger.error("the collector rejected %d event(s); not retried", len(unsent))
    return {"sent": sent, "unsent": len(unsent)}


#: Which failures the task retries: the emitters' policy, plus 425 (too early).
_POLICY = RetryPolicy().retrying(425)


def is_retryable(status: int | None) -> bool:
    """A network error (no status), 408, 425, 429 or 5xx (as :class:`RetryPolicy` decides)."""
    return _POLICY.is_retryable(status)


def deliver(
    events: list[dict[str, str]],
    endpoint: str,
    protocol: str,
    port: int | None,
    method: str,
    byte_limit: int | None,
) -> tuple[int, list[dict[str, str]], bool]:
    """Send with an :class:`Emitter`: ``(sent, unsent, whether a retry can help)``."""
    from .emitters import Emitter

    failed: list[dict[str, str]] = []
    sent = [0]
    statuses: list[int] = []
    session = new_session()
    # The emitter reports which events failed, not why; the responses say why.
    session.hooks["response"].append(lambda r, *a, **k: statuses.append(r.status_code))

    def on_failure(count: int, unsent: list[dict[str, str]]) -> None:
        sent[0] += count
        failed.extend(unsent)

    def on_success(count: int) -> None:
        sent[0] += count

    emitter = Emitter(
        endpoint,
        protocol,
        port,
        method,
        buffer_size=max(1, len(events)),
        on_success=on_success,
        on_failure=on_failure,
        session=session,
        byte_limit=byte_limit,
    )
    try:
        for event in events:
            emitter.input(event)
        emitter.flush()
    finally:
        session.close()
    errors = [status for status in statuses if not 200 <= status < 300]
    retryable = bool(failed) and (
        len(errors) == 0 or any(is_retryable(status) for status in errors)
    )
    return sent[0], failed, retryable
