"""The built-in client against real servers: nginx as a reverse proxy in front of our
collector (its keep-alive timeout, 413, 502 with the upstream down), and uvicorn with each
of its HTTP parsers (h11, httptools)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snowplow_tracker import Emitter, RetryPolicy, Tracker
from snowplow_tracker.collector import Collector
from snowplow_tracker.collector import protocol as collector_protocol
from snowplow_tracker.collector import server as collector_server

NGINX_KEEPALIVE = 1  # seconds nginx keeps an idle client connection
NGINX_MAX_BODY = 2048


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
    )
    if found is None:
        pytest.skip("nginx is not installed (scripts/services.sh installs the Debian package)")
    return found


class Nginx:
    """nginx in the foreground on a free loopback port, proxying to ``upstream``."""

    def __init__(self, upstream: str, root: Path) -> None:
        self.port = free_port()
        self.endpoint = f"127.0.0.1:{self.port}"
        dead = free_port()  # nothing listens there: the /dead/ location answers 502
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (root / name).mkdir()
        conf = root / "nginx.conf"
        conf.write_text(
            f"""
            daemon off;
            master_process off;
            worker_processes 1;
            pid {root}/nginx.pid;
            error_log {root}/error.log warn;
            events {{ worker_connections 64; }}
            http {{
                access_log off;
                client_body_temp_path {root}/body;
                proxy_temp_path {root}/proxy;
                fastcgi_temp_path {root}/fastcgi;
                uwsgi_temp_path {root}/uwsgi;
                scgi_temp_path {root}/scgi;
                keepalive_timeout {NGINX_KEEPALIVE}s;
                client_max_body_size {NGINX_MAX_BODY};
                server {{
                    listen 127.0.0.1:{self.port};
                    location /dead/ {{ proxy_pass http://127.0.0.1:{dead}/; }}
                    location / {{
                        proxy_pass http://{upstream};
                        proxy_http_version 1.1;
                        proxy_set_header Connection "";
                    }}
                }}
            }}
            """
        )
        self.log = root / "error.log"
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(root), "-e", str(self.log), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_listening()

    def _wait_listening(self) -> None:
        for _ in range(200):
            if self.process.poll() is not None:
                error = self.process.stderr.read().decode() if self.process.stderr else ""
                pytest.skip(f"nginx could not start here: {error.strip()[:300]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        self.stop()
        pytest.fail("nginx did not start listening")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # our own child, by its pid
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


@pytest.fixture
def nginx(collector: Collector, tmp_path: Path) -> Iterator[Nginx]:
    proxy = Nginx(collector.endpoint, tmp_path)
    yield proxy
    proxy.stop()


@pytest.mark.parametrize("method", ["get", "post"])
def test_events_reach_the_collector_through_nginx(
    nginx: Nginx, collector: Collector, method: str
) -> None:
    emitter = Emitter(nginx.endpoint, method=method, buffer_size=5)
    tracker = Tracker(emitter)
    for n in range(10):
        tracker.track_page_view(f"http://example.com/{n}")
    assert emitter.flush()
    assert len(collector.wait_for(10)) == 10
    assert emitter.stats().sent == 10
    emitter.close()


def test_a_connection_nginx_closed_after_its_keepalive_timeout_is_replaced(
    nginx: Nginx, collector: Collector
) -> None:
    emitter = Emitter(nginx.endpoint, method="post", buffer_size=1)
    tracker = Tracker(emitter)
    tracker.track_page_view("http://example.com/1")
    time.sleep(NGINX_KEEPALIVE + 0.3)  # nginx closes the idle kept-alive connection
    tracker.track_page_view("http://example.com/2")
    stats = emitter.stats()
    assert (stats.sent, stats.failed) == (2, 0)
    assert len(collector.wait_for(2)) == 2
    emitter.close()


def test_nginx_413_drops_the_batch_as_too_large_and_the_next_one_goes(
    nginx: Nginx, collector: Collector
) -> None:
    emitter = Emitter(nginx.endpoint, method="post", buffer_size=1000, byte_limit=100_000)
    tracker = Tracker(emitter)
    for n in range(20):
        tracker.track_page_view(f"http://example.com/{'x' * 200}/{n}")
    emitter.flush()
    assert emitter.stats().dropped["too_large"] == 20
    tracker.track_page_view("http://example.com/small")
    assert emitter.flush()
    assert emitter.stats().sent == 1
    assert len(collector.wait_for(1)) == 1
    emitter.close()


def test_nginx_502_with_the_upstream_down_is_retried_then_counted(nginx: Nginx) -> None:
    retry = RetryPolicy(max_attempts=3, backoff_base=0.01, jitter=False)
    emitter = Emitter(f"{nginx.endpoint}/dead", method="post", retry=retry)
    Tracker(emitter).track_page_view("http://example.com")
    assert emitter.flush()
    stats = emitter.stats()
    assert (stats.retried, stats.dropped["retries_exhausted"]) == (2, 1)
    emitter.close()


@pytest.mark.parametrize("parser", ["h11", "httptools"])
@pytest.mark.parametrize("method", ["get", "post"])
def test_uvicorn_with_each_parser(
    parser: str, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip(parser)
    monkeypatch.setattr(
        collector_server,
        "protocol_class",
        lambda timeout: collector_protocol.protocol_class(timeout, parser),
    )
    with Collector() as collector:
        emitter = Emitter(collector.endpoint, method=method, buffer_size=3)
        tracker = Tracker(emitter)
        for n in range(30):
            tracker.track_struct_event("interop", parser, value=n)
        assert emitter.flush()
        assert len(collector.wait_for(30)) == 30
        assert emitter.stats().sent == 30
        pool = next(iter(emitter._transport.plain._pools.values()))  # type: ignore[attr-defined]
        assert len(pool._idle) == 1  # one kept-alive connection served every request
        collector.respond_with(503, retry_after="1")
        tracker.track_struct_event("interop", parser, value=-1)
        emitter.flush()
        assert emitter.stats().dropped["retries_exhausted"] == 1
        emitter.close()
