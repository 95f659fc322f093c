"""A small keep-alive HTTP/1.1 client for one collector origin, on the standard library.

``requests`` spends hundreds of microseconds per call merging settings,
preparing the request, walking adapters and parsing headers with
:mod:`email`. Sending to a collector needs none of that: the request is the
same each time but for its target and body, and of the answer only the
status, ``Retry-After``, ``Location`` and whether the connection stays open
matter. This module writes each request in one ``sendall`` and reads the
response with a minimal parser (``Content-Length``, chunked, or until close)
over connections kept in a small LIFO pool.

Every request has a deadline that covers looking the host up, connecting,
sending and reading the whole response: a resolver that never answers (the
lookup runs on a helper thread, one at a time per host), and a collector that
never answers, answers a byte at a time, sends ``100 Continue`` for ever or a
chunked body that never ends, are given up when the deadline passes. The
parser follows RFC 9112 as h11 reads it (the tests compare the two on
generated responses); bytes after the end of a response close the
connection, so a stray answer is never taken for the answer to the next
request.
"""

from __future__ import annotations

import http.client
import ipaddress
import math
import os
import re
import select
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from typing import Optional

#: Idle connections kept per origin (``requests`` keeps 10 per host too).
MAX_IDLE = 10
#: A connection idle for less than this is reused without checking that it is still open.
#: Collectors and load balancers close idle connections after several seconds (Snowplow's
#: collector and AWS load balancers: 60 s by default).
RECENT_SECONDS = 1.0
_MAX_HEAD = 65_536
_MAX_HEADERS = 100
_RECV = 65_536
#: How a kept-alive connection fails when the server closed it just as we reused it: the
#: request is sent again, once, on a new connection.
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)
_HEAD_END = re.compile(rb"\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: [^\x00\r\n]*)?")
_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
#: One header line, ending in LF: a field (a token, a colon, a value of visible characters,
#: spaces and tabs, as h11 reads RFC 9110) or, without a name, a continuation line (obsolete
#: line folding).
_LINE = re.compile(rb"(?:(" + _TOKEN + rb"):|[ \t])([^\x00\x0b\x0c\r\n]*)\r?\n")
#: Any number of header lines (the trailers of a chunked body are checked with it).
_FIELDS = re.compile(rb"(?:" + _LINE.pattern + rb")*")
#: The header fields whose values we use.
_NEEDED = frozenset(
    (b"content-length", b"transfer-encoding", b"connection", b"retry-after", b"location")
)
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_DIGITS = re.compile(rb"[0-9]{1,20}")


class ResponseError(http.client.HTTPException):
    """The collector's answer is not HTTP/1.1 as RFC 9112 (and h11) read it."""


class Response:
    """What the emitter needs from an answer."""

    __slots__ = ("keep_alive", "location", "retry_after", "status")

    def __init__(
        self,
        status: int,
        retry_after: str | None,
        keep_alive: bool,
        location: str | None = None,
    ) -> None:
        self.status = status
        self.retry_after = retry_after
        self.keep_alive = keep_alive
        self.location = location


