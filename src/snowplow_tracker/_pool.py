"""A small keep-alive HTTP/1.1 client for one collector origin, on the standard library.

``requests`` spends hundreds of microseconds per call merging settings,
preparing the request, walking adapters and parsing headers with
:mod:`email`. Sending to a collector needs none of that: the request is the
same each time but for its target and body, and of the answer only the
status, ``Retry-After`` and whether the connection stays open matter. This
module writes each request in one ``sendall`` and reads the response with a
minimal parser (``Content-Length``, chunked, or until close), over
connections kept in a small LIFO pool.

It is used only when ``requests`` would have done nothing more: see
``RequestsTransport`` in ``_http.py`` for when it applies.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import time
from collections.abc import Mapping
from io import BufferedReader
from typing import Optional, Union

Timeout = Optional[Union[float, tuple[float, float]]]

#: Idle connections kept per origin (``requests`` keeps 10 per host too).
MAX_IDLE = 10
#: A connection idle for less than this is reused without checking that it is still open.
#: Collectors and load balancers close idle connections after several seconds (Snowplow's
#: collector and AWS load balancers: 60 s by default).
RECENT_SECONDS = 1.0
_MAX_LINE = 65_536
_MAX_HEADERS = 100
_CHUNK = 65_536
#: How a kept-alive connection fails when the server closed it just as we reused it: the
#: request is sent again, once, on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class Response:
    """What the emitter needs from an answer."""

    __slots__ = ("keep_alive", "retry_after", "status")

    def __init__(self, status: int, retry_after: str | None, keep_alive: bool) -> None:
        self.status = status
        self.retry_after = retry_after
        self.keep_alive = keep_alive


class Connection:
    """One socket to the origin and a reader over it."""

    __slots__ = ("idle_since", "reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BufferedReader = sock.makefile("rb")
        self.idle_since = 0.0  # time.monotonic() when it went back to the pool

    def exchange(self, request: bytes) -> Response:
        self.sock.sendall(request)
        return read_response(self.reader)

    def is_dropped(self) -> bool:
        """An idle connection with something to read has been closed (or spoken out of turn)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        try:
            self.reader.close()
        finally:
            self.sock.close()


class Pool:
    """Keep-alive connections to ``host:port`` (TLS when ``tls`` is a context)."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None, timeout: Timeout) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.connect_timeout: Optional[float]
        self.read_timeout: Optional[float]
        if isinstance(timeout, tuple):
            self.connect_timeout, self.read_timeout = timeout
        else:
            self.connect_timeout = self.read_timeout = timeout
        self._idle: list[Connection] = []
        self._pid = os.getpid()

    def request(self, request: bytes) -> Response:
        """Send one request and read its answer; raises what the network or the peer raised.

        A connection taken from the pool may have been closed by the server (its idle
        timeout) after we last checked it: if it fails as such a connection does, the
        request goes again on a new connection, once. The server may then see it twice
        (if it closed only after reading it); the event ids tell the copies apart.
        """
        conn, reused = self._checkout()
        try:
            response = _exchange(conn, request)
        except _STALE:
            if not reused:
                raise
            conn = self._connect()
            response = _exchange(conn, request)
        if response.keep_alive and len(self._idle) < MAX_IDLE:
            conn.idle_since = time.monotonic()
            self._idle.append(conn)  # list.append and list.pop are atomic: no lock needed
        else:
            conn.close()
        return response

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()

    def __del__(self) -> None:
        # An emitter dropped without close() must not leave sockets for the GC to warn about.
        try:  # noqa: SIM105 - no contextlib here: modules may be torn down at exit
            self.close()
        except Exception:
            pass

    def _checkout(self) -> tuple[Connection, bool]:
        """A connection, and whether it was used before (taken from the idle pool)."""
        if self._pid != os.getpid():
            # A forked child must not talk over its parent's connections. Closing its copies
            # of the descriptors is safe: the parent's stay open (and no TLS alert is sent).
            self._pid = os.getpid()
            self.close()
        while True:
            try:
                conn = self._idle.pop()
            except IndexError:
                return self._connect(), False
            # Checking costs a system call, and a sending thread that gives up the GIL for
            # it may wait for a busy producer thread to give it back: a connection used a
            # moment ago is taken as it is (if the server closed it even so, the request
            # goes again on a new one).
            if time.monotonic() - conn.idle_since < RECENT_SECONDS or not conn.is_dropped():
                return conn, True
            conn.close()

    def _connect(self) -> Connection:
        sock = socket.create_connection((self.host, self.port), self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        return Connection(sock)


def _exchange(conn: Connection, request: bytes) -> Response:
    """``conn.exchange(request)``, closing the connection if it fails in any way."""
    try:
        return conn.exchange(request)
    except BaseException:
        conn.close()
        raise


def header_block(host: str, headers: Mapping[str, str]) -> str:
    """``Host`` and ``headers`` as header lines, each ending in CRLF (no blank line)."""
    lines = [f"Host: {host}"] + [f"{name}: {value}" for name, value in headers.items()]
    for line in lines:
        if "\r" in line or "\n" in line:
            raise ValueError(f"a header cannot contain a line break: {line!r}")
    return "".join(line + "\r\n" for line in lines)


def read_response(reader: BufferedReader) -> Response:
    """Read one whole response, skipping 1xx answers; the body is read and discarded."""
    while True:
        version, status = _status_line(reader)
        headers = _headers(reader)
        if status >= 200:
            break
    connection = headers.get("connection", "").lower()
    keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
    if status in (204, 304):
        pass
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        _read_chunked(reader)
    elif "content-length" in headers:
        _discard(reader, _content_length(headers["content-length"]))
    else:
        # No length: the body runs until the server closes the connection.
        while reader.read(_CHUNK):
            pass
        keep_alive = False
    return Response(status, headers.get("retry-after"), keep_alive)


def _status_line(reader: BufferedReader) -> tuple[str, int]:
    line = reader.readline(_MAX_LINE + 1)
    if not line:
        raise http.client.RemoteDisconnected(
            "the collector closed the connection without answering"
        )
    parts = line.decode("iso-8859-1").split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise http.client.BadStatusLine(repr(line))
    return parts[0], int(parts[1])


def _headers(reader: BufferedReader) -> dict[str, str]:
    headers: dict[str, str] = {}
    for _ in range(_MAX_HEADERS + 1):
        line = reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise http.client.LineTooLong("header line")
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("iso-8859-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    raise http.client.HTTPException(f"more than {_MAX_HEADERS} headers")


def _content_length(value: str) -> int:
    # Repeated, identical values ("12, 12") are allowed by RFC 9110.
    lengths = {part.strip() for part in value.split(",")}
    if len(lengths) != 1 or not (length := lengths.pop()).isdigit():
        raise http.client.HTTPException(f"bad Content-Length {value!r}")
    return int(length)


def _discard(reader: BufferedReader, length: int) -> None:
    while length > 0:
        data = reader.read(min(length, _CHUNK))
        if not data:
            raise http.client.IncompleteRead(b"", length)
        length -= len(data)


def _read_chunked(reader: BufferedReader) -> None:
    while True:
        line = reader.readline(_MAX_LINE + 1)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise http.client.HTTPException(f"bad chunk size {line!r}") from None
        if size == 0:
            break
        _discard(reader, size + 2)  # the chunk and its CRLF
    _headers(reader)  # trailers, up to the blank line
