"""The Django middleware: the test clients, and the example project under gunicorn --preload."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from snowplow_tracker import Emitter, InvalidValueError, Subject, Tracker
from snowplow_tracker.collector import Collector

from .web_support import (
    EXAMPLES,
    HOLD,
    Server,
    check_own_fields,
    cookies,
    example_env,
    free_socket,
    hammer,
    headers,
)

pytest.importorskip("django", reason="the django extra is not installed")
sys.path.insert(0, str(EXAMPLES))

import django
import django_shop
from django.conf import settings
from django.test import AsyncClient, Client, override_settings

# The example project's settings, configured in this process only: DJANGO_SETTINGS_MODULE
# set here would reach every child process (a celery worker would try to load Django).
if not settings.configured:
    settings.configure(**{k: getattr(django_shop, k) for k in dir(django_shop) if k.isupper()})
django.setup()

from snowplow_tracker.integrations.django import SnowplowMiddleware, default_user_id  # noqa: E402


def settings_for(collector: Collector, **extra: Any) -> dict[str, Any]:
    tracker = Tracker(Emitter(collector.endpoint, method="post", buffer_size=1), Subject())
    django_shop.tracker = tracker  # what the example's views track with
    return {
        "TRACKER": "django_shop.tracker",
        "USER_ID": "django_shop.user_from_token",
        "TRUSTED_PROXIES": ["127.0.0.1"],
        **extra,
    }


def client_of(user_number: int) -> Client:
    client = Client(headers=headers(user_number, cookie=False))
    for name, value in cookies(user_number).items():
        client.cookies[name] = value
    return client


def test_the_test_client_fills_the_request_subject(snowplow_collector: Collector) -> None:
    with override_settings(SNOWPLOW=settings_for(snowplow_collector)):
        for user_number in (8, 9):
            assert client_of(user_number).get(f"/buy/{user_number}-0").status_code == 200
    check_own_fields(snowplow_collector.wait_for(2), ["8-0", "9-0"])


def test_the_async_test_client_runs_the_middleware_async(snowplow_collector: Collector) -> None:
    async def request() -> int:
        client = AsyncClient()
        for name, value in cookies(10).items():
            client.cookies[name] = value
        response = await client.get("/buy/10-0", headers=headers(10, cookie=False))
        return int(response.status_code)

    with override_settings(SNOWPLOW=settings_for(snowplow_collector)):
        assert asyncio.run(request()) == 200
    check_own_fields(snowplow_collector.wait_for(1), ["10-0"])


def test_page_views_and_the_referrer(snowplow_collector: Collector) -> None:
    config = settings_for(snowplow_collector, PAGE_VIEWS=True, INCLUDE=[r"/$"])
    with override_settings(SNOWPLOW=config):
        client_of(1).get("/", HTTP_REFERER="http://ref.example/")
        client_of(1).get("/buy/1-0")
    events = snowplow_collector.wait_for(2)
    assert [(e.raw["e"], e.raw.get("url"), e.raw.get("refr")) for e in events] == [
        ("pv", "http://testserver/", "http://ref.example/"),
        ("se", None, None),
    ]


def test_the_default_user_id_is_the_authenticated_users_pk() -> None:
    def request(**user: Any) -> Any:
        return SimpleNamespace(user=SimpleNamespace(**user))

    assert default_user_id(request(is_authenticated=True, pk=42)) == "42"
    assert default_user_id(request(is_authenticated=False, pk=None)) is None
    assert default_user_id(SimpleNamespace()) is None  # no AuthenticationMiddleware


@pytest.mark.parametrize(
    ("config", "message"),
    [({}, "TRACKER"), ({"TRACKER": "django_shop.tracker", "PAGEVIEWS": True}, "PAGEVIEWS")],
)
def test_bad_settings_fail_when_the_middleware_loads(config: dict[str, Any], message: str) -> None:
    with override_settings(SNOWPLOW=config), pytest.raises(InvalidValueError, match=message):
        SnowplowMiddleware(lambda request: None)


GUNICORN_CONFIG = """
def on_starting(server):
    # Tracked in the master before the workers fork: fork safety sends it once, not 5 times.
    import django_shop
    django_shop.tracker.track_struct_event("shop", "master-started", label="master")
