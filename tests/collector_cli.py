"""Test helpers: the real ``snowplow-tracker collector`` process, and small loopback servers."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any


@dataclass
class CliCollector:
    process: subprocess.Popen[str]
    url: str
    log: Path

    @property
    def endpoint(self) -> str:
        return self.url.split("://", 1)[1]

    def log_text(self) -> str:
        return self.log.read_text()


@contextmanager
def cli_collector(tmp_path: Path, *args: str) -> Iterator[CliCollector]:
    """``snowplow-tracker collector --port 0 --memory ARGS`` until the block ends (SIGTERM)."""
    log = tmp_path / f"collector-{len(list(tmp_path.glob('collector-*.log')))}.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "snowplow_tracker.cli", "collector", "--port", "0",
             "--memory", *args],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
            env={**os.environ, "XDG_DATA_HOME": str(tmp_path)},
        )  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("Collector listening on "), (line, log.read_text())
        url = line.split()[3]
        yield CliCollector(process, url, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover - only if stopping hangs
            process.kill()
            process.communicate()


@dataclass
class Registry:
    """A tiny Iglu registry on loopback that knows no schema: it records what it was asked."""

    url: str
    paths: list[str] = field(default_factory=list)
    authorizations: list[str | None] = field(default_factory=list)


@contextmanager
def empty_registry() -> Iterator[Registry]:
    registry = Registry("")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            registry.paths.append(self.path)
            registry.authorizations.append(self.headers.get("Authorization"))
            self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        registry.url = f"http://127.0.0.1:{server.server_address[1]}/api/schemas"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield registry
        finally:
            server.shutdown()


@dataclass
class SilentServer:
    """Accepts connections and never answers: a registry that has hung."""

    port: int
    connections: list[socket.socket] = field(default_factory=list)


@contextmanager
def silent_server() -> Iterator[SilentServer]:
    listener = socket.create_server(("127.0.0.1", 0))
    server = SilentServer(listener.getsockname()[1])
    stopping = threading.Event()

    def accept() -> None:
        while not stopping.is_set():
            try:
                connection, _ = listener.accept()
            except OSError:
                return
            server.connections.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stopping.set()
        listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
        listener.close()
        thread.join(5)
        for connection in server.connections:
            connection.close()


@contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on a loopback port of its own: another origin than the collector's."""
    handler = partial(_QuietHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass
