"""The local collector: an ASGI app on uvicorn, in a background thread.

``Collector`` is both the product (``snowplow-tracker collector``) and the
fixture of the test suites: it keeps every request and every event, and can be
scripted to answer with other statuses, a ``Retry-After`` header or a delay, so
tests can make a collector fail.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import uvicorn

from .._redact import redact_url
from .app import GIF, CollectorApp
from .iglu import LOOKUP_TIMEOUT, Repository, Resolver
from .micro import Record
from .protocol import IDLE_TIMEOUT, REQUEST_TIMEOUT, protocol_class
from .store import DEFAULT_MAX_EVENTS, MemoryStore, SqliteStore, Store
from .validate import (
    CollectorPayload,
    Event,
    PayloadFailure,
    ProtocolViolation,
    check_events,
    extract_events,
)

__all__ = ["GIF", "Collector", "RequestRecord", "Response", "run_collector", "tune_gc_for_serving"]

logger = logging.getLogger("snowplow_tracker.collector")
STOP_TIMEOUT = 5.0
_GRACE = 1.0  # seconds in-flight responses get to finish when the collector stops


@dataclass(frozen=True)
class Response:
    """What the collector answers to one tracking request."""

    status: int = 200
    delay: float = 0.0
    retry_after: Optional[str] = None


@dataclass
class RequestRecord:
    """One tracking request as received, with the status it was answered with."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    error: Optional[str] = None
    query: str = ""


