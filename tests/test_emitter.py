"""Emitter behaviour against a real collector: callbacks, failures, batching, byte limits,
timeouts, connection reuse and cookies."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from snowplow_tracker import AsyncEmitter, Emitter, Tracker
from snowplow_tracker.collector import Collector, Response
from snowplow_tracker.emitters import post_body, split_batch, stringify

METHODS = ["get", "post"]


class Calls:
    """Records callback invocations."""

    def __init__(self) -> None:
        self.success: list[int] = []
        self.failure: list[tuple[int, list[dict[str, Any]]]] = []

    def on_success(self, count: int) -> None:
        self.success.append(count)

    def on_failure(self, count: int, unsent: list[dict[str, Any]]) -> None:
        self.failure.append((count, unsent))


def emitter_for(endpoint: str, method: str, calls: Calls, **kwargs: Any) -> Emitter:
    return Emitter(
        endpoint,
        method=method,
        buffer_size=3,
        on_success=calls.on_success,
        on_failure=calls.on_failure,
        **kwargs,
    )


def track_three(emitter: Emitter) -> Tracker:
    t = Tracker(emitter)
    for index in range(3):
        t.track_struct_event("cat", f"act{index}", value=index)
    return t


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- callbacks -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_success_calls_on_success_once_with_the_count(collector: Collector, method: str) -> None:
    calls = Calls()
    track_three(emitter_for(collector.endpoint, method, calls))
    assert calls.success == [3]
    assert calls.failure == []
    assert len(collector.events) == 3


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("status", [400, 404, 500, 503])
def test_http_errors_call_on_failure_with_unsent_events(
    collector: Collector, method: str, status: int
) -> None:
    collector.respond_with(status)
    calls = Calls()
    track_three(emitter_for(collector.endpoint, method, calls))
    assert calls.success == []
    (count, unsent), *rest = calls.failure
    assert rest == []
    assert count == 0
    assert [e["se_ac"] for e in unsent] == ["act0", "act1", "act2"]
    assert all(isinstance(v, str) for e in unsent for v in e.values())
    assert unsent[0]["se_va"] == "0"


def test_partial_get_failure_reports_what_was_sent(collector: Collector) -> None:
    collector.script(200, 500, 200)
    calls = Calls()
    track_three(emitter_for(collector.endpoint, "get", calls))
    assert calls.success == []
    ((count, unsent),) = calls.failure
    assert count == 2
    assert [e["se_ac"] for e in unsent] == ["act1"]


@pytest.mark.parametrize("method", METHODS)
def test_unsent_events_have_the_same_form_for_get_and_post(
    collector: Collector, method: str
) -> None:
    collector.respond_with(500)
    calls = Calls()
    emitter = emitter_for(collector.endpoint, method, calls)
    Tracker(emitter).track_page_view("http://x")
    emitter.flush()
    ((_, unsent),) = calls.failure
    assert set(unsent[0]) == {"e", "url", "eid", "dtm", "tv", "p"}
    assert "stm" not in unsent[0]


@pytest.mark.parametrize("method", METHODS)
def test_connection_refused_never_raises(method: str) -> None:
    calls = Calls()
    emitter = emitter_for(f"127.0.0.1:{free_port()}", method, calls)
    t = track_three(emitter)  # would raise here if the error escaped
    t.flush()
    ((count, unsent),) = calls.failure
    assert count == 0 and len(unsent) == 3
    assert calls.success == []


@pytest.mark.parametrize("method", METHODS)
def test_timeout_never_raises_and_reports_failure(collector: Collector, method: str) -> None:
    collector.respond_with(200, delay=2.0)
    calls = Calls()
    emitter = emitter_for(collector.endpoint, method, calls, request_timeout=0.2)
    track_three(emitter)
    ((count, unsent),) = calls.failure
    assert count == 0 and len(unsent) == 3
    # GET stops after the first timeout rather than waiting once per event.
    assert len(collector.requests) <= 1 or method == "post"


def test_default_request_timeout_is_finite() -> None:
    emitter = Emitter("localhost")
    assert isinstance(emitter.request_timeout, float) and 0 < emitter.request_timeout <= 30


def test_on_failure_is_not_called_for_a_success_without_on_success(collector: Collector) -> None:
    failures: list[Any] = []
    emitter = Emitter(collector.endpoint, method="post", on_failure=lambda *a: failures.append(a))
    Tracker(emitter).track_page_view("http://x").flush()
    assert failures == []
    assert len(collector.events) == 1


@pytest.mark.parametrize("method", METHODS)
def test_a_raising_callback_is_logged_not_propagated(
    collector: Collector, method: str, caplog_tracker: pytest.LogCaptureFixture
) -> None:
    def boom(*_: Any) -> None:
        raise RuntimeError("callback bug")

    emitter = Emitter(collector.endpoint, method=method, on_success=boom, on_failure=boom)
    Tracker(emitter).track_page_view("http://x").flush()
    collector.respond_with(500)
    Tracker(emitter).track_page_view("http://y").flush()
    raised = [
        r for r in caplog_tracker.records if r.exc_info and "callback bug" in str(r.exc_info[1])
    ]
    assert len(raised) == 2


def test_failures_are_logged_as_warnings(
    collector: Collector, caplog_tracker: pytest.LogCaptureFixture
) -> None:
    collector.respond_with(503)
    Tracker(Emitter(collector.endpoint)).track_page_view("http://x")
    warnings = [r for r in caplog_tracker.records if r.levelno == logging.WARNING]
    assert any("status 503" in r.getMessage() for r in warnings)


# -- buffering and batching ------------------------------------------------------------------


def test_buffer_size_defaults() -> None:
    """GET sends each event; POST batches 10, as 0.4.0, 0.5.0 and 1.x do."""
    assert Emitter("localhost").buffer_size == 1
    assert Emitter("localhost", method="post").buffer_size == 10
    assert AsyncEmitter("localhost", method="post").buffer_size == 10
    assert Emitter("localhost", method="post", buffer_size=3).buffer_size == 3


@pytest.mark.parametrize(("buffer_size", "expected"), [(None, 10), (100, 100)])
def test_post_buffers_until_full(
    collector: Collector, buffer_size: int | None, expected: int
) -> None:
    emitter = Emitter(collector.endpoint, method="post", buffer_size=buffer_size)
    t = Tracker(emitter)
    for index in range(expected - 1):
        t.track_page_view(f"http://x/{index}")
    assert collector.requests == []
    assert len(emitter.buffer) == expected - 1
    t.track_page_view("http://x/last")
    assert len(collector.requests) == 1 and len(collector.events) == expected
    assert emitter.buffer == []


def test_a_full_post_batch_still_respects_byte_limit(collector: Collector) -> None:
    emitter = Emitter(collector.endpoint, method="post", buffer_size=100, byte_limit=8_000)
    t = Tracker(emitter)
    for index in range(100):
        t.track_page_view(f"http://x/{index}", "a title " * 10)
    assert 0 < len(collector.events) < 100  # a full body went out before 100 events
    emitter.flush()
    assert len(collector.events) == 100
    assert len(collector.requests) > 1
    assert all(len(request.body) <= 8_000 for request in collector.requests)


@pytest.mark.parametrize("method", METHODS)
def test_flushing_an_empty_buffer_sends_nothing_and_calls_nothing(
    collector: Collector, method: str
) -> None:
    calls = Calls()
    emitter = emitter_for(collector.endpoint, method, calls)
    emitter.flush()
    emitter.sync_flush()
    Tracker(emitter).flush()
    assert collector.requests == []
    assert calls.success == [] and calls.failure == []


def test_post_bodies_never_exceed_the_byte_limit(collector: Collector) -> None:
    limit = 3000
    emitter = Emitter(collector.endpoint, method="post", buffer_size=1000, byte_limit=limit)
    t = Tracker(emitter)
    for index in range(60):
        t.track_struct_event("category", "action", "ü" * (index % 7 * 20))
    t.flush()
    assert len(collector.requests) > 1
    assert all(len(r.body) <= limit for r in collector.requests)
    assert len(collector.events) == 60 and not collector.bad()
    assert [e.get("se_la", "") for e in collector.events] == ["ü" * (i % 7 * 20) for i in range(60)]


def test_an_event_too_big_on_its_own_is_sent_alone(collector: Collector) -> None:
    emitter = Emitter(collector.endpoint, method="post", buffer_size=3, byte_limit=1000)
    t = Tracker(emitter)
    t.track_page_view("http://small/1")
    t.track_page_view("http://big/" + "x" * 2000)
    t.track_page_view("http://small/2")
    t.flush()
    bodies = [json.loads(r.body)["data"] for r in collector.requests]
    assert [len(b) for b in bodies] == [1, 1, 1]
    assert len(collector.requests[1].body) > 1000


def test_buffered_bytes_trigger_a_flush(collector: Collector) -> None:
    emitter = Emitter(collector.endpoint, method="post", buffer_size=1000, byte_limit=2000)
    t = Tracker(emitter)
    for _ in range(20):
        t.track_page_view("http://x/" + "y" * 200)
    assert collector.requests, "the byte limit should have triggered a send before 1000 events"


def test_split_batch_and_post_body_agree_on_size() -> None:
    events = [stringify({"e": "pv", "url": "é" * n, "tv": "py", "p": "pc"}) for n in range(50)]
    for limit in (300, 1000, 5000):
        chunks = split_batch(events, limit)
        assert [e for c in chunks for e in c] == events
        for chunk in chunks:
            assert len(chunk) == 1 or len(post_body(chunk, "1700000000000")) <= limit
    assert split_batch(events, None) == [events]


def test_stringify_converts_every_value() -> None:
    assert stringify({"a": 1, "b": 1.5, "c": True, "d": "x", "e": None}) == {
        "a": "1",
        "b": "1.5",
        "c": "True",
        "d": "x",
    }


# -- the URL ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "url"),
    [
        (("d3rkrsqld9gmqf.cloudfront.net",), "http://d3rkrsqld9gmqf.cloudfront.net/i"),
        (("c.example.com", "https", 8443, "get"), "https://c.example.com:8443/i"),
        (
            ("c.example.com", "http", None, "post"),
            "http://c.example.com/com.snowplowanalytics.snowplow/tp2",
        ),
        (("https://c.example.com/",), "https://c.example.com/i"),
        (("127.0.0.1:9090",), "http://127.0.0.1:9090/i"),
    ],
)
def test_as_collector_uri(args: tuple[Any, ...], url: str) -> None:
    assert Emitter.as_collector_uri(*args) == url


def test_endpoint_attribute_is_the_full_url() -> None:
    assert Emitter("c.example.com", method="post").endpoint == (
        "http://c.example.com/com.snowplowanalytics.snowplow/tp2"
    )


# -- connections and cookies -----------------------------------------------------------------


class CookieServer:
    """A server that sets a cookie on every answer and records cookies and client ports."""

    def __init__(self) -> None:
        self.cookies: list[str | None] = []
        self.client_ports: set[int] = set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                owner.cookies.append(self.headers.get("Cookie"))
                owner.client_ports.add(self.client_address[1])
                self.send_response(200)
                self.send_header("Set-Cookie", "sp=11111111-2222-4333-8444-555555555555; Path=/")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def cookie_server() -> Iterator[CookieServer]:
    server = CookieServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.parametrize("method", METHODS)
def test_connections_are_reused_and_cookies_never_sent_back(
    cookie_server: CookieServer, method: str
) -> None:
    t = Tracker(Emitter(cookie_server.endpoint, method=method, buffer_size=1))
    for index in range(10):
        t.track_page_view(f"http://x/{index}")
    assert cookie_server.cookies == [None] * 10
    assert len(cookie_server.client_ports) == 1


def test_a_users_own_session_is_used(cookie_server: CookieServer) -> None:
    session = requests.Session()
    t = Tracker(Emitter(cookie_server.endpoint, session=session))
    t.track_page_view("http://x/1").track_page_view("http://x/2")
    # The user chose a session that keeps cookies: it is honoured.
    assert cookie_server.cookies[0] is None and cookie_server.cookies[1] is not None


# -- test suites written for 0.5.0 patch requests --------------------------------------------


def test_patched_requests_get_and_post_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[str, str, Any]] = []

    class FakeResponse:
        status_code = 200
        headers: dict[str, str] = {}

        def close(self) -> None:
            return None

    def fake_get(url: str, params: Any = None, **kwargs: Any) -> FakeResponse:
        seen.append(("GET", url, params))
        return FakeResponse()

    def fake_post(url: str, data: Any = None, **kwargs: Any) -> FakeResponse:
        seen.append(("POST", url, kwargs["headers"]["Content-Type"]))
        return FakeResponse()

    monkeypatch.setattr(requests, "get", fake_get)
    monkeypatch.setattr(requests, "post", fake_post)
    Tracker(Emitter("collector.invalid")).track_page_view("http://x")
    Tracker(Emitter("collector.invalid", method="post", buffer_size=1)).track_page_view("http://x")
    assert seen[0][:2] == ("GET", "http://collector.invalid/i")
    assert seen[0][2]["url"] == "http://x"
    assert seen[1] == (
        "POST",
        "http://collector.invalid/com.snowplowanalytics.snowplow/tp2",
        "application/json; charset=utf-8",
    )


def test_patched_session_send_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[str] = []

    def fake_send(self: requests.Session, request: requests.PreparedRequest, **_: Any) -> Any:
        sent.append(str(request.url))
        response = requests.Response()
        response.status_code = 200
        return response

    monkeypatch.setattr(requests.Session, "send", fake_send)
    Tracker(Emitter("collector.invalid")).track_page_view("http://x")
    assert sent and sent[0].startswith("http://collector.invalid/i?")


# -- AsyncEmitter basics ---------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_async_emitter_sends_in_the_background(collector: Collector, method: str) -> None:
    calls = Calls()
    emitter = AsyncEmitter(
        collector.endpoint,
        method=method,
        on_success=calls.on_success,
        on_failure=calls.on_failure,
        thread_count=2,
    )
    t = Tracker(emitter)
    for index in range(25):
        t.track_page_view(f"http://x/{index}")
    assert emitter.sync_flush(timeout=10)
    assert sorted(e["url"] for e in collector.events) == sorted(f"http://x/{i}" for i in range(25))
    assert sum(calls.success) == 25 and calls.failure == []


def test_async_emitter_flush_does_not_wait(collector: Collector) -> None:
    collector.script(Response(200, delay=0.5))
    emitter = AsyncEmitter(collector.endpoint, method="post")
    Tracker(emitter).track_page_view("http://x").flush(is_async=True)
    assert collector.events == []  # still in flight: flush(is_async=True) returned at once
    assert emitter.sync_flush(timeout=10)
    assert len(collector.events) == 1
