"""The collector's HTTP behaviour: routes, responses, cookie, CORS, limits, scripting, storage."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from snowplow_tracker import Emitter, Tracker
from snowplow_tracker.collector import Collector, Response, run_collector
from snowplow_tracker.collector.app import GIF

TP2 = "/com.snowplowanalytics.snowplow/tp2"
PV = "e=pv&p=srv&tv=py-0.6.0"
JSON_TYPE = {"Content-Type": "application/json"}
BODY = json.dumps({
    "schema": "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4",
    "data": [{"e": "pv", "p": "srv", "tv": "py-0.6.0"}],
})  # fmt: skip


@pytest.fixture(scope="module")
def shared() -> Any:
    with Collector() as running:
        yield running


@pytest.fixture
def collector(shared: Collector) -> Collector:
    shared.reset()
    return shared


def test_get_pixel_routes_answer_the_gif(collector: Collector) -> None:
    for path in ("/i", "/ice.png", TP2):
        response = requests.get(f"{collector.url}{path}?{PV}", timeout=5)
        assert response.status_code == 200
        assert response.content == GIF
        assert len(GIF) == 43
        assert response.headers["Content-Type"] == "image/gif"
        assert response.headers["Cache-Control"] == "no-cache, no-store, must-revalidate"
    assert [e.raw["e"] for e in collector.good()] == ["pv", "pv", "pv"]


def test_head_answers_without_a_body_and_still_collects(collector: Collector) -> None:
    response = requests.head(f"{collector.url}/i?{PV}", timeout=5)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["Content-Length"] == "43"
    assert len(collector.good()) == 1


def test_post_answers_ok(collector: Collector) -> None:
    response = requests.post(f"{collector.url}{TP2}", data=BODY, headers=JSON_TYPE, timeout=5)
    assert (response.status_code, response.text) == (200, "ok")
    assert response.headers["Content-Type"].startswith("text/plain")


def test_any_vendor_version_path_is_collected_and_fails_in_the_adapter(
    collector: Collector,
) -> None:
    response = requests.post(f"{collector.url}/com.acme/v1", data=b"x", timeout=5)
    assert response.status_code == 200
    assert [r.bad_row_type for r in collector.bad_rows()] == ["adapter_failures"]


@pytest.mark.parametrize(
    ("method", "path", "status", "text"),
    [
        ("GET", "/health", 200, "ok"),
        ("GET", "/robots.txt", 200, "User-agent: *\nDisallow: /\n"),
        ("GET", "/r/tp2?u=http://x", 404, "redirects disabled"),
        ("GET", "/a/b/c", 404, "not found"),
        ("POST", "/i", 404, "not found"),
        ("DELETE", TP2, 404, "not found"),
    ],
)
def test_other_routes(collector: Collector, method: str, path: str, status: int, text: str) -> None:
    response = requests.request(method, f"{collector.url}{path}", timeout=5)
    assert (response.status_code, response.text) == (status, text)
    assert collector.requests == []


def test_root_redirects_to_the_ui(collector: Collector) -> None:
    response = requests.get(collector.url, allow_redirects=False, timeout=5)
    assert (response.status_code, response.headers["Location"]) == (302, "/micro/ui")


def test_options_is_a_cors_preflight_echoing_the_origin(collector: Collector) -> None:
    response = requests.options(
        f"{collector.url}{TP2}", headers={"Origin": "https://shop.example"}, timeout=5
    )
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert response.headers["Access-Control-Allow-Headers"] == "Content-Type, SP-Anonymous"
    assert response.headers["Access-Control-Max-Age"] == "3600"
    assert "Access-Control-Allow-Methods" not in response.headers
    plain = requests.get(f"{collector.url}/i?{PV}", timeout=5)
    assert plain.headers["Access-Control-Allow-Origin"] == "*"


def test_sp_cookie_is_set_and_becomes_the_network_user_id(collector: Collector) -> None:
    first = requests.get(f"{collector.url}/i?{PV}", timeout=5)
    cookie = first.headers["Set-Cookie"]
    nuid = cookie.split(";")[0].split("=", 1)[1]
    assert len(nuid) == 36
    for attribute in ("Path=/", "Secure", "HttpOnly", "SameSite=None", "Expires="):
        assert attribute in cookie
    again = requests.get(f"{collector.url}/i?{PV}", headers={"Cookie": f"sp={nuid}"}, timeout=5)
    assert again.headers["Set-Cookie"].startswith(f"sp={nuid};")
    overridden = requests.get(f"{collector.url}/i?{PV}&nuid=from-param", timeout=5)
    assert overridden.headers["Set-Cookie"].startswith("sp=from-param;")
    users = [e.payload.network_userid for e in collector.good() if e.payload]
    assert users == [nuid, nuid, "from-param"]
    good = requests.get(f"{collector.url}/micro/good", timeout=5).json()
    assert good[-1]["event"]["network_userid"] == nuid


def test_sp_anonymous_sets_no_cookie_and_keeps_no_ip(collector: Collector) -> None:
    response = requests.get(
        f"{collector.url}/i?{PV}",
        headers={"SP-Anonymous": "*", "X-Forwarded-For": "203.0.113.9", "Cookie": "sp=abc"},
        timeout=5,
    )
    # As Snowplow's collector: no Set-Cookie at all, so the visitor's cookie stays.
    assert "Set-Cookie" not in response.headers
    (event,) = collector.good()
    assert event.payload is not None
    assert event.payload.network_userid == "00000000-0000-0000-0000-000000000000"
    assert event.payload.ip is None
    assert not {"cookie", "x-forwarded-for"} & {k for k, _ in event.payload.headers}


def test_forwarded_for_gives_the_ip(collector: Collector) -> None:
    requests.get(f"{collector.url}/i?{PV}", headers={"X-Forwarded-For": "203.0.113.9, 10.0.0.1"},
                 timeout=5)  # fmt: skip
    good = requests.get(f"{collector.url}/micro/good", timeout=5).json()
    assert good[0]["event"]["user_ipaddress"] == "203.0.113.9"


def test_body_over_the_drop_size_gets_413(collector: Collector) -> None:
    big = b"x" * 2_100_000
    response = requests.post(f"{collector.url}{TP2}", data=big, headers=JSON_TYPE, timeout=10)
    assert response.status_code == 413
    assert collector.requests == []
    # The server is still fine afterwards.
    assert requests.get(f"{collector.url}/health", timeout=5).status_code == 200


def test_chunked_body_over_the_drop_size_gets_413(collector: Collector) -> None:
    def chunks() -> Any:
        for _ in range(40):
            yield b"x" * 60_000

    response = requests.post(f"{collector.url}{TP2}", data=chunks(), headers=JSON_TYPE, timeout=10)
    assert response.status_code == 413


def test_request_line_over_the_limit_gets_400(collector: Collector) -> None:
    response = requests.get(f"{collector.url}/i?{PV}&page={'x' * 21_000}", timeout=5)
    assert response.status_code == 400


def test_scripted_answers_then_the_default(collector: Collector) -> None:
    collector.script(500, Response(429, retry_after="2"))
    collector.respond_with(503)
    statuses = [requests.get(f"{collector.url}/i?{PV}", timeout=5) for _ in range(3)]
    assert [r.status_code for r in statuses] == [500, 429, 503]
    assert statuses[1].headers["Retry-After"] == "2"
    assert [r.status for r in collector.requests] == [500, 429, 503]
    assert collector.events == []  # refused requests are not collected
    collector.reset()
    assert requests.get(f"{collector.url}/i?{PV}", timeout=5).status_code == 200


def test_request_records_keep_what_was_sent(collector: Collector) -> None:
    requests.post(f"{collector.url}{TP2}?x=1", data=BODY, headers=JSON_TYPE, timeout=5)
    (record,) = collector.requests
    assert (record.method, record.path, record.query, record.status) == ("POST", TP2, "x=1", 200)
    assert record.body == BODY.encode()
    assert record.headers["content-type"] == "application/json"
    assert record.error is None


def test_wait_for_returns_when_events_arrive(collector: Collector) -> None:
    emitter = Emitter(collector.endpoint, method="post", buffer_size=3)
    tracker = Tracker(emitter)
    threading.Timer(0.05, lambda: [tracker.track_page_view("http://x") for _ in range(3)]).start()
    events = collector.wait_for(3, timeout=5)
    assert len(events) == 3


def test_stop_is_bounded_with_a_delayed_response_in_flight() -> None:
    collector = run_collector()
    collector.respond_with(200, delay=30)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            requests.get(f"{collector.url}/i?{PV}", timeout=10)
        except requests.RequestException as exc:
            errors.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    deadline = time.monotonic() + 5
    while not collector._server or not collector._server.server_state.tasks:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    started = time.monotonic()
    collector.stop()
    assert time.monotonic() - started < 3
    caller.join(5)
    assert not caller.is_alive()


def test_start_and_stop_are_quick_and_free_the_port() -> None:
    started = time.monotonic()
    for _ in range(10):
        collector = run_collector()
        port = collector.port
        assert requests.get(f"{collector.url}/health", timeout=5).status_code == 200
        collector.stop()
        collector.stop()  # idempotent
    assert time.monotonic() - started < 5
    with socket.socket() as sock:
        sock.connect_ex(("127.0.0.1", port))


def test_ipv6_loopback() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        collector = Collector("::1").start()
    except OSError as exc:
        pytest.skip(f"cannot bind ::1: {exc}")
    with collector:
        assert collector.endpoint.startswith("[::1]:")
        Tracker(Emitter(collector.endpoint)).track_page_view("http://x")
        assert len(collector.good()) == 1


def test_sqlite_storage_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    with Collector(db=db) as first:
        Tracker(Emitter(first.endpoint, method="post")).track_page_view("http://x").flush()
        requests.get(f"{first.url}/i", timeout=5)  # a bad row (tp1 without a query)
    with Collector(db=db) as second:
        assert requests.get(f"{second.url}/micro/all", timeout=5).json() == {
            "total": 2, "good": 1, "bad": 1,
        }  # fmt: skip
        good = requests.get(f"{second.url}/micro/good", timeout=5).json()
        assert good[0]["event"]["page_url"] == "http://x"
        bad = requests.get(f"{second.url}/micro/bad", timeout=5).json()
        assert "adapter_failures" in bad[0]["errors"][1]
        requests.get(f"{second.url}/micro/reset", timeout=5)
    with Collector(db=db) as third:
        assert requests.get(f"{third.url}/micro/all", timeout=5).json()["total"] == 0


@pytest.mark.parametrize("use_db", [False, True])
def test_stored_events_are_capped(tmp_path: Path, use_db: bool) -> None:
    db = tmp_path / "capped.db" if use_db else None
    with Collector(db=db, max_events=20) as collector:
        emitter = Emitter(collector.endpoint, method="post", buffer_size=50)
        tracker = Tracker(emitter)
        for index in range(50):
            tracker.track_page_view(f"http://x/{index}")
        tracker.flush()
        assert collector.received == 50
        summary = requests.get(f"{collector.url}/micro/all", timeout=5).json()
        assert summary["good"] <= 22
        good = requests.get(f"{collector.url}/micro/good", timeout=5).json()
        assert good[0]["event"]["page_url"] == "http://x/49"  # the newest are kept
        assert len(collector.events) <= 22


def test_user_schema_directories_come_first(tmp_path: Path) -> None:
    schema_dir = tmp_path / "schemas" / "com.acme" / "checkout" / "jsonschema"
    schema_dir.mkdir(parents=True)
    (schema_dir / "1-0-0").write_text(json.dumps({
        "$schema": "http://iglucentral.com/schemas/com.snowplowanalytics.self-desc/schema/jsonschema/1-0-0#",
        "self": {"vendor": "com.acme", "name": "checkout", "format": "jsonschema",
                 "version": "1-0-0"},
        "type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"],
        "additionalProperties": False,
    }))  # fmt: skip
    schema = "iglu:com.acme/checkout/jsonschema/1-0-0"
    with Collector(schemas=[tmp_path / "schemas"]) as collector:
        tracker = Tracker(Emitter(collector.endpoint))
        tracker.track_unstruct_event({"schema": schema, "data": {"total": 5}})
        tracker.track_unstruct_event({"schema": schema, "data": {"total": "5"}})
        assert [e.valid for e in collector.events] == [True, False]
        assert "'5' is not of type 'number'" in collector.bad()[0].errors[0]
        found = requests.get(f"{collector.url}/micro/iglu/com.acme/checkout/jsonschema/1-0-0",
                             timeout=5)  # fmt: skip
        assert found.json()["required"] == ["total"]

        # A second collector that knows the schema only through the first one's registry.
        with Collector(registries=[f"{collector.url}/micro/iglu"]) as remote:
            Tracker(Emitter(remote.endpoint)).track_unstruct_event(
                {"schema": schema, "data": {"total": 1}}
            )
            assert remote.good()[0].event_schema == schema
        with Collector() as offline:
            Tracker(Emitter(offline.endpoint)).track_unstruct_event(
                {"schema": schema, "data": {"total": 1}}
            )
            assert "not found" in offline.bad()[0].errors[0]


def test_log_events_logs_good_and_bad(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "snowplow_tracker.collector")
    with Collector(log_events=True) as collector:
        requests.get(f"{collector.url}/i?{PV}&aid=shop", timeout=5)
        requests.get(f"{collector.url}/i?e=zz&p=srv&tv=t", timeout=5)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("GOOD") and "app_id:shop type:page_view" in m for m in messages)
    assert any(m.startswith("BAD schema_violations") and "Not a valid event" in m for m in messages)


def test_raw_http_keep_alive_and_pipelined_requests(collector: Collector) -> None:
    connection = http.client.HTTPConnection(collector.host, collector.port, timeout=5)
    for _ in range(3):
        connection.request("GET", f"/i?{PV}")
        assert connection.getresponse().read() == GIF
    connection.close()
    assert len(collector.good()) == 3


def test_a_network_user_id_from_the_query_cannot_inject_headers(collector: Collector) -> None:
    response = requests.get(f"{collector.url}/i?{PV}&nuid=a%0D%0AX-Evil:%201%C4%80", timeout=5)
    assert response.status_code == 200
    assert "X-Evil" not in response.headers
    assert response.headers["Set-Cookie"].startswith("sp=a%0D%0AX-Evil%3A%201%C4%80;")


def test_a_client_that_leaves_during_a_delay_is_not_served(collector: Collector) -> None:
    collector.respond_with(200, delay=5)
    with pytest.raises(requests.Timeout):
        requests.get(f"{collector.url}/i?{PV}", timeout=0.3)
    deadline = time.monotonic() + 5
    while not collector.requests:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert [r.status for r in collector.requests] == [499]
    assert collector.events == []