class _Server(uvicorn.Server):
    """uvicorn's server, made to stop at once instead of on its 0.1 s tick."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.exit_event: asyncio.Event | None = None

    async def main_loop(self) -> None:
        self.exit_event = asyncio.Event()
        while not await self.on_tick(0):  # tick 0 refreshes the Date header
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.exit_event.wait(), 1.0)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # idle keep-alive connections close now
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _GRACE
        while self.server_state.connections and loop.time() < deadline:
            await asyncio.sleep(0.005)
        for task in list(self.server_state.tasks):
            task.cancel()
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()


class Collector:
    """A collector running in a background thread; use as a context manager or start()/stop().

    ``schemas`` are directories of Iglu schemas (Iglu layout) searched before the
    bundled Iglu Central copy; ``registries`` are remote Iglu registries, only asked
    when given, each lookup awaited at most ``registry_timeout`` seconds. ``db`` is a
    SQLite file to keep events in (default: memory only). At most ``max_events``
    events are kept.

    A request must arrive within ``request_timeout`` seconds (else 408); an idle
    connection is closed after ``idle_timeout``. ``allow_origins``: origins (or
    ``"*"``) whose pages may read the Micro API, beside the collector's own.
    ``keep_secrets``: keep ``Cookie``, ``Authorization`` and ``Proxy-Authorization``
    values instead of redacting them in what is stored and served.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        schemas: Iterable[str | Path] = (),
        *,
        db: str | Path | None = None,
        max_events: int = DEFAULT_MAX_EVENTS,
        registries: Iterable[str | Repository] = (),
        log_events: bool = False,
        registry_timeout: float = LOOKUP_TIMEOUT,
        request_timeout: float = REQUEST_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        allow_origins: Iterable[str] = (),
        keep_secrets: bool = False,
    ) -> None:
        self.resolver = Resolver(schemas, registries, lookup_timeout=registry_timeout)
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.allow_origins = frozenset(o.rstrip("/") for o in allow_origins)
        self.keep_secrets = keep_secrets
        self.store: Store = (
            SqliteStore(db, max_events) if db is not None else MemoryStore(max_events)
        )
        self.max_events = max_events
        self.log_events = log_events
        self.events: list[Event] = []
        self.requests: list[RequestRecord] = []
        self.violations: list[str] = []
        self.failures: list[PayloadFailure] = []
        self.received = 0
        self._script: deque[Response] = deque()
        self._default = Response()
        self._lock = threading.Condition()
        self._socket = _bind(host, port)
        self._app = CollectorApp(self)
        self._server: _Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._startup_error: BaseException | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._socket.getsockname()[1])

    @property
    def host(self) -> str:
        return str(self._socket.getsockname()[0])

    @property
    def endpoint(self) -> str:
        """``host:port``, as the Emitter's ``endpoint`` argument takes it."""
        host = self.host
        return f"[{host}]:{self.port}" if ":" in host else f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def ui_url(self) -> str:
        return f"{self.url}/micro/ui"

    def start(self) -> Collector:
        if self._thread is not None:
            return self
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            access_log=False,
            log_config=None,
            proxy_headers=False,
            server_header=False,
            http=protocol_class(self.request_timeout),
            ws="none",
            loop="asyncio",
            timeout_keep_alive=self.idle_timeout,  # type: ignore[arg-type] # any number works
            backlog=1024,
        )
        self._server = _Server(config)
        self._thread = threading.Thread(
            target=self._run, name=f"snowplow-collector-{self.port}", daemon=True
        )
        self._thread.start()
        self._started.wait(STOP_TIMEOUT)
        if self._startup_error is not None:
            raise RuntimeError("the collector did not start") from self._startup_error
        return self

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._startup_error = exc
            self._started.set()

    async def _serve(self) -> None:
        assert self._server is not None
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._loop.call_soon(self._started.set)
        await self._server.serve(sockets=[self._socket])

    def stop(self) -> None:
        """Stop serving; bounded even with delayed responses in flight. Idempotent."""
        server, loop = self._server, self._loop
        if server is not None:
            server.should_exit = True
            if loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(self._wake_all)
        if self._thread is not None:
            self._thread.join(STOP_TIMEOUT)
        self._socket.close()
        self.store.close()

    def _wake_all(self) -> None:
        if self._stopped is not None:
            self._stopped.set()
        if self._server is not None and self._server.exit_event is not None:
            self._server.exit_event.set()

    async def _sleep(self, delay: float) -> None:
        """Sleep ``delay`` seconds, or less if the collector stops."""
        if self._stopped is None:
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stopped.wait(), delay)

    def __enter__(self) -> Collector:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- scripting -----------------------------------------------------------------------------

    def respond_with(
        self, status: int = 200, *, delay: float = 0.0, retry_after: str | None = None
    ) -> None:
        """Answer every later request like this (after any scripted answers)."""
        with self._lock:
            self._default = Response(status, delay, retry_after)

    def script(self, *responses: Response | int) -> None:
        """Answer the next requests with these, in order, then go back to the default."""
        with self._lock:
            for response in responses:
                self._script.append(
                    response if isinstance(response, Response) else Response(response)
                )

    def scripted(self) -> int:
        """Scripted answers not yet given: 0 once a request has taken the last one."""
        with self._lock:
            return len(self._script)

    def reset(self) -> None:
        """Forget everything received and every scripted answer."""
        with self._lock:
            self._script.clear()
            self._default = Response()
        self.clear_events()

    def clear_events(self) -> None:
        """Forget everything received (what ``/micro/reset`` does)."""
        with self._lock:
            self.events.clear()
            self.requests.clear()
            self.violations.clear()
            self.failures.clear()
            self.received = 0
            self.store.reset()

    # -- results -------------------------------------------------------------------------------

    def good(self) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.valid]

    def bad(self) -> list[Event]:
        """Events that failed validation (a failed request is in ``bad_rows()``)."""
        with self._lock:
            return [e for e in self.events if not e.valid]

    def bad_rows(self) -> list[Record]:
        """Everything that became a bad row: bad events and failed requests, oldest first."""
        with self._lock:
            return sorted([*self.bad(), *self.failures], key=lambda r: r.id)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Event]:
        """Wait until at least ``count`` events arrived; return them all."""
        with self._lock:
            self._lock.wait_for(lambda: self.received >= count, timeout)
            return list(self.events)

    # -- handling (called in the server's thread) ----------------------------------------------

    def _next_response(self) -> Response:
        with self._lock:
            return self._script.popleft() if self._script else self._default

    def _ingest(self, payload: CollectorPayload, status: int) -> None:
        headers = dict(payload.headers)
        record = RequestRecord(
            payload.method, payload.path, headers, payload.body, status, query=payload.query
        )
        records: list[Record] = []
        events: list[Event] = []
        if 200 <= status < 300:
            try:
                raws = extract_events(payload, self.resolver)
            except ProtocolViolation as exc:
                record.error = str(exc)
                records.append(PayloadFailure(exc.bad_row_type, [str(exc)], exc.messages, payload))
            else:
                events = check_events(payload.method, raws, self.resolver, payload)
                records.extend(events)
        self.store.add(records)
        with self._lock:
            self.requests.append(record)
            self.events.extend(events)
            self.received += len(events)
            for failure in records:
                if isinstance(failure, PayloadFailure):
                    self.violations.append(failure.errors[0])
                    self.failures.append(failure)
            self._trim()
            self._lock.notify_all()
        if self.log_events:
            for item in records:
                _log(item)

    def _trim(self) -> None:
        for items in (self.events, self.requests, self.violations, self.failures):
            excess = len(items) - self.max_events
            if excess > self.max_events // 10:
                del items[:excess]


def _log(record: Record) -> None:
    if record.valid and isinstance(record, Event):
        logger.info(
            "GOOD id:%s app_id:%s type:%s",
            record.raw.get("eid"),
            record.raw.get("aid"),
            record.event_type,
        )
    else:
        errors = redact_url("; ".join(record.errors)[:2000])  # event data may hold URLs
        logger.warning("BAD %s: %s", record.bad_row_type, errors)


def tune_gc_for_serving() -> None:
    """Tune the garbage collector for a process that is only a collector.

    A collector keeps hundreds of thousands of long-lived event objects, which
    the default thresholds make the collector scan again and again; fewer,
    larger young-generation collections and frozen start-up objects cut that
    cost by a fifth under load. Only ``snowplow-tracker collector`` calls it:
    an embedded collector leaves its host process's settings alone.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say so, and
    # without it Nagle's algorithm and delayed ACKs add 40 ms to every response.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


def run_collector(port: int = 0, schemas: Iterable[str | Path] = (), **options: Any) -> Collector:
    """Start a collector on ``127.0.0.1:port`` (0: a free port) and return it."""
    return Collector("127.0.0.1", port, schemas, **options).start()
