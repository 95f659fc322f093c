"""Faults for the Redis tests: a Redis server of the test's own (to restart), and a TCP proxy
that loses replies (what a restart, a failover or a network blip does to a client)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """``redis-server`` on a free loopback port, in ``directory``, with an append-only file
    written on every command (``appendfsync always``): a restart keeps every acknowledged
    write. Started and stopped by pid, never the shared server."""

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed (scripts/services.sh installs it)")
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OwnRedis:
        command = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1"]
        command += ["--dir", str(self.directory), "--appendonly", "yes"]
        command += ["--appendfsync", "always", "--save", "", "--protected-mode", "no"]
        command += ["--logfile", str(self.directory / "redis.log")]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"own redis-server on port {self.port} did not start")
            time.sleep(0.01)

    def stop(self, hard: bool = False) -> None:
        """SIGTERM (a clean shutdown) or SIGKILL (a crash) to our own server, by its pid."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGKILL if hard else signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)

    def restart(self, hard: bool = False) -> None:
        self.stop(hard)
        self.start()

    def client(self, **options: Any) -> Any:
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=10, **options)


class ReplyDropper:
    """A TCP proxy to a Redis server that loses the reply to the first command of each kind
    (a command name; a script call per script) once ``armed``, and then cuts that connection,
    as a network blip or a restarting server does: the command ran, its client never hears.

    It reads the RESP requests and replies passing through to know which reply answers which
    command (replies come in the order of the commands, pipelines and MULTI/EXEC included).
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.dropped: list[str] = []  # the kinds whose reply was lost, in order
        self.armed = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="reply-dropper", daemon=True).start()

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._sockets += [client, server]
            commands: deque[str] = deque()
            threading.Thread(target=self._requests, args=(client, server, commands)).start()
            threading.Thread(target=self._replies, args=(server, client, commands)).start()

    def _requests(self, client: socket.socket, server: socket.socket, kinds: deque[str]) -> None:
        buffer = b""
        while True:
            data = _recv(client)
            if not data:
                _close(server)
                return
            buffer += data
            while True:
                parsed = _parse(buffer, 0)
                if parsed is None:
                    break
                value, end = parsed
                kinds.append(_kind(value))
                buffer = buffer[end:]
            try:
                server.sendall(data)
            except OSError:
                return

    def _replies(self, server: socket.socket, client: socket.socket, kinds: deque[str]) -> None:
        buffer = b""
        while True:
            data = _recv(server)
            if not data:
                _close(client)
                return
            buffer += data
            while True:
                parsed = _parse(buffer, 0)
                if parsed is None:
                    break
                _, end = parsed
                kind = kinds.popleft() if kinds else "?"
                if self._drop(kind):
                    _close(client)
                    _close(server)
                    return
                try:
                    client.sendall(buffer[:end])
                except OSError:
                    return
                buffer = buffer[end:]

    def _drop(self, kind: str) -> bool:
        with self._lock:
            if not self.armed.is_set() or kind in self.dropped:
                return False
            self.dropped.append(kind)
            return True


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(65536)
    except OSError:
        return b""


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def _kind(command: Any) -> str:
    """``BLMOVE``, ``EVALSHA <sha prefix>`` (each script its own kind), ``CLIENT SETINFO``..."""
    if not isinstance(command, list) or not command:
        return "?"
    name = bytes(command[0]).upper().decode()
    if name in ("EVALSHA", "EVAL", "CLIENT", "SCRIPT") and len(command) > 1:
        return f"{name} {bytes(command[1])[:12].decode(errors='replace')}"
    return name


def _parse(buffer: bytes, pos: int) -> tuple[Any, int] | None:
    """One RESP2/RESP3 value from ``buffer`` at ``pos``: (value, end), or None if incomplete."""
    line_end = buffer.find(b"\r\n", pos)
    if line_end == -1:
        return None
    kind, head = buffer[pos : pos + 1], buffer[pos + 1 : line_end]
    if kind in (b"+", b"-", b":", b"_", b"#", b",", b"("):
        return head, line_end + 2
    if kind in (b"$", b"=", b"!"):
        size = int(head)
        if size < 0:
            return None, line_end + 2
        end = line_end + 2 + size + 2
        if len(buffer) < end:
            return None
        return buffer[line_end + 2 : end - 2], end
    if kind in (b"*", b"~", b">", b"%", b"|"):
        count = max(int(head), 0) * (2 if kind in (b"%", b"|") else 1)
        items: list[Any] = []
        at = line_end + 2
        for _ in range(count):
            parsed = _parse(buffer, at)
            if parsed is None:
                return None
            item, at = parsed
            items.append(item)
        if kind == b"|":  # attributes come before the value they describe
            return _parse(buffer, at)
        return items, at
    # An inline command (``PING\r\n``), as redis-cli or a raw socket sends it.
    return buffer[pos:line_end].split(), line_end + 2


class SilentListener:
    """Accepts connections and never answers (a broker that hangs): holds every socket."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="silent-listener", daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self._held.append(sock)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        for sock in self._held:
            _close(sock)


class SilenceableProxy:
    """A TCP proxy to a server that can go silent. While silent, it accepts connections and
    forwards nothing either way (what it reads is lost), as a hung server or a black-holed
    route does; :meth:`resume` closes the connections that went silent and forwards again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._silent = False
        self._live: list[tuple[socket.socket, socket.socket | None]] = []
        self._frozen: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, name="silenceable-proxy", daemon=True).start()

    def silence(self) -> None:
        with self._lock:
            self._silent = True
            for client, server in self._live:
                self._frozen.append(client)
                if server is not None:
                    self._frozen.append(server)
            self._live = []

    def resume(self) -> None:
        with self._lock:
            self._silent = False
            frozen, self._frozen = self._frozen, []
        for sock in frozen:
            _close(sock)

    def close(self) -> None:
        self._closed = True
        self._listener.close()
        self.resume()
        with self._lock:
            for client, server in self._live:
                _close(client)
                if server is not None:
                    _close(server)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                silent = self._silent
                if silent:
                    self._frozen.append(client)
            if silent:
                threading.Thread(target=self._pump, args=(client, None), daemon=True).start()
                continue
            server = socket.create_connection(("127.0.0.1", self.target_port))
            with self._lock:
                self._live.append((client, server))
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket | None) -> None:
        while True:
            data = _recv(source)
            if not data:
                if sink is not None and not self._is_frozen(source):
                    _close(sink)
                return
            if sink is None or self._is_frozen(source):
                continue  # silent: what was sent is lost
            try:
                sink.sendall(data)
            except OSError:
                return

    def _is_frozen(self, sock: socket.socket) -> bool:
        with self._lock:
            return sock in self._frozen
