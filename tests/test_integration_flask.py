"""The Flask extension: test client, and the example app on a real threaded server."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker import Emitter, Subject, Tracker
from snowplow_tracker.collector import Collector

from .web_support import (
    EXAMPLES,
    HOLD,
    Server,
    check_own_fields,
    cookies,
    example_env,
    hammer,
    headers,
)

pytest.importorskip("flask", reason="the flask extra is not installed")
pytest.importorskip("flask_login", reason="flask-login is not installed")
sys.path.insert(0, str(EXAMPLES))

from flask_app import create_app


def app_for(collector: Collector, **options: Any) -> Any:
    tracker = Tracker(Emitter(collector.endpoint, method="post", buffer_size=1), Subject())
    return create_app(tracker, **options)


def test_the_test_client_fills_the_request_subject(snowplow_collector: Collector) -> None:
    app = app_for(snowplow_collector)
    for user_number in (3, 4):
        client = app.test_client()
        for name, value in cookies(user_number).items():
            client.set_cookie(name, value)
        response = client.get(f"/buy/{user_number}-0", headers=headers(user_number, cookie=False))
        assert response.status_code == 200
    check_own_fields(snowplow_collector.wait_for(2), ["3-0", "4-0"])


def test_without_login_or_cookies_the_event_has_the_connection_only(
    snowplow_collector: Collector,
) -> None:
    app = app_for(snowplow_collector, trusted_proxies=[])  # no proxy trusted: XFF ignored
    response = app.test_client().get("/buy/x", headers={"X-Forwarded-For": "198.51.100.1"})
    assert response.status_code == 200
    (event,) = snowplow_collector.wait_for(1)
    assert event.raw["ip"] == "127.0.0.1" and event.raw["p"] == "pc"
    assert not {"uid", "duid", "sid", "vid", "tnuid", "lang"} & set(event.raw)


def test_page_views_per_request_follow_include_and_exclude(snowplow_collector: Collector) -> None:
    app = app_for(snowplow_collector, page_views=True, include=[r"/($|buy/)"], exclude=[r"/buy/0"])
    client = app.test_client()
    for path in ("/", "/buy/0-1", "/buy/1-1", "/nothing"):
        client.get(path, headers={**headers(1), "Referer": "http://ref.example/"})
    client.post("/")
    events = snowplow_collector.wait_for(4)
    page_views = [e.raw for e in events if e.raw["e"] == "pv"]
    assert [(p["url"], p["refr"], p["uid"]) for p in page_views] == [
        ("http://localhost/", "http://ref.example/", "user-1"),
        ("http://localhost/buy/1-1", "http://ref.example/", "user-1"),
    ]


def test_a_broken_user_id_callable_does_not_break_the_request(
    snowplow_collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: Any) -> str:
        raise RuntimeError("the user store is down")

    response = app_for(snowplow_collector, user_id=broken).test_client().get("/buy/1-0")
    assert response.status_code == 200
    (event,) = snowplow_collector.wait_for(1)
    assert "uid" not in event.raw and "ip" not in event.raw  # tracked, without a scope
    assert "the user store is down" in caplog.text


def test_threaded_server_16_users_2000_requests_then_shutdown_flushes(
    collector: Collector, tmp_path: Path
) -> None:
    """The example app on Werkzeug's threaded server, its events held back until exit: none
    arrives while it serves, all 2,000 after SIGTERM, each with its own request's fields."""
    env = example_env(SNOWPLOW_COLLECTOR=collector.endpoint, PORT="0", **HOLD)
    server = Server([sys.executable, "flask_app.py"], tmp_path / "flask.log", env, None)
    try:
        labels = hammer(server.port_from_log())
        assert collector.events == []  # all still queued in the server
    finally:
        code = server.stop(signal.SIGTERM)
    assert code == 0, server.log.read_text()
    check_own_fields(collector.wait_for(len(labels)), labels)
    assert len({e.raw["se_pr"] for e in collector.events}) == 1  # one process