class Connection:
    """One socket to the origin, with what has been received and not yet parsed."""

    __slots__ = ("buffer", "idle_since", "sock", "timeout")

    def __init__(self, sock: socket.socket, timeout: Optional[float]) -> None:
        self.sock = sock
        self.timeout = timeout  # the socket's current timeout, to set it only when it must change
        self.buffer = b""
        self.idle_since = 0.0  # time.monotonic() when it went back to the pool

    def exchange(self, request: bytes, deadline: float) -> Response:
        self._bound(deadline)
        self.sock.sendall(request)
        return read_response(self, deadline)

    def _bound(self, deadline: float) -> None:
        """Make the next socket call end by ``deadline``.

        Setting a timeout is a system call: it is made only when the current
        one would outlast the deadline (by more than 5 % and a millisecond: the
        bound of how late a request may end), or is less than half the time left.
        """
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request's deadline passed")
        if remaining == math.inf:  # no deadline at all (request_timeout=None)
            if self.timeout is not None:
                self.sock.settimeout(None)
                self.timeout = None
            return
        current = self.timeout
        if current is None or current > remaining * 1.05 + 0.001 or current < remaining / 2:
            self.sock.settimeout(remaining)
            self.timeout = remaining

    def receive(self, deadline: float) -> bytes:
        """More bytes from the peer (b"" once it has closed), by ``deadline``."""
        self._bound(deadline)
        return self.sock.recv(_RECV)

    def is_dropped(self) -> bool:
        """An idle connection with something to read has been closed (or spoken out of turn)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        self.sock.close()


class Pool:
    """Keep-alive connections to ``host:port`` (TLS when ``tls`` is a context)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        connect_timeout: Optional[float] = None,
    ) -> None:
        self.host = host
        self.port = port
        self.tls = tls
        self.connect_timeout = connect_timeout
        self._idle: list[Connection] = []
        self._pid = os.getpid()

    def request(self, request: bytes, deadline: float) -> Response:
        """Send one request and read its answer by ``deadline`` (a ``time.monotonic()``).

        Raises what the network or the peer raised (``TimeoutError`` at the
        deadline). A connection taken from the pool may have been closed by
        the server (its idle timeout) after we last checked it: if it fails as
        such a connection does, the request goes again on a new connection,
        once. The server may then see it twice (if it closed only after
        reading it); the event ids tell the copies apart.
        """
        conn, reused = self._checkout(deadline)
        try:
            response = _exchange(conn, request, deadline)
        except _STALE:
            if not reused:
                raise
            conn = self._connect(deadline)
            response = _exchange(conn, request, deadline)
        # After an error status the connection is not reused: a server in trouble may still
        # send something for that request, which must not become the next request's answer.
        if response.keep_alive and response.status < 400 and len(self._idle) < MAX_IDLE:
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

    def _checkout(self, deadline: float) -> tuple[Connection, bool]:
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
                return self._connect(deadline), False
            # Checking costs a system call, and a sending thread that gives up the GIL for
            # it may wait for a busy producer thread to give it back: a connection used a
            # moment ago is taken as it is (if the server closed it even so, the request
            # goes again on a new one).
            if time.monotonic() - conn.idle_since < RECENT_SECONDS or not conn.is_dropped():
                return conn, True
            conn.close()

    def _connect(self, deadline: float) -> Connection:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("the request's deadline passed before connecting")
        timeout = (
            remaining if self.connect_timeout is None else min(self.connect_timeout, remaining)
        )
        sock = _open_socket(self.host, self.port, timeout, deadline)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                sock.settimeout(_finite(max(0.001, deadline - time.monotonic())))
                sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        except BaseException:
            sock.close()
            raise
        return Connection(sock, sock.gettimeout())


def _open_socket(host: str, port: int, timeout: float, deadline: float) -> socket.socket:
    """``socket.create_connection``, with the host's lookup inside the request's deadline."""
    addresses = resolve(host, port, deadline)
    error: Optional[OSError] = None
    for family, sockaddr in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(_finite(min(timeout, max(0.001, deadline - time.monotonic()))))
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"no address for {host}")


Address = tuple[int, tuple[object, ...]]
_lookups: dict[tuple[str, int], _Lookup] = {}
_lookups_lock = threading.Lock()
_fork_hook = False  # registered with the first lookup, not at import


def _forget_lookups_after_fork() -> None:
    """A child has none of its parent's lookup threads: their entries would never end."""
    global _lookups_lock
    _lookups_lock = threading.Lock()
    _lookups.clear()


class _Lookup:
    """One ``getaddrinfo`` on a daemon thread; callers wait for it at most their deadline
    (the standard library's lookup has no timeout of its own)."""

    def __init__(self, host: str, port: int) -> None:
        self.done = threading.Event()
        self.result: list[Address] = []
        self.error: Optional[OSError] = None
        threading.Thread(
            target=self._run, args=(host, port), name="snowplow-dns", daemon=True
        ).start()

    def _run(self, host: str, port: int) -> None:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            self.result = [(int(family), tuple(addr)) for family, _, _, _, addr in infos]
        except OSError as exc:
            self.error = exc
        finally:
            with _lookups_lock:
                _lookups.pop((host, port), None)
            self.done.set()


