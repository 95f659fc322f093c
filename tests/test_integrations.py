"""What every framework integration shares: reading the client IP, the cookies, the language;
checking its options; importing its framework lazily."""

from __future__ import annotations

import importlib
import subprocess
import sys
from typing import Any

import pytest

from snowplow_tracker import InvalidTypeError, InvalidValueError, MissingExtraError, Tracker
from snowplow_tracker.integrations._common import (
    RequestTracking,
    flush_emitter,
    parse_cookie_header,
    parse_sp_id,
)

from .conftest import ListEmitter

SID = "c6ef3124-b53a-4b13-a233-0088f79dcbcb"
DUID = "4b0e7ee5-8d6e-4a48-94c0-6a3c1e3e5d6f"


def tracking(**options: Any) -> RequestTracking:
    return RequestTracking(Tracker(ListEmitter()), **options)


@pytest.mark.parametrize(
    ("value", "ids"),
    [
        (f"{DUID}.1700000000.3.1700000300.1700000100.{SID}.{SID}.x.1.2", {"vid": 3, "sid": SID}),
        (f"{DUID}.1700000000.1.1700000300.1700000100", {"vid": 1}),  # before sessions existed
        (f"{DUID}.1700000000.0.1.1.{SID}", {"sid": SID}),  # visit count 0 is not an index
        (f"{DUID}.x.99999999999.1.1.NOT-A-UUID", {}),
        (DUID, {}),
    ],
)
def test_the_browser_trackers_id_cookie(value: str, ids: dict[str, Any]) -> None:
    assert parse_sp_id(value) == {"duid": DUID, **ids}


def test_a_forged_id_cookie_gives_nothing_unsafe() -> None:
    assert parse_sp_id("a\tb.1.2.3.4.5") == {"vid": 2}
    assert parse_sp_id(".1") == {}


def test_cookie_header_parsing_is_lenient() -> None:
    header = 'a=1; _sp_id.1fff="x.1"; broken; a=2; =3; sp=n'
    assert parse_cookie_header(header) == {"a": "1", "_sp_id.1fff": "x.1", "sp": "n"}
    assert parse_cookie_header(None) == {}


def test_named_and_prefixed_id_cookies() -> None:
    jar = {"_sp_id.aaaa": f"{DUID}.1.2.3.4.{SID}", "sp": "nuid-1", "shop_id": "other.1.5"}
    both = {"duid": DUID, "vid": 2, "sid": SID, "tnuid": "nuid-1"}
    assert tracking()._cookie_ids(jar) == both
    assert tracking(domain_cookie="shop_id", network_cookie="n")._cookie_ids(jar) == {
        "duid": "other",
        "vid": 5,
    }
    assert tracking()._cookie_ids({"sp": "bad value;"}) == {}


@pytest.mark.parametrize(
    ("remote", "forwarded", "trusted", "client"),
    [
        ("127.0.0.1", "198.51.100.1", [], "127.0.0.1"),  # XFF from an untrusted peer: ignored
        ("127.0.0.1", "198.51.100.1, 203.0.113.5", ["127.0.0.1"], "203.0.113.5"),
        ("10.0.0.2", "203.0.113.5, 10.0.0.9", ["10.0.0.0/8"], "203.0.113.5"),  # two proxies
        ("10.0.0.2", "10.0.0.7, 10.0.0.9", ["10.0.0.0/8"], "10.0.0.7"),  # all trusted
        ("10.0.0.2", "nonsense, 10.0.0.9", ["10.0.0.0/8"], "10.0.0.9"),
        ("10.0.0.2", "203.0.113.5:4711", ["10.0.0.0/8"], "203.0.113.5"),
        ("::1", "[2001:db8::1]:443", ["::1"], "2001:db8::1"),
        ("10.0.0.2", None, ["10.0.0.0/8"], "10.0.0.2"),
        ("testclient", "203.0.113.5", ["127.0.0.1"], None),  # not an IP connection
        (None, None, [], None),
    ],
)
def test_client_ip(remote: Any, forwarded: Any, trusted: list[str], client: Any) -> None:
    assert tracking(trusted_proxies=trusted).client_ip(remote, forwarded) == client


def test_the_request_subject_leaves_the_platform_to_the_tracker() -> None:
    subject = tracking().subject(
        remote_addr="127.0.0.1",
        forwarded_for=None,
        user_agent="x" * 2000,
        accept_language="*",
        cookies={},
        user_id=None,
    )
    assert subject.standard_nv_pairs == {"ip": "127.0.0.1", "ua": "x" * 1000}


def test_page_view_patterns() -> None:
    every = tracking(page_views=True)
    assert every.wants_page_view("GET", "/any") and not every.wants_page_view("POST", "/any")
    assert not tracking().wants_page_view("GET", "/any")  # off by default
    some = tracking(page_views=True, include=["/shop", "/$"], exclude="/shop/admin")
    seen = [
        p for p in ("/", "/shop/1", "/shop/admin/x", "/about") if some.wants_page_view("GET", p)
    ]
    assert seen == ["/", "/shop/1"]


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"tracker": "t"}, InvalidTypeError),
        ({"trusted_proxies": ["not an ip"]}, InvalidValueError),
        ({"include": ["("]}, InvalidValueError),
        ({"user_id": "me"}, InvalidTypeError),
        ({"flush_timeout": "5"}, InvalidTypeError),
        ({"domain_cookie": ""}, InvalidValueError),
    ],
)
def test_bad_options_fail_at_once(options: dict[str, Any], error: type[Exception]) -> None:
    tracker = options.pop("tracker", Tracker(ListEmitter()))
    with pytest.raises(error):
        RequestTracking(tracker, **options)


def test_flush_emitter_passes_the_bound_only_where_taken() -> None:
    calls: list[Any] = []

    class Plain:
        def flush(self) -> None:
            calls.append("plain")

    class Bounded:
        def sync_flush(self, timeout: float | None = None) -> None:
            calls.append(timeout)

    flush_emitter(Plain(), 2.0)
    flush_emitter(Bounded(), 2.0)
    flush_emitter(object(), 2.0)
    assert calls == ["plain", 2.0]


@pytest.mark.parametrize(("module", "framework"), [("django", "django"), ("flask", "flask")])
def test_a_missing_framework_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, module: str, framework: str
) -> None:
    monkeypatch.setitem(sys.modules, framework, None)  # as if not installed
    monkeypatch.delitem(sys.modules, f"snowplow_tracker.integrations.{module}", raising=False)
    with pytest.raises(MissingExtraError, match=rf"snowplow-event-tracker\[{module}\]"):
        importlib.import_module(f"snowplow_tracker.integrations.{module}")


def test_imports_stay_lazy() -> None:
    """The package imports no integration; the ASGI middleware imports no framework."""
    code = (
        "import sys, snowplow_tracker, snowplow_tracker.integrations.asgi\n"
        "heavy = {'django', 'flask', 'starlette', 'fastapi', 'snowplow_tracker.integrations.flask'}\n"
        "print(sorted(heavy & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_failing_page_view_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        def input(self, payload: Any) -> None:
            raise RuntimeError("emitter broke")

    RequestTracking(Tracker(Broken())).track_page_view("http://shop.example/", None)
    assert "emitter broke" in caplog.text
