"""CeleryEmitter: hands batches of events to a Celery task that sends them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from . import emitters
from ._extras import require
from .emitters import Emitter, stringify

logger = logging.getLogger("snowplow_tracker.emitters")


class CeleryEmitter(Emitter):
    """Buffers like :class:`Emitter`; ``flush`` hands the batch to a Celery worker.

    The batch travels as JSON (a list of event dicts, with the collector's
    address), never as a pickled emitter, and the local buffer is cleared when
    it is handed over. The worker sends it with an :class:`Emitter` and retries
    what failed with Celery's retry and backoff (see ``_celery_app``).

    The task runs on ``app`` if given (register it in your worker with
    :meth:`register_task`), else on an app built on first use from
    ``snowplow_celery_config`` or the default configuration; start a worker for
    that one with ``celery -A snowplow_tracker.emitters worker``.

    Callbacks cannot cross to the worker. ``on_success(count)`` (if set as an
    attribute) reports events handed to the broker. If the broker cannot take
    a batch, ``on_failure(0, events)`` receives it; with no ``on_failure`` the
    events stay buffered for the next flush (at most ``max_kept``, oldest dropped first).
    """

    #: This emitter's own list of events waiting to be handed over (not the delivery core's queue).
    buffer: list[dict[str, str]] = []  # noqa: RUF012 (set per instance in __init__)

    def __init__(
        self,
        endpoint: str,
        protocol: str = "http",
        port: int | None = None,
        method: str = "get",
        buffer_size: int | None = None,
        *,
        byte_limit: int | None = None,
        app: Any = None,
        max_kept: int = 10_000,
    ) -> None:
        require("celery", "celery")
        super().__init__(endpoint, protocol, port, method, buffer_size, byte_limit=byte_limit)
        self.app = app
        self._target: dict[str, Any] = {
            "endpoint": endpoint,
            "protocol": protocol,
            "port": port,
            "method": method,
            "byte_limit": byte_limit,
        }
        self._celery_lock = threading.Lock()
        self.buffer = []
        self.max_kept = max_kept
        self._counts = {"handed_over": 0, "failed": 0, "dropped": 0}

    @staticmethod
    def register_task(app: Any) -> Any:
        """Register the send task on your own Celery ``app`` (do it in the worker, too)."""
        from ._celery_app import register_task

        return register_task(app)

    def input(self, payload: Mapping[str, Any]) -> None:
        """Buffer one event; hand the buffer to Celery when it is full."""
        event = stringify(payload)
        with self._celery_lock:
            self.buffer.append(event)
            full = len(self.buffer) >= self.buffer_size
        if full:
            self.flush()

    # Returns a bool; typed Any to fit both Emitter.flush() -> None and flush(timeout) -> bool.
    def flush(self, timeout: float | None = None) -> Any:
        """Hand everything buffered to the Celery task; False if the broker refused it."""
        with self._celery_lock:
            batch, self.buffer = self.buffer, []
        if not batch:
            return True
        from ._celery_app import send_task

        try:
            send_task(self.app).apply_async(args=(batch,), kwargs=self._target, serializer="json")
        except Exception as exc:  # the broker is unreachable (Celery already retried)
            self._handover_failed(batch, exc)
            return False
        self._count("handed_over", len(batch))
        self._report(len(batch), [])
        return True

    def sync_flush(self, timeout: float | None = None) -> bool:
        """Same as :meth:`flush`: handing over is synchronous."""
        return bool(self.flush(timeout))

    def stats(self) -> dict[str, int]:  # type: ignore[override]
        """Counts of events ``handed_over`` to the broker, in ``failed`` hand-overs, and
        ``dropped`` because more than ``max_kept`` waited for an unreachable broker."""
        with self._celery_lock:
            return dict(self._counts)

    def _after_fork_in_child(self) -> None:
        super()._after_fork_in_child()
        self._celery_lock = threading.Lock()
        self.buffer = []  # the parent hands over what it buffered

    def _handover_failed(self, batch: list[dict[str, str]], exc: BaseException) -> None:
        self._count("failed", len(batch))
        if self.on_failure is not None:
            logger.warning("Celery broker refused %d event(s): %s", len(batch), exc)
            self._report(0, batch)
            return
        logger.warning(
            "Celery broker refused %d event(s), kept for next flush: %s", len(batch), exc
        )
        with self._celery_lock:
            self.buffer[:0] = batch
            excess = len(self.buffer) - self.max_kept
            if excess > 0:  # bounded: the oldest go first, counted
                del self.buffer[:excess]
                self._counts["dropped"] += excess
        if excess > 0:
            logger.error("Celery broker unreachable: dropped %d buffered event(s)", excess)

    def _count(self, name: str, n: int) -> None:
        with self._celery_lock:
            self._counts[name] += n


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
