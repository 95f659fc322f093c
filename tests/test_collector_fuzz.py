"""Fuzzing the collector: malformed bodies, headers, paths and queries never give a 5xx,
never crash the server, and what it keeps stays bounded."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snowplow_tracker.collector import Collector
from snowplow_tracker.collector.app import CollectorApp

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
KNOWN_KEYS = [
    "e", "p", "tv", "eid", "dtm", "stm", "ttm", "sid", "vid", "res", "vp", "ds", "cookie", "aid",
    "url", "refr", "se_ca", "se_va", "tr_tt", "ti_qu", "tr_cu", "ue_pr", "ue_px", "co", "cx",
    "nuid", "tnuid", "ip", "pp_mix", "f_pdf",
]  # fmt: skip
SCHEMAS = [
    "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1",
    "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0",
    "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-0",
    "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
    "iglu:com.acme/unknown/jsonschema/1-0-0",
]
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
self_describing = st.fixed_dictionaries(
    {"schema": st.sampled_from(SCHEMAS) | st.text(max_size=30), "data": json_values}
)


@st.composite
def field_values(draw: Any, key: str) -> str:
    if key in ("ue_pr", "co"):
        document = {"schema": draw(st.sampled_from(SCHEMAS)), "data": draw(
            self_describing | st.lists(self_describing, max_size=3) | json_values)}  # fmt: skip
        return json.dumps(document)
    if key in ("ue_px", "cx"):
        text = json.dumps(draw(self_describing))
        encoded = base64.urlsafe_b64encode(text.encode()).decode()
        return draw(st.sampled_from([encoded, encoded.rstrip("="), encoded[:-3], text]))
    return draw(st.text(max_size=40) | st.sampled_from(["pv", "ue", "srv", "1", "0", "1x1"]))


@st.composite
def raw_events(draw: Any) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(KNOWN_KEYS) | st.text(max_size=6), max_size=8))
    event: dict[str, Any] = {key: draw(field_values(key)) for key in keys}
    if draw(st.booleans()):
        event.update(e="pv", p="srv", tv="t")
    if draw(st.integers(0, 9)) == 0:
        event[draw(st.sampled_from(KNOWN_KEYS))] = draw(json_values)  # not a string
    return event


bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(raw_events(), max_size=4).map(
        lambda events: json.dumps({"schema": PAYLOAD_DATA, "data": events}).encode()
    ),
    st.builds(
        lambda schema, data: json.dumps({"schema": schema, "data": data}).encode(),
        st.sampled_from([*SCHEMAS, PAYLOAD_DATA]) | st.text(max_size=40),
        json_values,
    ),
)
header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)
headers = st.lists(
    st.tuples(
        st.sampled_from(["content-type", "cookie", "origin", "sp-anonymous", "x-forwarded-for",
                         "content-length", "user-agent", "host"]) | header_text,
        st.sampled_from(["application/json", "application/json; charset=UTF-8", "sp=", "*",
                         "", "9999999999"]) | header_text,
    ),
    max_size=5,
)  # fmt: skip
paths = st.one_of(
    st.sampled_from(["/i", "/ice.png", TP2, "/com.acme/v1", "/health", "/micro/all",
                     "/micro/good", "/micro/bad", "/micro/events", "/micro/reset", "/micro/ui",
                     "/micro/iglu/com.acme/x/jsonschema/1-0-0", "/micro/ui/api/records",
                     "/micro/ui/api/records/1", "/r/tp2", "/", "//", "/a/b/c"]),
    st.text(max_size=30).map(lambda p: "/" + p),
)  # fmt: skip
methods = st.sampled_from(["GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"])
queries = st.one_of(
    st.binary(max_size=80),
    st.dictionaries(st.sampled_from(KNOWN_KEYS) | st.text(max_size=5), st.text(max_size=20),
                    max_size=6).map(lambda d: urlencode(d).encode()),
    st.sampled_from([b"after=x", b"limit=-5", b"before=1&kind=bad", b"after=1e9"]),
)  # fmt: skip


class _Asgi:
    """Calls the ASGI app directly: thousands of requests a second, no sockets."""

    def __init__(self) -> None:
        self.collector = Collector(max_events=300)
        self.app = CollectorApp(self.collector)
        self.loop = asyncio.new_event_loop()

    def call(self, method: str, path: str, query: bytes, hdrs: list[tuple[str, str]],
             body: bytes) -> int:  # fmt: skip
        scope = {
            "type": "http", "method": method, "path": path, "query_string": query,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in hdrs],
            "client": ("127.0.0.1", 5000),
        }  # fmt: skip
        sent: list[dict[str, Any]] = []
        chunks = [body[:100], body[100:]] if len(body) > 100 else [body]

        async def receive() -> dict[str, Any]:
            chunk = chunks.pop(0) if chunks else b""
            return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        self.loop.run_until_complete(self.app(scope, receive, send))
        assert sent[0]["type"] == "http.response.start"
        assert sent[-1]["type"] == "http.response.body"
        return int(sent[0]["status"])

    def close(self) -> None:
        self.loop.close()
        self.collector.stop()


@pytest.fixture(scope="module")
def asgi() -> Any:
    harness = _Asgi()
    yield harness
    harness.close()


@FUZZ
@given(method=methods, path=paths, query=queries, hdrs=headers, body=bodies)
def test_no_request_gets_a_5xx(
    asgi: _Asgi, method: str, path: str, query: bytes, hdrs: list[tuple[str, str]], body: bytes
) -> None:
    status = asgi.call(method, path, query, hdrs, body)
    assert 200 <= status < 500


@FUZZ
@given(
    events=st.lists(raw_events(), min_size=1, max_size=5), method=st.sampled_from(["GET", "POST"])
)
def test_random_events_are_classified_not_crashed(
    asgi: _Asgi, events: list[dict[str, Any]], method: str
) -> None:
    collector = asgi.collector
    before = collector.received
    if method == "POST":
        body = json.dumps({"schema": PAYLOAD_DATA, "data": events}).encode()
        status = asgi.call("POST", TP2, b"", [("content-type", "application/json")], body)
    else:
        query = urlencode(
            {k: v if isinstance(v, str) else json.dumps(v) for k, v in events[0].items()}
        )
        status = asgi.call("GET", "/i", query.encode(), [], b"")
    assert status == 200
    # Every event became good or bad, or the request one bad row: nothing is lost.
    new_events = collector.received - before
    assert new_events in (0, len(events) if method == "POST" else 1)
    for event in collector.events[-new_events:] if new_events else []:
        assert event.valid == (event.bad_row_type is None)
        assert event.valid or event.errors
    # The Micro API renders whatever was stored.
    for path in ("/micro/good", "/micro/bad", "/micro/events", "/micro/ui/api/records"):
        assert asgi.call("GET", path, b"", [], b"") == 200


def test_what_is_kept_stays_bounded(asgi: _Asgi) -> None:
    collector = asgi.collector
    for index in range(400):
        schema = f"iglu:com.fuzz/s{index}/jsonschema/1-0-0"
        event = {"e": "ue", "p": "srv", "tv": "t", "ue_pr": json.dumps({
            "schema": "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0",
            "data": {"schema": schema, "data": {"n": index}}})}  # fmt: skip
        body = json.dumps({"schema": PAYLOAD_DATA, "data": [event] * 3}).encode()
        asgi.call("POST", TP2, b"", [("content-type", "application/json")], body)
        asgi.call("GET", f"/com.fuzz/v{index}", b"", [], b"")
    limit = collector.max_events + collector.max_events // 10
    assert len(collector.events) <= limit
    assert len(collector.requests) <= limit
    assert len(collector.failures) <= limit
    good, bad = collector.store.counts()
    assert good + bad <= collector.store.max_events
    assert len(collector.resolver._misses._items) <= collector.resolver._misses.size
    assert len(collector.resolver.memo) <= 4096
    assert len(collector.store.facets()["schema"]) <= 1000


@st.composite
def raw_requests(draw: Any) -> bytes:
    line = draw(st.sampled_from([
        b"GET /i?e=pv HTTP/1.1", b"POST " + TP2.encode() + b" HTTP/1.1", b"GET / HTTP/1.0",
        b"GET /i?" + b"x" * 30_000 + b" HTTP/1.1", b"BREW /pot HTTP/1.1", b"GET",
    ]) | st.binary(max_size=60))  # fmt: skip
    head = draw(st.lists(st.binary(max_size=50) | st.sampled_from([
        b"Host: x", b"Content-Length: 5", b"Content-Length: -1", b"Transfer-Encoding: chunked",
        b"Content-Type: application/json", b"Cookie: sp=\xff\xfe", b": no-name", b"X" * 9000,
    ]), max_size=5))  # fmt: skip
    body = draw(st.binary(max_size=50))
    return line + b"\r\n" + b"\r\n".join(head) + b"\r\n\r\n" + body


@pytest.fixture(scope="module")
def server() -> Any:
    with Collector(max_events=300) as running:
        yield running


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(request=raw_requests())
def test_malformed_http_never_gets_a_5xx_or_kills_the_server(
    server: Collector, request: bytes
) -> None:
    with socket.create_connection((server.host, server.port), timeout=5) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    if answer.startswith(b"HTTP/"):
        status = int(answer.split(b" ", 2)[1])
        assert status < 500, answer[:200]
    assert requests.get(f"{server.url}/health", timeout=5).text == "ok"
