"""CeleryEmitter: the delivery core of AsyncEmitter, with Celery's broker as the transport."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from . import contracts, emitters
from ._body import split_batch
from ._delivery import Event
from ._extras import require
from .emitters import AsyncEmitter
from .event_store import Record, decode_record
from .transport import SendResult
from .typing import FailureCallback, SuccessCallback

logger = logging.getLogger("snowplow_tracker.emitters")

#: Seconds a hand-over may take to connect to the broker, and each read or write after that.
DEFAULT_PUBLISH_TIMEOUT = 2.0
#: What a published batch counts as: the broker took it (``SendResult.ok``).
ACCEPTED = 202


class CeleryPublisher:
    """Publishes one batch as one message of the send task, and never raises.

    It uses a broker connection of its own, kept between hand-overs, with
    every step bounded by ``timeout``: the connection (``connect_timeout``),
    each socket read and write (the Redis and AMQP transports' options), and
    no retries by kombu (``max_retries=0``, ``retry=False``): retrying is the
    delivery core's job, with its policy. A broker that accepts connections
    and never answers therefore costs one ``timeout`` per attempt.
    """

    def __init__(self, app: Any, target: dict[str, Any], timeout: float) -> None:
        self.app = app
        self.target = target
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection: Any = None

    def publish(self, events: list[Event]) -> SendResult:
        from ._celery_app import send_task

        with self._lock:
            try:
                task = send_task(self.app)
                task.apply_async(
                    args=(events,),
                    kwargs=self.target,
                    serializer="json",
                    connection=self._connect(task.app),
                    retry=False,
                )
            except Exception as exc:  # the broker is down, silent or refused the message
                self._forget()
                return SendResult(None, exc)
        return SendResult(ACCEPTED)

    def _connect(self, app: Any) -> Any:
        if self._connection is None:
            timeout = self.timeout
            options = {"socket_timeout": timeout, "socket_connect_timeout": timeout}
            options.update(read_timeout=timeout, write_timeout=timeout, max_retries=0)
            self._connection = app.connection_for_write(
                connect_timeout=timeout, transport_options=options
            )
        return self._connection

    def _forget(self) -> None:
        """Drop the connection without talking to the broker (it may be the problem)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.collect()
            except Exception:  # freeing a broken connection must not fail a hand-over
                logger.debug("closing a broker connection failed", exc_info=True)

    def close(self) -> None:
        """Let the connection go; a hand-over stuck on a silent broker keeps its own."""
        if self._lock.acquire(timeout=0.05):
            try:
                self._forget()
            finally:
                self._lock.release()


class CeleryEmitter(AsyncEmitter):
    """Queues like :class:`AsyncEmitter`; a background thread hands batches to a Celery worker.

    ``track_*`` only queues. One hand-over thread publishes each batch as one
    message of the task ``snowplow_tracker.send_events`` (JSON: the event dicts
    and the collector's address, never a pickled emitter), with bounded
    connection and publish timeouts (``publish_timeout`` seconds each, default
    2). A hand-over that fails is retried with the delivery core's
    ``retry`` policy, and every event's outcome is counted once in
    :meth:`stats`: ``sent`` means handed to the broker. ``on_success(count)``
    and ``on_failure(count, events)`` report hand-overs; the collector's
    answer reaches the worker only (see ``_celery_app``).

    ``flush(timeout)``, ``close(timeout)`` and interpreter exit are bounded as
    for :class:`AsyncEmitter`: what ``close`` cannot hand over in time is
    counted as dropped and given to ``on_failure``.

    The task runs on ``app`` if given (register it in your worker with
    :meth:`register_task`), else on an app built on first use from
    ``snowplow_celery_config`` or the default configuration; start a worker for
    that one with ``celery -A snowplow_tracker.emitters worker``. Other keyword
    options are AsyncEmitter's (``retry``, ``flush_interval``,
    ``max_queue_size``, ``overflow``, ``exit_timeout``, ...).
    """

    def __init__(
        self,
        endpoint: str,
        protocol: str = "http",
        port: int | None = None,
        method: str = "get",
        buffer_size: int | None = None,
        on_success: SuccessCallback | None = None,
        on_failure: FailureCallback | None = None,
        *,
        byte_limit: int | None = None,
        app: Any = None,
        publish_timeout: float = DEFAULT_PUBLISH_TIMEOUT,
        **options: Any,
    ) -> None:
        require("celery", "celery")
        if contracts._enabled:
            contracts.positive("CeleryEmitter()", "publish_timeout", publish_timeout)
        super().__init__(
            endpoint,
            protocol,
            port,
            method,
            buffer_size,
            on_success,
            on_failure,
            1,  # one hand-over thread: batches reach the broker in order
            byte_limit=byte_limit,
            **options,
        )
        self.app = app
        self.publish_timeout = publish_timeout
        self._target: dict[str, Any] = {
            "endpoint": endpoint,
            "protocol": protocol,
            "port": port,
            "method": method,
            "byte_limit": byte_limit,
        }
        self._publisher = CeleryPublisher(app, self._target, publish_timeout)

    @staticmethod
    def register_task(app: Any) -> Any:
        """Register the send task on your own Celery ``app`` (do it in the worker, too)."""
        from ._celery_app import register_task

        return register_task(app)

    def _units(self, events: Sequence[Record]) -> list[list[Record]]:
        # One message per batch, whatever the collector method; byte_limit bounds POST batches.
        return split_batch(events, self.byte_limit)

    def _send_unit(self, events: list[Record], left: float) -> SendResult:
        result = self._publisher.publish([decode_record(event) for event in events])
        if not result.ok:
            logger.info("handing %d event(s) to Celery failed: %s", len(events), result.describe())
        return result

    def _shut_down(self, done: bool) -> None:
        super()._shut_down(done)
        self._publisher.close()

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        # The parent's broker connection is the parent's: never used (or closed) here.
        self._publisher = CeleryPublisher(self.app, self._target, self.publish_timeout)


def _emitters_getattr(name: str) -> Any:
    # `celery -A snowplow_tracker.emitters worker` looks up `app`: build it then, never at import.
    if name == "app":
        from ._celery_app import get_app

        return get_app()
    raise AttributeError(f"module 'snowplow_tracker.emitters' has no attribute {name!r}")


# 0.5.0 defined CeleryEmitter in snowplow_tracker.emitters, and celery workers name that module:
# this module (imported by the package) adds both there, so the core never imports us.
emitters.CeleryEmitter = CeleryEmitter  # type: ignore[attr-defined]
setattr(emitters, "__getattr__", _emitters_getattr)  # noqa: B010 - mypy refuses the plain form
