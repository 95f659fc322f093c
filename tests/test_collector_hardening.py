"""The collector tried as a security reviewer would, against the real ``snowplow-tracker collector``.

Schema paths stay in their directories, a hung registry blocks no one, slow requests
end with 408, secrets are redacted in the API and in log lines.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import io
import json
import logging
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import requests

from snowplow_tracker._demo import run_demo
from snowplow_tracker._redact import RedactingFilter, redact_header, redact_url
from snowplow_tracker.collector import Collector, Resolver, SchemaKey
from snowplow_tracker.collector.iglu import (
    DirectoryRepository,
    HttpRepository,
    SchemaNotFound,
    SchemaPending,
)

from .collector_cli import cli_collector, empty_registry, silent_server

TP2 = "/com.snowplowanalytics.snowplow/tp2"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
SECRET = "TOPSECRET-4f1c"
CATCH_ALL = {
    "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
    "description": SECRET,
    "type": "object",
}  # fmt: skip


def _event(schema: str | None = None, entities: Sequence[str] = ()) -> dict[str, str]:
    event = {"e": "ue" if schema else "pv", "p": "srv", "tv": "py-test", "url": "http://x/"}
    if schema:
        event["ue_pr"] = json.dumps({"schema": UNSTRUCT, "data": {"schema": schema, "data": {}}})
    if entities:
        data = [{"schema": s, "data": {}} for s in entities]
        event["co"] = json.dumps({"schema": CONTEXTS, "data": data})
    return event


def _post(url: str, *events: dict[str, str], timeout: float = 30) -> requests.Response:
    body = json.dumps({"schema": PAYLOAD_DATA, "data": list(events)})
    return requests.post(f"{url}{TP2}", data=body, timeout=timeout,
                         headers={"Content-Type": "application/json"})  # fmt: skip


def _raw_get(url: str, path: str) -> tuple[int, str]:
    """GET exactly ``path``: no client normalizes its dots away."""
    host, port = url.split("://", 1)[1].rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def _secret_schema_beside(schemas: Path) -> None:
    # <root>/schemas is the --schemas directory; <root>/secrets/prod/1-0-0 must stay unreadable.
    secret = schemas.parent / "secrets" / "prod"
    secret.mkdir(parents=True)
    (secret / "1-0-0").write_text(json.dumps(CATCH_ALL))
    schemas.mkdir()


# -- 1. schema paths -------------------------------------------------------------------------------

TRAVERSALS = [
    "/micro/iglu/../secrets/prod/1-0-0",  # plain
    "/micro/iglu/%2e%2e/secrets/prod/1-0-0",  # encoded
    "/micro/iglu/%2E%2E/secrets/prod/1-0-0",
    "/micro/iglu/.%2e/secrets/prod/1-0-0",
    "/micro/iglu/..%2Fsecrets/prod/1-0-0",
    "/micro/iglu/%2e%2e%2fsecrets%2fprod/jsonschema/1-0-0",
    "/micro/iglu/./../secrets/prod/1-0-0",
]


def test_micro_iglu_serves_nothing_outside_the_schema_directories(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    _secret_schema_beside(schemas)
    with cli_collector(tmp_path, "--schemas", str(schemas), "--quiet") as collector:
        for path in TRAVERSALS:
            status, text = _raw_get(collector.url, path)
            assert status in (400, 404), (path, status)
            assert SECRET not in text, path
        # A schema inside the directory is still served.
        status, text = _raw_get(collector.url, "/micro/iglu/com.snowplowanalytics.snowplow/"
                                "web_page/jsonschema/1-0-0")  # fmt: skip
        assert status == 200


def test_a_schema_uri_in_an_event_cannot_reach_outside_the_directories(tmp_path: Path) -> None:
    # Nested: the traversal inside the self-describing event and entities of a tracked event.
    schemas = tmp_path / "schemas"
    _secret_schema_beside(schemas)
    outside = "iglu:../secrets/prod/1-0-0"
    with cli_collector(tmp_path, "--schemas", str(schemas), "--quiet") as collector:
        assert _post(collector.url, _event(outside), _event(entities=[outside])).ok
        summary = requests.get(f"{collector.url}/micro/all", timeout=5).json()
        assert summary == {"total": 2, "good": 0, "bad": 2}
        bad = requests.get(f"{collector.url}/micro/bad", timeout=5).text
        assert "INVALID_IGLUURI" in bad
        assert SECRET not in bad


def test_the_registry_client_never_asks_outside_the_registry(tmp_path: Path) -> None:
    with (
        empty_registry() as registry,
        cli_collector(tmp_path, "--registry", registry.url, "--quiet") as collector,
    ):
        traversal = ["iglu:../secrets/prod/1-0-0", "iglu:./x/jsonschema/1-0-0"]
        assert _post(collector.url, _event(traversal[0]), _event(entities=traversal)).ok
        assert _post(collector.url, _event("iglu:com.acme/known_unknown/jsonschema/1-0-0")).ok
        assert registry.paths == ["/api/schemas/com.acme/known_unknown/jsonschema/1-0-0"]


@pytest.mark.parametrize(
    "parts",
    [("..", "secrets", "prod", "1-0-0"), (".", "a", "jsonschema", "1-0-0"),
     (".hidden", "a", "jsonschema", "1-0-0"), ("com.acme/..", "a", "jsonschema", "1-0-0"),
     ("com.acme", "..", "jsonschema", "1-0-0"), ("com.acme", "a", "json/../x", "1-0-0"),
     ("com.acme", "a", "jsonschema", "1-0-0/.."), ("com.acme", "a", "jsonschema", "../1-0-0")],
)  # fmt: skip
def test_every_part_of_a_schema_key_is_checked(parts: tuple[str, str, str, str]) -> None:
    with pytest.raises(ValueError, match="not an Iglu schema key"):
        SchemaKey(*parts)
    with pytest.raises(ValueError, match="not an Iglu schema URI"):
        SchemaKey.parse("iglu:" + "/".join(parts))


def test_a_directory_repository_reads_no_file_outside_itself(tmp_path: Path) -> None:
    schemas = tmp_path / "schemas"
    _secret_schema_beside(schemas)
    key = SchemaKey("com.acme", "a", "jsonschema", "1-0-0")
    object.__setattr__(key, "vendor", "..")  # a key made around the checks
    object.__setattr__(key, "name", "secrets")
    object.__setattr__(key, "format", "prod")
    assert DirectoryRepository(schemas).fetch(key) is None


# -- 2. registry lookups ---------------------------------------------------------------------------


def test_a_registry_that_never_answers_blocks_no_other_client(tmp_path: Path) -> None:
    unknown = [f"iglu:com.acme/thing_{i}/jsonschema/1-0-0" for i in range(5)]
    with silent_server() as registry, cli_collector(
        tmp_path, "--registry", f"http://127.0.0.1:{registry.port}/api", "--registry-timeout", "2"
    ) as collector:  # fmt: skip
        answers: list[requests.Response] = []
        poster = threading.Thread(
            target=lambda: answers.append(_post(collector.url, _event(entities=unknown)))
        )
        poster.start()
        deadline = time.monotonic() + 10
        while not registry.connections:  # the lookups are under way
            assert time.monotonic() < deadline
            time.sleep(0.01)
        # Another client is served while the event waits for the registry.
        assert requests.get(f"{collector.url}/health", timeout=1.5).text == "ok"
        assert requests.get(f"{collector.url}/micro/all", timeout=1.5).json()["total"] == 0
        assert poster.is_alive()
        poster.join(15)
        assert [a.status_code for a in answers] == [200]
        (bad,) = requests.get(f"{collector.url}/micro/bad", timeout=5).json()
        messages = json.loads(bad["errors"][1])["data"]["failure"]["messages"]
        assert [m["schemaKey"] for m in messages] == unknown
        for message in messages:
            assert message["error"]["error"] == "ResolutionError"
            asked = message["error"]["lookupHistory"][-1]
            assert asked["repository"] == f"http://127.0.0.1:{registry.port}/api"
            assert asked["errors"] == [{"error": "RepoFailure", "message": "no answer within 2 s"}]
        assert requests.get(f"{collector.url}/micro/good", timeout=5).json() == []
        # One lookup per schema, however often it is asked for: misses and lookups under way
        # are shared.
        assert len(registry.connections) <= 5
        seen = len(registry.connections)
        assert _post(collector.url, _event(entities=unknown)).ok
        assert len(registry.connections) == seen
    assert "could not be resolved in time" in collector.log_text()


def test_remote_lookups_in_flight_are_bounded() -> None:
    with silent_server() as registry:
        resolver = Resolver(registries=[f"http://127.0.0.1:{registry.port}"], lookup_timeout=5,
                            max_lookups=2)  # fmt: skip
        keys = [SchemaKey.parse(f"iglu:com.acme/x_{i}/jsonschema/1-0-0") for i in range(3)]
        with resolver.deferring():
            for key in keys[:2]:
                with pytest.raises(SchemaPending):
                    resolver.compiled(key)
            with pytest.raises(SchemaNotFound, match="could not be resolved in time") as busy:
                resolver.compiled(keys[2])
        assert busy.value.lookup_history[-1]["errors"][0]["message"] == (
            "too many lookups in flight"
        )
        # The same key again: the lookup under way, not a new one.
        with resolver.deferring(), pytest.raises(SchemaPending):
            resolver.compiled(keys[0])


def test_the_resolver_waits_for_a_lookup_at_most_its_timeout() -> None:
    # Outside an event loop (the testing helpers), a caller waits; never longer than the bound.
    with silent_server() as registry:
        resolver = Resolver(registries=[f"http://127.0.0.1:{registry.port}"], lookup_timeout=0.3)
        with pytest.raises(LookupError, match="could not be resolved in time"):
            resolver.schema(SchemaKey.parse("iglu:com.acme/slow/jsonschema/1-0-0"))


def test_the_bad_row_says_the_schema_was_not_resolved_in_time() -> None:
    with (
        silent_server() as registry,
        Collector(
            registries=[f"http://127.0.0.1:{registry.port}"], registry_timeout=0.3
        ) as collector,
    ):
        assert _post(collector.url, _event("iglu:com.acme/slow/jsonschema/1-0-0")).ok
        (event,) = collector.bad()
        assert (
            "iglu:com.acme/slow/jsonschema/1-0-0 could not be resolved in time" in event.errors[0]
        )


def test_a_schema_that_arrives_late_is_used_from_then_on() -> None:
    answered = threading.Event()

    class SlowRegistry(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(0.6)  # longer than the collector waits
            body = json.dumps(CATCH_ALL).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            answered.set()

        def log_message(self, *args: Any) -> None:
            pass

    schema = "iglu:com.acme/late/jsonschema/1-0-0"
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), SlowRegistry) as registry:
        threading.Thread(target=registry.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{registry.server_address[1]}"
        try:
            with Collector(registries=[url], registry_timeout=0.2) as collector:
                event = _event(schema, entities=[schema])
                assert _post(collector.url, event).ok
                assert "could not be resolved in time" in collector.bad()[0].errors[0]
                assert answered.wait(5)
                deadline = time.monotonic() + 5
                while not collector.good():  # the same event text again: validated anew
                    assert time.monotonic() < deadline
                    assert _post(collector.url, event).ok
                assert collector.good()[0].event_schema == schema
        finally:
            registry.shutdown()


# -- 3. slow requests ------------------------------------------------------------------------------


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


@pytest.mark.parametrize(
    "partial",
    [
        b"GET /i?e=pv&p=srv&tv=t HTTP/1.1\r\nHost: x\r\n",  # headers that never end
        b"POST " + TP2.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 1000\r\n\r\n{"schema":',  # a body that never ends
    ],
    ids=["slow-headers", "slow-body"],
)
def test_a_request_that_arrives_too_slowly_gets_408(tmp_path: Path, partial: bytes) -> None:
    with cli_collector(tmp_path, "--request-timeout", "1", "--quiet") as collector:
        host, port = collector.endpoint.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            started = time.monotonic()
            slow.sendall(partial)
            # Other clients are served meanwhile.
            assert requests.get(f"{collector.url}/health", timeout=5).text == "ok"
            answer = _read_all(slow)  # until the collector closes the connection
            waited = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
        assert answer.endswith(b"request not received in time")
        assert waited >= 0.9
        assert requests.get(f"{collector.url}/micro/all", timeout=5).json()["total"] == 0
        assert "did not arrive within 1 s" in collector.log_text()


def test_idle_connections_are_closed_after_the_idle_timeout(tmp_path: Path) -> None:
    with cli_collector(tmp_path, "--idle-timeout", "0.5", "--quiet") as collector:
        host, port = collector.endpoint.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as silent:
            assert _read_all(silent) == b""  # never sent a byte: closed, no 408
        with socket.create_connection((host, int(port)), timeout=10) as kept:
            kept.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_all(kept)  # answered, then closed once idle
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"ok")


def test_a_slow_request_within_the_bound_is_served(tmp_path: Path) -> None:
    with cli_collector(tmp_path, "--request-timeout", "5", "--quiet") as collector:
        host, port = collector.endpoint.rsplit(":", 1)
        body = json.dumps({"schema": PAYLOAD_DATA, "data": [_event()]}).encode()
        head = (f"POST {TP2} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()  # fmt: skip
        with socket.create_connection((host, int(port)), timeout=10) as client:
            client.sendall(head + body[:10])
            time.sleep(0.2)
            client.sendall(body[10:])
            assert _read_all(client).startswith(b"HTTP/1.1 200 OK")
        assert requests.get(f"{collector.url}/micro/all", timeout=5).json()["good"] == 1


def test_a_body_cut_short_by_a_leaving_client_is_not_collected() -> None:
    with Collector() as collector:
        host, port = collector.host, collector.port
        with socket.create_connection((host, port), timeout=10) as leaving:
            leaving.sendall(f"POST {TP2} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
                            "Content-Type: application/json\r\n\r\n{".encode())  # fmt: skip
        assert _post(collector.url, _event()).ok
        collector.wait_for(1)
        time.sleep(0.1)
        assert [r.method for r in collector.requests] == ["POST"]
        assert collector.bad_rows() == []


@pytest.mark.parametrize("implementation", ["httptools", "h11"])
def test_the_deadlines_hold_on_either_http_implementation(
    monkeypatch: pytest.MonkeyPatch, implementation: str
) -> None:
    from snowplow_tracker.collector import protocol, server

    monkeypatch.setattr(
        server, "protocol_class", lambda timeout: protocol.protocol_class(timeout, implementation)
    )
    with Collector(request_timeout=0.5, idle_timeout=0.5) as collector:
        address = (collector.host, collector.port)
        with socket.create_connection(address, timeout=10) as slow:
            slow.sendall(b"GET /i?e=pv&p=srv&tv=t HTTP/1.1\r\nHost: x\r\n")
            assert _read_all(slow).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        with socket.create_connection(address, timeout=10) as slow:
            slow.sendall(f"POST {TP2} HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n{{".encode())
            assert _read_all(slow).startswith(b"HTTP/1.1 408 Request Timeout\r\n")
        with socket.create_connection(address, timeout=10) as idle:
            assert _read_all(idle) == b""
        with socket.create_connection(address, timeout=10) as kept:
            kept.sendall(b"GET /i?e=pv&p=srv&tv=t HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_all(kept).startswith(b"HTTP/1.1 200 OK")
        assert [r.status for r in collector.requests] == [200]
        assert len(collector.good()) == 1


# -- 4. secrets in the API -------------------------------------------------------------------------

SECRET_HEADERS = {
    "Cookie": f"sp=d7c8ad4d-6f53-4c6b-8a53-5bd9e0b0a0d3; session={SECRET}",
    "Authorization": f"Bearer {SECRET}",
    "Proxy-Authorization": f"Basic {SECRET}",
}


def _everything(url: str) -> str:
    texts = [requests.get(f"{url}{path}", timeout=5).text
             for path in ("/micro/all", "/micro/good", "/micro/bad", "/micro/events",
                          "/micro/ui/api/records")]  # fmt: skip
    for record in requests.get(f"{url}/micro/ui/api/records", timeout=5).json()["records"]:
        texts.append(requests.get(f"{url}/micro/ui/api/records/{record['id']}", timeout=5).text)
    return "\n".join(texts)


def test_secret_headers_are_redacted_in_the_micro_api_and_the_ui_api(tmp_path: Path) -> None:
    with cli_collector(tmp_path, "--quiet") as collector:
        requests.get(f"{collector.url}/i?e=pv&p=srv&tv=t", headers=SECRET_HEADERS, timeout=5)
        requests.get(f"{collector.url}/i?e=zz&p=srv&tv=t", headers=SECRET_HEADERS, timeout=5)
        shown = _everything(collector.url)
        assert SECRET not in shown
        good = requests.get(f"{collector.url}/micro/good", timeout=5).json()
        headers = good[0]["rawEvent"]["context"]["headers"]
        assert "authorization: Bearer <redacted>" in headers
        assert "proxy-authorization: Basic <redacted>" in headers
        assert "cookie: sp=<redacted>; session=<redacted>" in headers
        # The network user id still comes from the cookie.
        assert good[0]["event"]["network_userid"] == "d7c8ad4d-6f53-4c6b-8a53-5bd9e0b0a0d3"
    with cli_collector(tmp_path, "--quiet", "--keep-secrets") as keeping:
        requests.get(f"{keeping.url}/i?e=pv&p=srv&tv=t", headers=SECRET_HEADERS, timeout=5)
        assert f"authorization: Bearer {SECRET}" in _everything(keeping.url)


def test_redact_header_keeps_the_shape() -> None:
    assert redact_header("Cookie", "a=1; b=2") == "a=<redacted>; b=<redacted>"
    assert redact_header("authorization", "Basic xyz") == "Basic <redacted>"
    assert redact_header("Authorization", "xyz") == "<redacted>"
    assert redact_header("User-Agent", "curl/8") == "curl/8"


# -- 5. credentials in log lines -------------------------------------------------------------------


def test_registry_credentials_never_reach_a_log_line(tmp_path: Path) -> None:
    with empty_registry() as registry:
        with_password = registry.url.replace("http://", f"http://reader:{SECRET}@")
        with cli_collector(tmp_path, "--registry", with_password) as collector:
            assert _post(collector.url, _event("iglu:com.acme/unknown/jsonschema/1-0-0")).ok
            bad = requests.get(f"{collector.url}/micro/bad", timeout=5).text
        log = collector.log_text()
    assert "BAD schema_violations" in log
    assert "http://<redacted>@127.0.0.1" in log
    assert SECRET not in log
    assert SECRET not in bad
    # The credentials are used, as Basic authentication, not shown.
    expected = "Basic " + base64.b64encode(f"reader:{SECRET}".encode()).decode()
    assert registry.authorizations == [expected]


def test_a_bad_line_shows_no_password_from_the_event(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "snowplow_tracker.collector")
    link = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
    with Collector(log_events=True) as collector:
        event = _event(link)
        wrapped = {"schema": link, "data": {"targetUrl": "http://x/",
                                             "elementClasses": f"http://me:{SECRET}@y/"}}  # fmt: skip
        event["ue_pr"] = json.dumps({"schema": UNSTRUCT, "data": wrapped})
        assert _post(collector.url, event).ok
    (line,) = [r.getMessage() for r in caplog.records if r.getMessage().startswith("BAD")]
    assert "'http://<redacted>@y/' is not of type 'array'" in line


def test_the_demo_logs_no_password_of_its_collector_url(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, "snowplow_tracker")
    with Collector() as collector:
        url = collector.url.replace("http://", f"http://demo:{SECRET}@")
        run_demo(io.StringIO(), url=url, progress=False, wait=0.5)
    messages = [record.getMessage() for record in caplog.records]
    assert any("http://<redacted>@127.0.0.1" in m for m in messages)
    assert not [m for m in messages if SECRET in m]


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("http://u:p@h:9/x?mail=a@b", "http://<redacted>@h:9/x?mail=a@b"),
        ("to https://u:p@ss@host/x and http://x/y@z", "to https://<redacted>@host/x and http://x/y@z"),
        ("http://token@h", "http://<redacted>@h"),
        ("no url, a@b", "no url, a@b"),
    ],
)  # fmt: skip
def test_redact_url(text: str, shown: str) -> None:
    assert redact_url(text) == shown


def test_the_cli_log_handler_redacts_what_any_library_logs() -> None:
    # The collector command's handlers get this filter: it covers uvicorn's lines too.
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    other = logging.getLogger("some.library")
    other.addHandler(handler)
    try:
        other.warning("cannot reach %s (%d)", f"https://ci:{SECRET}@iglu.example.com/api", 503)
        other.warning("plain %s", "text")
    finally:
        other.removeHandler(handler)
    assert stream.getvalue() == (
        "cannot reach https://<redacted>@iglu.example.com/api (503)\nplain text\n"
    )


def test_a_registry_url_is_shown_redacted() -> None:
    repository = HttpRepository(f"https://reader:{SECRET}@iglu.example.com/api/schemas/")
    assert repository.name == "https://<redacted>@iglu.example.com/api/schemas"
    assert repository.base_url == "https://iglu.example.com/api/schemas"
