"""Emitters: buffer events and send them to a Snowplow collector.

* :class:`Emitter` sends in the calling thread when its buffer is full or on
  ``flush()``; a flush that is not wholly successful calls
  ``on_failure(count_sent, unsent)`` before it returns.
* :class:`AsyncEmitter` hands full buffers to background worker threads, so
  ``track_*`` never waits on the network.
* :class:`CeleryEmitter` and :class:`RedisEmitter` move sending out of the
  process; they need the ``celery`` and ``redis`` extras.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import requests

from . import contracts
from ._http import RequestsTransport, SendResult, Timeout
from .constants import (
    DEFAULT_BYTE_LIMIT,
    DEFAULT_REQUEST_TIMEOUT,
    GET_PATH,
    PAYLOAD_DATA_SCHEMA,
    POST_PATH,
)
from .contracts import fail_value
from .payload import dumps
from .typing import FailureCallback, SuccessCallback

logger = logging.getLogger(__name__)

Event = dict[str, str]

DEFAULT_MAX_LENGTH = 10
_POST_PREFIX = ('{"schema":"' + PAYLOAD_DATA_SCHEMA + '","data":[').encode()
_POST_SUFFIX = b"]}"
_ENVELOPE_BYTES = len(_POST_PREFIX) + len(_POST_SUFFIX)


def _now_ms() -> str:
    return str(int(time.time() * 1000))


def stringify(payload: Mapping[str, Any]) -> Event:
    """Every value as a string, as the tracker protocol sends it (0.5.0 used ``str()``)."""
    return {k: v if type(v) is str else str(v) for k, v in payload.items() if v is not None}


def event_size(event: Event) -> int:
    """Approximate serialised bytes of one event: exact for ASCII without escapes."""
    return sum(len(k) + len(v) for k, v in event.items()) + 6 * len(event) + 1


class Emitter:
    """Sends events to a collector synchronously, in the thread that tracks them.

    GET sends one request per event to ``/i``, in order. POST sends batches to
    ``/com.snowplowanalytics.snowplow/tp2``, none larger than ``byte_limit``
    bytes (an event too big on its own goes alone). ``on_success(count)`` is
    called when a flush sent everything, otherwise ``on_failure(count_sent,
    unsent_events)``: exactly one of them per flush that had events.
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
        request_timeout: Timeout | None = DEFAULT_REQUEST_TIMEOUT,
        session: requests.Session | None = None,
        byte_limit: int | None = None,
    ) -> None:
        if contracts._enabled:
            _check_emitter_args(endpoint, protocol, port, method, buffer_size, byte_limit)
            contracts.optional_callable("Emitter()", "on_success", on_success)
            contracts.optional_callable("Emitter()", "on_failure", on_failure)
        self.endpoint = Emitter.as_collector_uri(endpoint, protocol, port, method)
        self.method = method
        self.buffer_size = buffer_size or (1 if method == "get" else DEFAULT_MAX_LENGTH)
        self.byte_limit = byte_limit or (DEFAULT_BYTE_LIMIT if method == "post" else None)
        self.on_success = on_success
        self.on_failure = on_failure
        self.request_timeout = request_timeout
        self.buffer: list[Event] = []
        self._buffer_bytes = 0
        self._lock = threading.Lock()
        self._transport = RequestsTransport(session, request_timeout or None)  # type: ignore[arg-type]
        logger.debug("Emitter initialized with endpoint %s", self.endpoint)

    @staticmethod
    def as_collector_uri(
        endpoint: str, protocol: str = "http", port: int | None = None, method: str = "get"
    ) -> str:
        """The collector URL: ``protocol://endpoint[:port]`` plus ``/i`` or the tp2 path.

        An endpoint that already names its scheme (``https://c.example.com``)
        keeps it, and a trailing ``/`` is dropped.
        """
        endpoint = endpoint.rstrip("/")
        if "://" in endpoint:
            protocol, endpoint = endpoint.split("://", 1)
        path = POST_PATH if method == "post" else GET_PATH
        netloc = endpoint if port is None else f"{endpoint}:{port}"
        return f"{protocol}://{netloc}{path}"

    # -- input ---------------------------------------------------------------------------------

    def input(self, payload: Mapping[str, Any]) -> None:
        """Buffer one event (a dict of name-value pairs); send when the buffer is full."""
        event = stringify(payload)
        with self._lock:
            self.buffer.append(event)
            if self.byte_limit is not None:
                self._buffer_bytes += event_size(event)
            full = len(self.buffer) >= self.buffer_size or (
                self.byte_limit is not None and self._buffer_bytes >= self.byte_limit
            )
        if full:
            self.flush()

    def _take(self) -> list[Event]:
        with self._lock:
            batch, self.buffer = self.buffer, []
            self._buffer_bytes = 0
        return batch

    # -- flushing ------------------------------------------------------------------------------

    def flush(self) -> None:
        """Send everything buffered now, in this thread."""
        batch = self._take()
        if batch:
            self._deliver(batch)

    def sync_flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered; return when it has been sent or has failed.

        Returns True (a synchronous emitter has nothing left in flight).
        """
        Emitter.flush(self)
        return True

    def _deliver(self, batch: list[Event]) -> tuple[int, list[Event]]:
        if self.method == "post":
            sent, unsent = self._send_post(batch)
        else:
            sent, unsent = self._send_get(batch)
        self._report(sent, unsent)
        return sent, unsent

    def _send_get(self, batch: list[Event]) -> tuple[int, list[Event]]:
        sent = 0
        unsent: list[Event] = []
        for index, event in enumerate(batch):
            result = self._transport.get(self.endpoint, {**event, "stm": _now_ms()})
            self._log_result("GET", 1, result)
            if result.ok:
                sent += 1
                continue
            unsent.append(event)
            if result.status is None:
                # The collector is unreachable: do not wait a timeout per remaining event.
                unsent.extend(batch[index + 1 :])
                break
        return sent, unsent

    def _send_post(self, batch: list[Event]) -> tuple[int, list[Event]]:
        sent = 0
        unsent: list[Event] = []
        chunks = split_batch(batch, self.byte_limit)
        for index, chunk in enumerate(chunks):
            result = self._transport.post(self.endpoint, post_body(chunk, _now_ms()))
            self._log_result("POST", len(chunk), result)
            if result.ok:
                sent += len(chunk)
                continue
            unsent.extend(chunk)
            if result.status is None:
                for rest in chunks[index + 1 :]:
                    unsent.extend(rest)
                break
        return sent, unsent

    def _log_result(self, verb: str, count: int, result: SendResult) -> None:
        if result.ok:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s of %d event(s) to %s: %s", verb, count, self.endpoint, result.describe()
                )
        else:
            logger.warning(
                "%s of %d event(s) to %s failed: %s", verb, count, self.endpoint, result.describe()
            )

    def _report(self, sent: int, unsent: list[Event]) -> None:
        try:
            if unsent:
                if self.on_failure is not None:
                    self.on_failure(sent, unsent)
            elif self.on_success is not None:
                self.on_success(sent)
        except Exception:
            logger.exception("an emitter callback raised; the exception was ignored")


def split_batch(batch: Sequence[Event], byte_limit: int | None) -> list[list[Event]]:
    """Cut ``batch`` into runs whose POST bodies stay within ``byte_limit`` bytes."""
    if byte_limit is None:
        return [list(batch)]
    chunks: list[list[Event]] = []
    current: list[Event] = []
    size = _ENVELOPE_BYTES
    for event in batch:
        # +20 for the "stm" pair added at send time, +1 for the comma.
        event_bytes = len(dumps(event).encode()) + 20 + 1
        if current and size + event_bytes > byte_limit:
            chunks.append(current)
            current, size = [], _ENVELOPE_BYTES
        current.append(event)
        size += event_bytes
    if current:
        chunks.append(current)
    return chunks


def post_body(events: Sequence[Event], stm: str) -> bytes:
    """The payload_data 1-0-4 body for ``events``, each stamped with ``stm``."""
    data = ",".join(dumps({**event, "stm": stm}) for event in events)
    return _POST_PREFIX + data.encode() + _POST_SUFFIX


def _check_emitter_args(
    endpoint: object,
    protocol: object,
    port: object,
    method: object,
    buffer_size: object,
    byte_limit: object,
) -> None:
    where = "Emitter()"
    contracts.non_empty_string(where, "endpoint", endpoint)
    contracts.one_of(where, "protocol", protocol, ("http", "https"))
    if port is not None:
        contracts.integer(where, "port", port, minimum=1)
        if isinstance(port, int) and port > 65535:
            fail_value(where, "port", "at most 65535", port)
    contracts.one_of(where, "method", method, ("get", "post"))
    if buffer_size is not None:
        contracts.integer(where, "buffer_size", buffer_size, minimum=1)
    if byte_limit is not None:
        contracts.integer(where, "byte_limit", byte_limit, minimum=1)
    if isinstance(endpoint, str) and any(ch.isspace() for ch in endpoint):
        fail_value(where, "endpoint", "a host name without spaces", endpoint)


class AsyncEmitter(Emitter):
    """Like :class:`Emitter`, but full buffers are sent by background worker threads.

    ``track_*`` never waits on the network. ``flush()`` hands the buffer to the
    workers and returns; ``sync_flush()`` waits until everything handed over
    has been sent or has failed. A fixed pool of ``thread_count`` daemon
    threads starts on first use. At interpreter exit, buffered and queued
    events are sent within ``exit_timeout`` seconds, so a dead collector
    cannot hang exit. A forked child starts with an empty buffer and its own
    workers, and never re-sends its parent's events.
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
        thread_count: int = 1,
        *,
        request_timeout: Timeout | None = DEFAULT_REQUEST_TIMEOUT,
        session: requests.Session | None = None,
        byte_limit: int | None = None,
        exit_timeout: float = 5.0,
    ) -> None:
        super().__init__(
            endpoint,
            protocol,
            port,
            method,
            buffer_size,
            on_success,
            on_failure,
            request_timeout=request_timeout,
            session=session,
            byte_limit=byte_limit,
        )
        if contracts._enabled:
            contracts.integer("AsyncEmitter()", "thread_count", thread_count, minimum=1)
            contracts.number("AsyncEmitter()", "exit_timeout", exit_timeout)
        self.thread_count = thread_count
        self.exit_timeout = exit_timeout
        self._init_workers()
        _watch(self)

    def _init_workers(self) -> None:
        self._queue: queue.SimpleQueue[list[Event] | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._pending = 0
        self._idle = threading.Condition(threading.Lock())

    def _after_fork_in_child(self) -> None:
        # The parent still owns (and will send) what it had buffered or queued.
        self._lock = threading.Lock()
        self.buffer = []
        self._buffer_bytes = 0
        self._init_workers()

    def flush(self) -> None:
        """Hand everything buffered to the workers and return at once."""
        batch = self._take()
        if batch:
            self._submit(batch)

    def sync_flush(self, timeout: float | None = None) -> bool:
        """Send everything buffered; wait until all handed-over events are sent or failed.

        Returns False if ``timeout`` seconds passed first.
        """
        self.flush()
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _submit(self, batch: list[Event]) -> None:
        with self._idle:
            self._pending += 1
            if len(self._workers) < self.thread_count:
                self._start_workers()
        self._queue.put(batch)

    def _start_workers(self) -> None:
        while len(self._workers) < self.thread_count:
            worker = threading.Thread(
                target=self._work, name=f"snowplow-emitter-{len(self._workers)}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def _work(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is None:
                return
            try:
                self._deliver(batch)
            except Exception:  # a bug must not kill the worker and strand the queue
                logger.exception("sending a batch failed unexpectedly")
            finally:
                with self._idle:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def _drain_at_exit(self) -> None:
        batch = self._take()
        if self._workers:
            if batch:
                self._submit(batch)
            if not self.sync_flush(self.exit_timeout):
                logger.warning(
                    "exit: events still unsent after %.1f s were abandoned", self.exit_timeout
                )
        elif batch:
            # New threads cannot start while the interpreter exits: send from this one.
            self._deliver(batch)


_async_emitters: weakref.WeakSet[AsyncEmitter] = weakref.WeakSet()
_hooks_installed = False
_hooks_lock = threading.Lock()


def _watch(emitter: AsyncEmitter) -> None:
    global _hooks_installed
    with _hooks_lock:
        _async_emitters.add(emitter)
        if not _hooks_installed:
            atexit.register(_drain_all_at_exit)
            os.register_at_fork(after_in_child=_reset_all_after_fork)
            _hooks_installed = True


def _drain_all_at_exit() -> None:
    for emitter in list(_async_emitters):
        try:
            emitter._drain_at_exit()
        except Exception:
            logger.exception("flushing an emitter at exit failed")


def _reset_all_after_fork() -> None:
    for emitter in list(_async_emitters):
        emitter._after_fork_in_child()


# Imported last: CeleryEmitter subclasses Emitter. Neither imports celery or redis here.
from ._celery import CeleryEmitter  # noqa: E402
from ._redis import RedisEmitter  # noqa: E402

__all__ = ["AsyncEmitter", "CeleryEmitter", "Emitter", "RedisEmitter", "logger"]


def __getattr__(name: str) -> Any:
    # `celery -A snowplow_tracker.emitters worker` looks up `app`: build it then, never at import.
    if name == "app":
        from ._celery_app import get_app

        return get_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
