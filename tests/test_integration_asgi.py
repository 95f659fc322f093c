"""The ASGI middleware: FastAPI's test client (lifespan included) and a real uvicorn."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker import AsyncEmitter, Emitter, Subject, Tracker
from snowplow_tracker.collector import Collector

from .web_support import (
    EXAMPLES,
    HOLD,
    Server,
    check_own_fields,
    example_env,
    free_socket,
    hammer,
    headers,
)

pytest.importorskip("fastapi", reason="fastapi is not installed")
pytest.importorskip("httpx", reason="httpx is not installed (FastAPI's test client)")
sys.path.insert(0, str(EXAMPLES))

from fastapi.testclient import TestClient
from fastapi_app import create_app

PEER = ("127.0.0.1", 50000)  # the connection a trusted proxy makes


def held_emitter(collector: Collector) -> AsyncEmitter:
    """An emitter that sends nothing until flushed."""
    return AsyncEmitter(
        collector.endpoint, method="post", buffer_size=10**5, byte_limit=10**9, flush_interval=None
    )


def test_the_test_client_fills_the_subject_in_async_and_sync_endpoints(
    snowplow_collector: Collector,
) -> None:
    tracker = Tracker(Emitter(snowplow_collector.endpoint, method="post", buffer_size=1))
    with TestClient(create_app(tracker), client=PEER) as client:
        for user_number, path in ((1, "/buy"), (2, "/buy-sync")):
            client.cookies.clear()
            response = client.get(f"{path}/{user_number}-0", headers=headers(user_number))
            assert response.status_code == 200
    check_own_fields(snowplow_collector.wait_for(2), ["1-0", "2-0"])


def test_lifespan_shutdown_flushes_what_was_queued(snowplow_collector: Collector) -> None:
    tracker = Tracker(held_emitter(snowplow_collector), Subject())
    with TestClient(create_app(tracker, flush_timeout=10), client=PEER) as client:
        for n in range(20):
            assert client.get(f"/buy/5-{n}", headers=headers(5)).status_code == 200
        client.cookies.clear()
        assert snowplow_collector.events == []
    # The lifespan's shutdown is over: the events are at the collector, not at exit.
    assert len(snowplow_collector.events) == 20
    check_own_fields(snowplow_collector.events, [f"5-{n}" for n in range(20)])


def test_lifespan_shutdown_awaits_an_asyncio_emitter(snowplow_collector: Collector) -> None:
    from snowplow_tracker import AsyncioEmitter

    emitter = AsyncioEmitter(
        snowplow_collector.endpoint, buffer_size=10**5, byte_limit=10**9, flush_interval=None
    )
    with TestClient(create_app(Tracker(emitter)), client=PEER) as client:
        assert client.get("/buy/6-0", headers=headers(6)).status_code == 200
        assert snowplow_collector.events == []
    check_own_fields(snowplow_collector.events, ["6-0"])


def test_page_views_carry_url_and_referrer(snowplow_collector: Collector) -> None:
    tracker = Tracker(Emitter(snowplow_collector.endpoint, method="post", buffer_size=1))
    app = create_app(tracker, page_views=True, exclude=[r"/buy-sync"])
    with TestClient(app, client=PEER) as client:
        client.get("/?q=1", headers={"Referer": "http://ref.example/", **headers(7)})
        client.get("/buy-sync/7-0", headers=headers(7))
    page_views = [e.raw for e in snowplow_collector.wait_for(2) if e.raw["e"] == "pv"]
    assert [(p["url"], p["refr"], p["uid"]) for p in page_views] == [
        ("http://testserver/?q=1", "http://ref.example/", "user-7")
    ]


def test_a_broken_subject_reader_leaves_the_request_alone(
    snowplow_collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(scope: Any) -> str:
        raise RuntimeError("no user today")

    tracker = Tracker(Emitter(snowplow_collector.endpoint, method="post", buffer_size=1))
    with TestClient(create_app(tracker, user_id=broken), client=PEER) as client:
        assert client.get("/buy/1-0").status_code == 200
    assert "uid" not in snowplow_collector.wait_for(1)[0].raw
    assert "no user today" in caplog.text


def test_uvicorn_16_users_2000_requests_then_lifespan_flush(
    collector: Collector, tmp_path: Path
) -> None:
    """The example app on a real uvicorn: async and sync endpoints, every event held until
    SIGTERM runs the lifespan shutdown, then all 2,000 arrive with their own fields."""
    sock = free_socket()
    command = [sys.executable, "-m", "uvicorn", "fastapi_app:app", "--fd", str(sock.fileno())]
    env = example_env(SNOWPLOW_COLLECTOR=collector.endpoint, **HOLD)
    command += ["--no-proxy-headers"]  # X-Forwarded-For read by the middleware alone
    server = Server([*command, "--log-level", "info"], tmp_path / "uvicorn.log", env, sock)
    try:
        server.wait_for("Application startup complete")
        labels = hammer(sock.getsockname()[1], paths=("/buy", "/buy-sync"))
        assert collector.events == []
    finally:
        code = server.stop(signal.SIGTERM)
    # uvicorn ends by re-raising SIGTERM, so no atexit hook runs: the lifespan flushed them.
    assert code in (0, -signal.SIGTERM), server.log.read_text()
    assert "Application shutdown complete" in server.log.read_text()
    check_own_fields(collector.wait_for(len(labels)), labels)


def test_the_default_user_id_reads_starlettes_user() -> None:
    from starlette.authentication import BaseUser, SimpleUser, UnauthenticatedUser

    from snowplow_tracker.integrations.asgi import default_user_id

    class NamedOnly(BaseUser):  # identity is not implemented: the display name is used
        is_authenticated = True
        display_name = "Ann"

    assert default_user_id({"user": SimpleUser("bob")}) in ("bob",)
    assert default_user_id({"user": NamedOnly()}) == "Ann"
    assert default_user_id({"user": UnauthenticatedUser()}) is None
    assert default_user_id({}) is None


def raw_asgi(middleware_options: dict[str, Any], scope: dict[str, Any]) -> list[Any]:
    """Run ``scope`` through the middleware around an app that records what it saw."""
    from snowplow_tracker.integrations.asgi import SnowplowMiddleware
    from snowplow_tracker.scope import current_fields

    seen: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append((scope["type"], current_fields()))
        if scope["type"] == "lifespan":
            await send({"type": "lifespan.shutdown.complete"})

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.shutdown"}

    async def send(message: Any) -> None:
        seen.append(message["type"])

    middleware = SnowplowMiddleware(app, **middleware_options)
    asyncio.run(middleware(scope, receive, send))
    return seen


def test_repeated_cookie_headers_and_other_connection_types(sink: Any) -> None:
    headers_ = [(b"cookie", b"a=1"), (b"cookie", b"sp=nuid-2"), (b"x-forwarded-for", b"x")]
    http = {"type": "websocket", "headers": headers_, "client": ("127.0.0.1", 1), "path": "/"}
    assert raw_asgi({"tracker": Tracker(sink)}, http) == [
        ("websocket", {"ip": "127.0.0.1", "tnuid": "nuid-2"})
    ]
    assert raw_asgi({"tracker": Tracker(sink)}, {"type": "custom"}) == [("custom", {})]


def test_a_failing_flush_at_shutdown_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    class Failing:
        def input(self, payload: Any) -> None:
            pass

        def flush(self) -> None:
            raise OSError("disk gone")

    seen = raw_asgi({"tracker": Tracker(Failing())}, {"type": "lifespan"})
    assert seen == [("lifespan", {}), "lifespan.shutdown.complete"]
    assert "flushing" in caplog.text and "disk gone" in caplog.text
