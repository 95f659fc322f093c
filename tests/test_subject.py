"""Subject: setters, chaining, the pairs they produce, and their argument checks."""

from __future__ import annotations

from typing import Any

import pytest

from snowplow_tracker import InvalidTypeError, InvalidValueError, Subject, disable_contracts
from snowplow_tracker.subject import SUPPORTED_PLATFORMS

SID = "c6ef3124-b53a-4b13-a233-0088f79dcbcb"


def test_default_platform_is_pc() -> None:
    assert Subject().standard_nv_pairs == {"p": "pc"}


def test_platforms_are_the_protocols_full_list() -> None:
    assert {"web", "mob", "pc", "srv", "app", "tv", "cnsl", "iot", "headset"} == SUPPORTED_PLATFORMS
    for platform in sorted(SUPPORTED_PLATFORMS):
        assert Subject().set_platform(platform).standard_nv_pairs["p"] == platform


def test_every_setter_chains_and_sets_its_pair() -> None:
    s = Subject()
    result = (
        s.set_platform("srv")
        .set_user_id("0a78f2867de")
        .set_screen_resolution(1920, 1080)
        .set_viewport(800, 600)
        .set_color_depth(24)
        .set_timezone("Europe/London")
        .set_lang("en")
        .set_domain_user_id("duid-1")
        .set_ip_address("203.0.113.7")
        .set_useragent("Mozilla/5.0")
        .set_network_user_id("nuid-1")
        .set_domain_session_id(SID)
        .set_domain_session_index(3)
    )
    assert result is s
    assert s.standard_nv_pairs == {
        "p": "srv",
        "uid": "0a78f2867de",
        "res": "1920x1080",
        "vp": "800x600",
        "cd": 24,
        "tz": "Europe/London",
        "lang": "en",
        "duid": "duid-1",
        "ip": "203.0.113.7",
        "ua": "Mozilla/5.0",
        "tnuid": "nuid-1",
        "sid": SID,
        "vid": 3,
    }


BAD_CALLS: list[tuple[str, tuple[Any, ...], type[Exception]]] = [
    ("set_platform", ("desktop",), InvalidValueError),
    ("set_platform", (None,), InvalidValueError),
    ("set_user_id", (4.2,), InvalidTypeError),
    ("set_user_id", (True,), InvalidTypeError),
    ("set_user_id", ("",), InvalidValueError),
    ("set_screen_resolution", (0, 10), InvalidValueError),
    ("set_screen_resolution", (10, "10"), InvalidTypeError),
    ("set_screen_resolution", (1.5, 10), InvalidTypeError),
    ("set_viewport", (10, -1), InvalidValueError),
    ("set_viewport", (True, 10), InvalidTypeError),
    ("set_color_depth", ("24",), InvalidTypeError),
    ("set_color_depth", (-1,), InvalidValueError),
    ("set_timezone", (0,), InvalidTypeError),
    ("set_lang", (None,), InvalidTypeError),
    ("set_domain_user_id", (b"x",), InvalidTypeError),
    ("set_ip_address", ("",), InvalidValueError),
    ("set_useragent", (1,), InvalidTypeError),
    ("set_network_user_id", (None,), InvalidTypeError),
    ("set_domain_session_id", ("",), InvalidValueError),
    ("set_domain_session_id", (1,), InvalidTypeError),
    ("set_domain_session_index", (0,), InvalidValueError),
    ("set_domain_session_index", ("1",), InvalidTypeError),
]


@pytest.mark.parametrize(("method", "args", "error"), BAD_CALLS)
def test_bad_input_gets_a_clear_error(
    method: str, args: tuple[Any, ...], error: type[Exception]
) -> None:
    with pytest.raises(error, match=method):
        getattr(Subject(), method)(*args)


@pytest.mark.parametrize(("method", "args", "error"), BAD_CALLS)
def test_disabled_contracts_skip_the_checks(
    method: str, args: tuple[Any, ...], error: type[Exception]
) -> None:
    disable_contracts()
    assert getattr(Subject(), method)(*args) is not None


def test_an_int_user_id_is_sent_as_its_digits() -> None:
    """1.x code passes database keys as they are."""
    from snowplow_tracker import Tracker

    from .conftest import ListEmitter

    sink = ListEmitter()
    Tracker(sink, Subject().set_user_id(42)).track_page_view("http://x")
    assert sink.events[0]["uid"] == "42"