def resolve(host: str, port: int, deadline: float) -> list[Address]:
    """The addresses to connect to for ``host``, looked up within ``deadline``
    (``time.monotonic()``); an IP address needs no lookup. Concurrent lookups of one host
    share one thread, so a resolver that hangs costs one thread per host, not per request."""
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        return [(int(family), (str(ip), port))]
    global _fork_hook
    if not _fork_hook and hasattr(os, "register_at_fork"):
        _fork_hook = True
        os.register_at_fork(after_in_child=_forget_lookups_after_fork)
    with _lookups_lock:
        lookup = _lookups.get((host, port))
        if lookup is None:
            lookup = _lookups[(host, port)] = _Lookup(host, port)
    if not lookup.done.wait(_finite(max(0.0, deadline - time.monotonic()))):
        raise TimeoutError(f"looking up {host} took longer than the request's deadline")
    if lookup.error is not None:
        raise lookup.error
    return lookup.result


def _finite(seconds: float) -> Optional[float]:
    return None if seconds == math.inf else seconds


def _exchange(conn: Connection, request: bytes, deadline: float) -> Response:
    """``conn.exchange(request)``, closing the connection if it fails in any way."""
    try:
        return conn.exchange(request, deadline)
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


# -- reading a response ------------------------------------------------------------------------


class _Head:
    """A parsed status line and the headers that decide framing, and that we report."""

    __slots__ = ("chunked", "close", "length", "location", "retry_after", "status", "version")

    def __init__(self) -> None:
        self.version = b"1.1"
        self.status = 0
        self.length: Optional[bytes] = None
        self.chunked = False
        self.close = False
        self.retry_after: Optional[str] = None
        self.location: Optional[str] = None


def read_response(conn: Connection, deadline: float) -> Response:
    """Read one whole response by ``deadline``, skipping 1xx answers; discard the body.

    The connection stays open only if the server allows it and nothing
    follows the response.
    """
    while True:
        head = _parse_head(_read_head(conn, deadline))
        if head.status >= 200:
            break
        if time.monotonic() >= deadline:  # 1xx lines arriving faster than we read them
            raise TimeoutError("the request's deadline passed (only 1xx answers came)")
    keep_alive = not head.close and head.version >= b"1.1"
    if head.status in (204, 304):
        pass
    elif head.chunked:
        _read_chunked(conn, deadline)
    elif head.length is not None:
        _discard(conn, int(head.length), deadline)
    else:
        # No length: the body runs until the server closes the connection.
        while conn.buffer or conn.receive(deadline):
            conn.buffer = b""
        keep_alive = False
    if conn.buffer:  # bytes nobody asked for: never read them as the next answer
        conn.buffer = b""
        keep_alive = False
    return Response(head.status, head.retry_after, keep_alive, head.location)


def _read_head(conn: Connection, deadline: float) -> bytes:
    """The status line and headers, up to the blank line (which is consumed)."""
    buffer = conn.buffer
    while True:
        if buffer[:2] == b"\r\n" or buffer[:1] == b"\n":
            raise ResponseError("an empty line where a status line was expected")
        match = _HEAD_END.search(buffer)  # the first blank line, CRLF or bare LF as h11 reads
        if match is not None:
            conn.buffer = buffer[match.end() :]
            return buffer[: match.start()]
        if len(buffer) > _MAX_HEAD:
            raise ResponseError("the response head is too long")
        data = conn.receive(deadline)
        if not data:
            if buffer:
                raise http.client.IncompleteRead(buffer)
            raise http.client.RemoteDisconnected(
                "the collector closed the connection without answering"
            )
        buffer += data
        conn.buffer = buffer


def _parse_head(block: bytes) -> _Head:
    end = block.find(b"\n")
    first, fields = (block, b"") if end < 0 else (block[:end], block[end + 1 :] + b"\n")
    status = _STATUS_LINE.fullmatch(first.removesuffix(b"\r"))
    if status is None:
        raise ResponseError(f"bad status line {first[:80]!r}")
    head = _Head()
    head.version, head.status = status[1], int(status[2])
    if not fields:
        return head
    for name, value in _needed_fields(fields):
        _note(head, name, value.strip(b" \t\r"))
    return head


