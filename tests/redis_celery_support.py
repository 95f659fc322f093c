"""Helpers shared by the Redis and Celery tests: real servers, unique keys, child processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker import Subject, Tracker

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
RABBIT_URL = "amqp://guest:guest@127.0.0.1:5672//"


def reachable(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), 1).close()
    except OSError:
        return False
    return True


def redis_client() -> Any:
    """A client for the local Redis, or skip the test saying why."""
    redis = pytest.importorskip("redis", reason="the redis extra is not installed")
    if not reachable(REDIS_HOST, REDIS_PORT):
        pytest.skip(
            f"no Redis server on {REDIS_HOST}:{REDIS_PORT} (scripts/services.sh starts one)"
        )
    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=0, socket_timeout=10)


def client_without_scripts() -> Any:
    """A client of the local Redis for a server that refuses Lua scripts (a proxy, an ACL)."""
    import redis

    class NoScripts(redis.Redis):
        def register_script(self, script: Any) -> Any:
            def refuse(keys: Any = None, args: Any = None, client: Any = None) -> Any:
                raise redis.ResponseError("unknown command 'EVALSHA'")

            return refuse

    return NoScripts(host=REDIS_HOST, port=REDIS_PORT)


def unique_key(name: str) -> str:
    return f"test:{name}:{uuid.uuid4().hex}"


def delete_keys(client: Any, key: str) -> None:
    """Delete ``key`` and every key derived from it (processing lists, heartbeats, ...)."""
    names = [key, *client.scan_iter(match=f"*{key}*", count=1000)]
    client.delete(*names)


def derived_keys(client: Any, key: str) -> list[str]:
    return sorted(k.decode() for k in client.scan_iter(match=f"*{key}*", count=1000))


class Recorder:
    """An emitter that keeps what the tracker gave it and passes it on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.payloads: list[dict[str, str]] = []

    def input(self, payload: Mapping[str, Any]) -> None:
        from snowplow_tracker.emitters import stringify

        self.payloads.append(stringify(payload))
        self.inner.input(payload)


def track_many(emitter: Any, count: int, *, app_id: str = "test") -> None:
    """``count`` structured events; ``se_va`` carries the index."""
    tracker = Tracker(emitter, namespace="ns", app_id=app_id)
    for index in range(count):
        tracker.track_struct_event("load", "event", label="x", value=index)


def track_varied(emitter: Any) -> None:
    """A few event types with subject fields, contexts, non-ASCII text and numbers."""
    subject = Subject()
    subject.set_platform("srv")
    subject.set_user_id("user-ü-42")
    subject.set_screen_resolution(1920, 1080)
    tracker = Tracker(emitter, subject, namespace="cf", app_id="CF63A", encode_base64=False)
    geo = {
        "schema": "iglu:com.snowplowanalytics.snowplow/geolocation_context/jsonschema/1-1-0",
        "data": {"latitude": 52.5, "longitude": 13.4},
    }
    tracker.track_page_view("http://www.example.com/ü?q=1&r=2", "Tïtle", "http://ref.example")
    tracker.track_struct_event("shop", "add", "sku-1", "qty", 2.5, context=[geo])
    tracker.track_unstruct_event(
        {
            "schema": "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
            "data": {"targetUrl": "http://example.com/ä", "elementId": "a b+c"},
        },
        context=[geo],
        tstamp=1_400_000_000_000,
    )


def eids(events: Sequence[Any]) -> Counter[str]:
    return Counter(event.raw["eid"] for event in events)


def without_stm(raw: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in raw.items() if k != "stm"}


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.update(extra)
    return env


def worker_command(key: str, endpoint: str, *options: str) -> list[str]:
    """The ``snowplow-tracker redis-worker`` command, run by this interpreter."""
    return [
        sys.executable,
        "-m",
        "snowplow_tracker.cli",
        "redis-worker",
        "--redis-url",
        REDIS_URL,
        "--key",
        key,
        "--endpoint",
        endpoint,
        *options,
    ]


def start(command: Sequence[str], log: Path, env: Mapping[str, str] | None = None) -> Any:
    handle = log.open("wb")
    try:
        return subprocess.Popen(
            list(command), stdout=handle, stderr=subprocess.STDOUT, env=dict(env or child_env())
        )
    finally:
        handle.close()


def end(process: Any, grace: float = 10) -> None:
    """Stop a child this test started, by its pid; SIGKILL if it does not go within ``grace``."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def wait_for_text(log: Path, text: str, timeout: float) -> str:
    wait_until(lambda: text in log.read_text(errors="replace"), timeout, f"{text!r} in {log}")
    return log.read_text(errors="replace")


def stats_line(log: Path) -> dict[str, Any]:
    """The JSON counts a ``redis-worker`` prints when it stops."""
    for line in reversed(log.read_text(errors="replace").splitlines()):
        if line.startswith("{"):
            return dict(json.loads(line))
    raise AssertionError(f"no stats line in {log}:\n{log.read_text(errors='replace')}")


def lines(log: Path) -> Iterator[str]:
    yield from log.read_text(errors="replace").splitlines()
