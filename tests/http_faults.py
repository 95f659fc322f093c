"""Loopback servers that misbehave the ways collectors and proxies do, for the delivery tests."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Behaviour = Callable[["FaultyServer", socket.socket], None]


class FaultyServer:
    """Accepts connections on 127.0.0.1 and hands each to ``behave`` in a thread of its own.

    ``close()`` stops every behaviour (they poll ``stopped``) and closes every socket.
    """

    def __init__(self, behave: Behaviour) -> None:
        self.behave = behave
        self.stopped = threading.Event()
        self.requests = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._socks.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.behave(self, conn)

    def read_request(self, conn: socket.socket) -> bool:
        """Read one whole request (head and Content-Length body); False once the peer closed."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        with self._lock:
            self.requests += 1
        return True

    def pause(self, seconds: float) -> bool:
        """Wait; False when the server is stopping."""
        return not self.stopped.wait(seconds)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        with self._lock:
            for sock in self._socks:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def __enter__(self) -> FaultyServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def silent(server: FaultyServer, conn: socket.socket) -> None:
    """Accepts the request and never answers."""
    server.read_request(conn)
    server.stopped.wait()


def dribbling(server: FaultyServer, conn: socket.socket) -> None:
    """Answers one byte at a time, 20 a second, for ever (a headers block that never ends)."""
    server.read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while server.pause(0.05):
        conn.sendall(b"X")


def endless_continue(server: FaultyServer, conn: socket.socket) -> None:
    """Answers ``100 Continue``, again and again."""
    server.read_request(conn)
    while server.pause(0.005):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")


def endless_chunks(server: FaultyServer, conn: socket.socket) -> None:
    """Answers 200 with a chunked body that never ends."""
    server.read_request(conn)
    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
    while server.pause(0.005):
        conn.sendall(b"4\r\nGIF8\r\n")


def busy_then_stray_ok(server: FaultyServer, conn: socket.socket) -> None:
    """Answers each request 503, followed at once by a second, unasked-for 200 answer."""
    while server.read_request(conn):
        conn.sendall(
            b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n"
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
        )


class Redirector:
    """An HTTP server that answers every request with ``status`` and ``Location: target()``."""

    def __init__(self, status: int, target: Callable[[str], str]) -> None:
        self.seen: list[tuple[str, str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _redirect(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                outer.seen.append((self.command, self.path, body))
                self.send_response(status)
                self.send_header("Location", target(self.path))
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_POST = _redirect

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.endpoint = f"127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
