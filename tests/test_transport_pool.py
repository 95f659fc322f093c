"""The keep-alive transport: what it sends, what it understands, and when requests takes over."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import requests

from snowplow_tracker import Emitter, Subject, Tracker
from snowplow_tracker._http import (
    BuiltinTransport,
    DefaultTransport,
    RequestsTransport,
    choose_transport,
)
from snowplow_tracker._pool import MAX_IDLE, RECENT_SECONDS, Pool
from snowplow_tracker.transport import Request, SendResult, Transport

GIF_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: 3\r\n\r\nGIF"


class ScriptedServer:
    """A loopback server that answers each request with the next scripted raw response.

    ``b""`` as an answer closes the connection without answering; an answer
    ending in ``CLOSE`` closes the connection after sending it.
    """

    CLOSE = b"<close>"

    def __init__(self, *answers: bytes) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.connections = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/i"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            with conn:
                self._handle(conn)

    def _handle(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        while True:
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                line = reader.readline()
                if not line:
                    reader.close()
                    return
                head += line
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            self.requests.append(head + reader.read(length))
            answer = self.answers.pop(0) if self.answers else GIF_ANSWER
            if not answer:
                reader.close()
                return
            close = answer.endswith(self.CLOSE)
            conn.sendall(answer.removesuffix(self.CLOSE))
            if close:
                reader.close()
                return

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.close()


def scripted(*answers: bytes) -> ScriptedServer:
    return ScriptedServer(*answers)


def get(transport: Transport, url: str, params: Any) -> SendResult:
    return transport.send(Request("GET", url, params), 5.0)


def post(transport: Transport, url: str, body: bytes) -> SendResult:
    return transport.send(Request("POST", url, None, body), 5.0)


def test_get_sends_the_requests_headers_and_reuses_one_connection(server: ScriptedServer) -> None:
    transport = BuiltinTransport(5.0)
    for n in range(3):
        result = get(transport, server.url, {"e": "pv", "url": f"http://a.b/?x={n} y", "n": "é"})
        assert result.ok
        assert result.status == 200
    assert server.connections == 1
    head = server.requests[0].decode("latin-1")
    assert head.startswith("GET /i?e=pv&url=http%3A%2F%2Fa.b%2F%3Fx%3D0+y&n=%C3%A9 HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{server.port}\r\n" in head
    assert f"User-Agent: {requests.utils.default_user_agent()}\r\n" in head
    transport.close()


def test_get_query_matches_what_requests_would_send(server: ScriptedServer) -> None:
    params = {"e": "ue", "ue_px": "eyJhIjoiYiJ9", "tna": "a b&c=d/é", "skip": None}
    prepared = requests.Request("GET", server.url, params=params).prepare()
    get(BuiltinTransport(5.0), server.url, params)  # type: ignore[arg-type]
    request_line = server.requests[0].split(b"\r\n")[0].decode()
    assert request_line == f"GET {prepared.path_url} HTTP/1.1"


def test_post_sends_body_content_type_and_length(server: ScriptedServer) -> None:
    body = json.dumps({"data": [{"e": "pv", "url": "é"}]}, ensure_ascii=False).encode()
    url = f"http://127.0.0.1:{server.port}/com.snowplowanalytics.snowplow/tp2"
    assert post(BuiltinTransport(5.0), url, body).status == 200
    head, _, sent = server.requests[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /com.snowplowanalytics.snowplow/tp2 HTTP/1.1\r\n")
    assert b"\r\nContent-Type: application/json; charset=utf-8" in head
    assert f"\r\nContent-Length: {len(body)}".encode() in head
    assert sent == body


@pytest.mark.parametrize(
    ("answer", "status", "retry_after"),
    [
        (b"HTTP/1.1 503 Busy\r\nRetry-After: 7\r\nContent-Length: 4\r\n\r\nbusy", 503, 7.0),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;x=y\r\nabc\r\n0\r\nT: 1\r\n\r\n",
            200,
            None,
        ),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", 204, None),
        (b"HTTP/1.1 429 Slow\r\nretry-after: 2\r\ncontent-length: 0\r\n\r\n", 429, 2.0),
    ],
)
def test_answers_are_read_whole_and_the_connection_kept(
    answer: bytes, status: int, retry_after: float | None
) -> None:
    srv = scripted(answer)
    transport = BuiltinTransport(5.0)
    result = get(transport, srv.url, {"e": "pv"})
    assert (result.status, result.retry_after) == (status, retry_after)
    # The next request on the same connection parses cleanly: nothing was left unread.
    # (After an error status the connection is not reused: see Pool.request.)
    assert get(transport, srv.url, {"e": "pv"}).status == 200
    assert srv.connections == (1 if status < 400 else 2)
    srv.close()


def test_an_answer_without_length_is_read_to_the_end_and_not_reused() -> None:
    srv = scripted(b"HTTP/1.0 200 OK\r\n\r\nbody until close" + ScriptedServer.CLOSE)
    transport = BuiltinTransport(5.0)
    assert get(transport, srv.url, {"e": "pv"}).status == 200
    assert get(transport, srv.url, {"e": "pv"}).status == 200
    assert srv.connections == 2
    srv.close()


def test_connection_close_is_honoured() -> None:
    close = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
    srv = scripted(close + ScriptedServer.CLOSE, close + ScriptedServer.CLOSE)
    transport = BuiltinTransport(5.0)
    assert [get(transport, srv.url, {"n": str(n)}).status for n in range(3)] == [200, 200, 200]
    assert srv.connections == 3
    srv.close()


@pytest.mark.parametrize("idle", ["long", "recent"])
def test_a_connection_the_server_closed_while_idle_is_replaced(idle: str) -> None:
    """Idle for a while, a connection is checked before it is reused, and the request goes
    once, on a new one. Used a moment ago, it is reused unchecked (the check costs a system
    call on the sending path); closed even so, the request goes again on a new one."""
    srv = scripted(GIF_ANSWER + ScriptedServer.CLOSE)  # answers, then closes the idle connection
    transport = BuiltinTransport(5.0)
    assert get(transport, srv.url, {"n": "1"}).ok
    pool = transport._route(srv.url).pool  # type: ignore[union-attr]
    for _ in range(100):  # wait until the close has reached us
        if pool._idle and pool._idle[0].is_dropped():
            break
        threading.Event().wait(0.01)
    if idle == "long":
        pool._idle[0].idle_since -= RECENT_SECONDS
    result = get(transport, srv.url, {"n": "2"})
    assert result.ok, result.describe()
    assert (srv.connections, len(srv.requests)) == (2, 2)
    srv.close()


def test_a_connection_used_a_moment_ago_is_not_checked(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    transport = BuiltinTransport(5.0)
    assert get(transport, server.url, {"n": "1"}).ok

    def no_check(self: Any) -> bool:
        raise AssertionError("checked a connection used a moment ago")

    monkeypatch.setattr("snowplow_tracker._pool.Connection.is_dropped", no_check)
    assert get(transport, server.url, {"n": "2"}).ok
    assert server.connections == 1


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_kept_connection_the_server_drops_as_it_is_reused_is_retried_once(
    method: str,
) -> None:
    """The server closes a kept-alive connection just as the next request goes out (its idle
    timeout, after our check that the connection is still open): that request is sent again
    on a new connection, once, instead of failing the batch."""
    srv = scripted(GIF_ANSWER, b"")  # the second request on the first connection: no answer
    transport = BuiltinTransport(5.0)
    send = (
        (lambda: get(transport, srv.url, {"n": "1"}))
        if method == "get"
        else (lambda: post(transport, srv.url, b'{"n":"1"}'))
    )
    assert send().ok
    result = send()
    assert result.ok, result.describe()
    assert (srv.connections, len(srv.requests)) == (2, 3)
    assert srv.requests[1] == srv.requests[2]
    srv.close()


def test_the_retry_on_a_new_connection_is_made_once() -> None:
    srv = scripted(GIF_ANSWER, b"", b"")  # the reused connection and the new one: no answer
    transport = BuiltinTransport(5.0)
    assert post(transport, srv.url, b'{"n":"1"}').ok
    result = post(transport, srv.url, b'{"n":"2"}')
    assert result.status is None
    assert isinstance(result.error, OSError)
    assert (srv.connections, len(srv.requests)) == (2, 3)
    assert post(transport, srv.url, b'{"n":"3"}').ok  # and the pool recovers
    srv.close()


def test_a_new_connection_that_fails_is_not_retried() -> None:
    srv = scripted(b"", GIF_ANSWER)
    result = post(BuiltinTransport(5.0), srv.url, b'{"n":"1"}')
    assert result.status is None
    assert isinstance(result.error, OSError)
    assert len(srv.requests) == 1
    srv.close()


@pytest.mark.parametrize(
    "answer",
    [b"", b"garbage\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort" + b"<close>"],
)
def test_a_broken_answer_is_an_error_result_not_an_exception(answer: bytes) -> None:
    srv = scripted(answer)
    transport = BuiltinTransport(5.0)
    result = get(transport, srv.url, {"e": "pv"})
    assert result.status is None
    assert result.error is not None
    assert not result.ok
    # The broken connection was dropped; the next request works on a new one.
    assert get(transport, srv.url, {"e": "pv"}).ok
    srv.close()


def test_unreachable_collector_is_an_error_result() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = post(BuiltinTransport(1.0), f"http://127.0.0.1:{port}/x", b"{}")
    assert result.status is None
    assert isinstance(result.error, OSError)


def test_close_closes_idle_connections() -> None:
    pool = Pool("127.0.0.1", 1, None, 1.0)

    class Fake:
        closed = False

        def close(self) -> None:
            self.closed = True

    fakes = [Fake() for _ in range(MAX_IDLE)]
    pool._idle = list(fakes)  # type: ignore[arg-type]
    pool.close()
    assert pool._idle == []
    assert all(fake.closed for fake in fakes)


def test_a_forked_child_does_not_reuse_the_parents_connections(server: ScriptedServer) -> None:
    transport = BuiltinTransport(5.0)
    assert get(transport, server.url, {"n": "1"}).ok
    pool = transport._route(server.url).pool  # type: ignore[union-attr]
    assert len(pool._idle) == 1
    pool._pid = -1  # what a forked child sees: a different pid from the pool's
    assert get(transport, server.url, {"n": "2"}).ok
    assert server.connections == 2


def test_requests_sends_when_the_caller_gives_a_session(server: ScriptedServer) -> None:
    session = requests.Session()
    session.headers["X-Mine"] = "1"
    transport = choose_transport(server.url, session, 5.0)
    assert isinstance(transport, RequestsTransport)
    assert get(transport, server.url, {"e": "pv"}).ok
    assert b"X-Mine: 1" in server.requests[0]
    session.close()


def test_requests_sends_when_a_proxy_applies(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert BuiltinTransport.for_url("http://collector.invalid/i", 5.0) is None
    transport = choose_transport("http://collector.invalid/i", None, 5.0)
    assert isinstance(transport, DefaultTransport)
    assert isinstance(transport.plain, RequestsTransport)
    # The proxy (our server) receives the absolute URL, as requests sends it to proxies.
    assert get(transport, "http://collector.invalid/i", {"e": "pv"}).ok
    assert server.requests[0].startswith(b"GET http://collector.invalid/i?e=pv HTTP/1.1")


def test_https_gets_a_verifying_tls_context() -> None:
    route = BuiltinTransport(5.0)._route("https://collector.example.com/i")
    assert route is not None
    tls = route.pool.tls
    assert tls is not None
    assert tls.check_hostname
    assert route.pool.port == 443


def test_patched_requests_post_is_still_used(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []

    class Answer:
        status_code = 200
        headers: ClassVar[dict[str, str]] = {}

        def close(self) -> None:
            pass

    def fake_post(url: str, **kwargs: Any) -> Answer:
        calls.append((url, kwargs["data"]))
        return Answer()

    monkeypatch.setattr(requests, "post", fake_post)
    transport = choose_transport("http://127.0.0.1:9/x", None, 5.0)
    assert isinstance(transport, DefaultTransport)
    assert post(transport, "http://127.0.0.1:9/x", b"{}").ok
    assert calls == [("http://127.0.0.1:9/x", b"{}")]


def test_emitter_end_to_end_over_the_pool(server: ScriptedServer) -> None:
    """GET events from a tracker arrive intact over one kept-alive connection."""
    emitter = Emitter(f"127.0.0.1:{server.port}")
    tracker = Tracker(emitter, Subject().set_user_id("u 1"), namespace="ns", app_id="app")
    tracker.track_struct_event("shop", "buy", value=2.5)
    tracker.track_page_view("http://example.com/é")
    assert len(server.requests) == 2
    assert server.connections == 1
    first = server.requests[0].split(b" ")[1].decode()
    assert "se_ca=shop" in first
    assert "se_va=2.5" in first
    assert "uid=u+1" in first


def test_a_sync_emitter_loses_nothing_to_a_connection_dropped_on_reuse() -> None:
    """The sync Emitter makes one attempt per request by default: a kept connection the
    collector closed at the wrong moment no longer fails that request's events."""
    srv = scripted(GIF_ANSWER, GIF_ANSWER, b"")
    failures: list[Any] = []
    emitter = Emitter(
        f"127.0.0.1:{srv.port}",
        method="post",
        buffer_size=1,
        on_failure=lambda sent, unsent: failures.append(unsent),
    )
    tracker = Tracker(emitter)
    for n in range(3):
        tracker.track_struct_event("shop", "buy", value=n)
    assert failures == []
    assert emitter.stats().sent == 3
    assert srv.connections == 2
    emitter.close()
    srv.close()