def _needed_fields(fields: bytes) -> list[list[bytes]]:
    """The fields of ``_NEEDED`` (names lowercased), in order, each with its continuation
    lines joined (RFC 9112 5.2). Every line is checked as h11 reads RFC 9110: a token, a
    colon, and a value of visible characters, spaces and tabs; or a continuation line
    after a field line. One match per line, contiguous, and only the needed ones kept."""
    needed: list[list[bytes]] = []
    current: list[bytes] | None = None  # the last field, if it is a needed one
    count = pos = 0
    for line in _LINE.finditer(fields):
        if line.start() != pos or (line[1] is None and not count):
            break
        pos = line.end()
        count += 1
        name = line[1]
        if name is None:
            if current is not None:
                current[1] += b" " + line[2].lstrip(b" \t")
            continue
        name = name.lower()
        current = [name, line[2]] if name in _NEEDED else None
        if current is not None:
            needed.append(current)
    if pos != len(fields):
        raise ResponseError(f"bad header lines in {fields[:200]!r}")
    if count > _MAX_HEADERS:
        raise ResponseError(f"more than {_MAX_HEADERS} headers")
    return needed


def _note(head: _Head, name: bytes, value: bytes) -> None:
    if name == b"content-length":
        length = value
        if b"," in value:  # repeated, identical values ("12, 12") are allowed by RFC 9110
            lengths = {part.strip() for part in value.split(b",")}
            length = lengths.pop() if len(lengths) == 1 else b""
        if not _DIGITS.fullmatch(length) or head.length not in (None, length):
            raise ResponseError(f"bad Content-Length {value[:80]!r}")
        head.length = length
    elif name == b"transfer-encoding":
        if head.chunked or value.lower() != b"chunked":
            raise ResponseError(f"unsupported Transfer-Encoding {value[:80]!r}")
        head.chunked = True
    elif name == b"connection":
        if b"close" in [token.strip().lower() for token in value.split(b",")]:
            head.close = True
    elif name == b"retry-after":
        head.retry_after = value.decode("latin-1")
    elif name == b"location":
        head.location = value.decode("latin-1")


def _discard(conn: Connection, length: int, deadline: float) -> None:
    while True:
        have = len(conn.buffer)
        if have >= length:
            conn.buffer = conn.buffer[length:]
            return
        length -= have
        conn.buffer = b""
        data = conn.receive(deadline)
        if not data:
            raise http.client.IncompleteRead(b"", length)
        conn.buffer = data


def _read_line(conn: Connection, deadline: float) -> bytes:
    """One line, CRLF included (the caller checks its form)."""
    while True:
        end = conn.buffer.find(b"\n")
        if end >= 0:
            line, conn.buffer = conn.buffer[: end + 1], conn.buffer[end + 1 :]
            return line
        if len(conn.buffer) > _MAX_HEAD:
            raise ResponseError("a chunk header line is too long")
        data = conn.receive(deadline)
        if not data:
            raise http.client.IncompleteRead(conn.buffer)
        conn.buffer += data


def _read_chunked(conn: Connection, deadline: float) -> None:
    while True:
        line = _read_line(conn, deadline)
        size = _CHUNK_SIZE.fullmatch(line)
        if size is None:
            raise ResponseError(f"bad chunk header {line[:80]!r}")
        length = int(size[1], 16)
        if length == 0:
            break
        _discard(conn, length, deadline)
        if _take(conn, 2, deadline) != b"\r\n":
            raise ResponseError("a chunk does not end with CRLF")
    # Trailers, up to the blank line.
    for _ in range(_MAX_HEADERS + 1):
        line = _read_line(conn, deadline)
        if line in (b"\r\n", b"\n"):
            return
        if _FIELDS.fullmatch(line) is None or line[:1] in (b" ", b"\t"):
            raise ResponseError(f"bad trailer line {line[:80]!r}")
    raise ResponseError(f"more than {_MAX_HEADERS} trailers")


def _take(conn: Connection, count: int, deadline: float) -> bytes:
    while len(conn.buffer) < count:
        data = conn.receive(deadline)
        if not data:
            raise http.client.IncompleteRead(conn.buffer)
        conn.buffer += data
    taken, conn.buffer = conn.buffer[:count], conn.buffer[count:]
    return taken
