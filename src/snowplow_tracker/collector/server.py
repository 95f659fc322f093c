"""A local Snowplow collector on a loopback port that decodes and validates what it receives.

It answers ``GET /i`` (and ``/ice.png``) and ``POST /com.snowplowanalytics.snowplow/tp2``,
keeps every request and every event, and can be scripted to answer with other
statuses, a ``Retry-After`` header or a delay, so tests can make a collector fail.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .iglu import Resolver
from .validate import Event, ProtocolViolation, check_event, decode_post_body

GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
GET_PATHS = {"/i", "/ice.png", "/com.snowplowanalytics.snowplow/tp2"}
POST_PATHS = {"/com.snowplowanalytics.snowplow/tp2"}
MAX_BODY = 2_097_152


@dataclass(frozen=True)
class Response:
    """What the collector answers to one request."""

    status: int = 200
    delay: float = 0.0
    retry_after: str | None = None


@dataclass
class RequestRecord:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    status: int
    error: str | None = None


class Collector:
    """A collector running in a background thread; use as a context manager or start()/stop()."""

    def __init__(
        self, host: str = "127.0.0.1", port: int = 0, schemas: Iterable[str | Path] = ()
    ) -> None:
        self.resolver = Resolver(schemas)
        self.events: list[Event] = []
        self.requests: list[RequestRecord] = []
        self.violations: list[str] = []
        self._script: deque[Response] = deque()
        self._default = Response()
        self._lock = threading.Condition()
        self._stopping = threading.Event()
        self._server = ThreadingHTTPServer((host, port), _handler_for(self))
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def host(self) -> str:
        return str(self._server.server_address[0])

    @property
    def endpoint(self) -> str:
        """``host:port``, as the Emitter's ``endpoint`` argument takes it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def start(self) -> Collector:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

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

    def reset(self) -> None:
        with self._lock:
            self.events.clear()
            self.requests.clear()
            self.violations.clear()
            self._script.clear()
            self._default = Response()

    # -- results -------------------------------------------------------------------------------

    def good(self) -> list[Event]:
        with self._lock:
            return [e for e in self.events if e.valid]

    def bad(self) -> list[Event]:
        with self._lock:
            return [e for e in self.events if not e.valid]

    def wait_for(self, count: int, timeout: float = 5.0) -> list[Event]:
        """Wait until at least ``count`` events arrived; return them all."""
        with self._lock:
            self._lock.wait_for(lambda: len(self.events) >= count, timeout)
            return list(self.events)

    # -- handling (called from server threads) -------------------------------------------------

    def _next_response(self) -> Response:
        with self._lock:
            return self._script.popleft() if self._script else self._default

    def _record(self, record: RequestRecord, events: list[Event], violation: str | None) -> None:
        with self._lock:
            self.requests.append(record)
            if violation is not None:
                self.violations.append(violation)
            self.events.extend(events)
            self._lock.notify_all()

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        response = self._next_response()
        if response.delay:
            self._stopping.wait(response.delay)
        path, _, query = target.partition("?")
        record = RequestRecord(method, path, headers, body, response.status)
        events: list[Event] = []
        violation = None
        if 200 <= response.status < 300:
            try:
                events = self._decode(method, path, query, headers, body)
            except ProtocolViolation as exc:
                violation = record.error = str(exc)
        self._record(record, events, violation)
        return response

    def _decode(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> list[Event]:
        if method == "POST":
            raws = decode_post_body(body, headers.get("content-type"), self.resolver)
        else:
            if not query:
                raise ProtocolViolation("GET without a query string")
            raws = [dict(parse_qsl(query, keep_blank_values=True))]
        return [check_event(method, raw, self.resolver) for raw in raws]


def _handler_for(collector: Collector) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

        def do_GET(self) -> None:
            path = urlsplit(self.path).path
            if path == "/health":
                self._reply(200, b"OK", "text/plain")
            elif path in GET_PATHS:
                self._track("GET", b"")
            else:
                self._reply(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, b"payload too large", "text/plain", close=True)
                return
            body = self.rfile.read(length)
            if urlsplit(self.path).path in POST_PATHS:
                self._track("POST", body)
            else:
                self._reply(404, b"not found", "text/plain")

        def _track(self, method: str, body: bytes) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            response = collector.handle(method, self.path, headers, body)
            extra = {"Retry-After": response.retry_after} if response.retry_after else {}
            if method == "GET":
                self._reply(response.status, GIF, "image/gif", extra=extra)
            else:
                self._reply(response.status, b"ok", "text/plain", extra=extra)

        def _reply(
            self,
            status: int,
            body: bytes,
            content_type: str,
            *,
            extra: dict[str, str] | None = None,
            close: bool = False,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

    return Handler


def run_collector(port: int = 0, schemas: Iterable[str | Path] = ()) -> Collector:
    """Start a collector on ``127.0.0.1:port`` (0: a free port) and return it."""
    return Collector("127.0.0.1", port, schemas).start()