def test_a_patched_adapter_send_gets_the_traffic(monkeypatch: pytest.MonkeyPatch) -> None:
    """responses-style doubles replace HTTPAdapter.send: requests must then send."""
    seen: list[str] = []

    def fake_send(self: Any, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        seen.append(str(request.url))
        response = requests.Response()
        response.status_code = 204
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", fake_send)
    result = get(
        choose_transport("http://127.0.0.1:9/i", None, 5.0), "http://127.0.0.1:9/i", {"e": "pv"}
    )
    assert result.status == 204
    assert seen == ["http://127.0.0.1:9/i?e=pv"]


def test_a_replaced_urllib3_connection_class_gets_the_traffic(
    server: ScriptedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vcrpy-style doubles replace urllib3's connection classes."""
    import urllib3.connection
    import urllib3.connectionpool

    used: list[str] = []

    class Recording(urllib3.connection.HTTPConnection):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> None:
            used.append(url)
            super().request(method, url, *args, **kwargs)

    monkeypatch.setattr(urllib3.connectionpool.HTTPConnectionPool, "ConnectionCls", Recording)
    transport = choose_transport(server.url, None, 5.0)
    assert get(transport, server.url, {"e": "pv"}).ok
    assert used == ["/i?e=pv"]
    transport.close()


def test_a_double_started_after_the_emitter_was_built_gets_the_traffic(
    server: ScriptedServer,
) -> None:
    """0.5.0- and 1.x-era suites build emitters at import and start httmock later: each
    request goes to requests while a double is active, and to the pool again after."""
    transport = choose_transport(server.url, None, 5.0)
    assert isinstance(transport, DefaultTransport)
    assert isinstance(transport.plain, BuiltinTransport)
    assert get(transport, server.url, {"n": "1"}).ok
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(requests.Session, "send", lambda *a, **k: (_ for _ in ()).throw(OSError()))
        assert get(transport, server.url, {"n": "2"}).error is not None  # the double answered
    assert get(transport, server.url, {"n": "3"}).ok
    assert [r.split(b" ")[1] for r in server.requests] == [b"/i?n=1", b"/i?n=3"]
    transport.close()


def test_the_requests_runner_gives_up_at_the_deadline_and_skips_abandoned_calls() -> None:
    from snowplow_tracker._http import _Runner

    runner = _Runner()
    release = threading.Event()
    made: list[int] = []

    def stuck(n: int) -> Any:
        def call() -> SendResult:
            made.append(n)
            release.wait(10)
            return SendResult(200)

        return call

    results = []
    for n in range(_Runner.MAX_THREADS + 1):  # every thread held; the last call waits in line
        results.append(runner.run(stuck(n), 0.05))
    assert all(isinstance(result.error, TimeoutError) for result in results)
    release.set()
    assert runner.run(lambda: SendResult(204), 5).status == 204
    assert sorted(made) == list(range(_Runner.MAX_THREADS))  # the abandoned one never ran
    runner.close()