"""


def test_gunicorn_preload_4_workers_16_users_2000_requests_then_shutdown(
    collector: Collector, tmp_path: Path
) -> None:
    """The example project under gunicorn --preload with 4 gthread workers, the tracker made
    in the master: every event arrives once, with its own request's fields, all held until
    SIGTERM and sent at each process's exit."""
    pytest.importorskip("gunicorn", reason="gunicorn is not installed")
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(GUNICORN_CONFIG)
    sock = free_socket()
    command = [sys.executable, "-m", "gunicorn", "--preload", "-w", "4", "-k", "gthread"]
    command += ["--threads", "4", "-b", f"fd://{sock.fileno()}", "-c", str(config)]
    env = example_env(SNOWPLOW_COLLECTOR=collector.endpoint, **HOLD)
    server = Server([*command, "django_shop:application"], tmp_path / "gunicorn.log", env, sock)
    try:
        server.wait_for("Booting worker")
        labels = hammer(sock.getsockname()[1])
        assert collector.events == []
    finally:
        code = server.stop(signal.SIGTERM)
    log = server.log.read_text()
    assert code == 0, log
    assert log.count("Booting worker") == 4, log
    events = collector.wait_for(len(labels) + 1)
    check_own_fields([e for e in events if e.raw["se_la"] != "master"], labels)
    assert [e.raw["se_ac"] for e in events].count("master-started") == 1
    workers = {e.raw["se_pr"] for e in events if e.raw["se_la"] != "master"}
    assert 1 < len(workers) <= 4, workers


def test_runserver_ctrl_c_sends_what_was_queued(collector: Collector, tmp_path: Path) -> None:
    """``python django_shop.py runserver``, stopped by Ctrl-C: its held events are sent at exit."""
    sock = free_socket()
    port = sock.getsockname()[1]
    sock.close()  # runserver binds by number: a port free a moment ago
    command = [sys.executable, "django_shop.py", "runserver", "--noreload", f"127.0.0.1:{port}"]
    env = example_env(SNOWPLOW_COLLECTOR=collector.endpoint, **HOLD)
    server = Server(command, tmp_path / "runserver.log", env, None)
    try:
        server.wait_for("Quit the server with")
        labels = hammer(port, clients=4, total=40)
        assert collector.events == []
    finally:
        server.stop(signal.SIGINT)
    check_own_fields(collector.wait_for(len(labels)), labels)


def test_a_broken_user_id_is_logged_and_the_request_goes_on(
    snowplow_collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: Any) -> str:
        raise LookupError("no such user")

    config = settings_for(snowplow_collector, USER_ID=broken)
    with override_settings(SNOWPLOW=config):
        assert client_of(1).get("/buy/1-0").status_code == 200
        assert asyncio.run(AsyncClient().get("/buy/1-1")).status_code == 200
    events = snowplow_collector.wait_for(2)
    assert [("uid" in e.raw, "ip" in e.raw) for e in events] == [(False, False)] * 2
    assert caplog.text.count("reading the request's subject failed") == 2


def test_a_page_view_is_skipped_for_a_host_django_refuses(
    snowplow_collector: Collector,
) -> None:
    with override_settings(SNOWPLOW=settings_for(snowplow_collector, PAGE_VIEWS=True)):
        # The view never asks for the host, so Django serves it; no page view is tracked.
        assert client_of(1).get("/", HTTP_HOST="evil.example").status_code == 200
        assert client_of(1).get("/").status_code == 200
    assert [e.raw["url"] for e in snowplow_collector.wait_for(1)] == ["http://testserver/"]
