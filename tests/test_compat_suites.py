"""What test suites written for 0.5.0 and 1.x do still works: they build emitters at import,
start ``httmock`` around the tracking calls, freeze the clock with ``freezegun`` and patch
``Tracker`` methods with ``unittest.mock``."""

from __future__ import annotations

from typing import Any
from unittest import mock
from urllib.parse import parse_qs

import pytest

from snowplow_tracker import Emitter, Tracker
from snowplow_tracker.events import PageView

httmock = pytest.importorskip("httmock")
freezegun = pytest.importorskip("freezegun")

# Built at import, before any double is active, as those suites' module-level emitters are.
GET_EMITTER = Emitter("localhost")
POST_EMITTER = Emitter("localhost", method="post", buffer_size=2)


def test_httmock_started_after_the_emitters_were_built_sees_every_request() -> None:
    seen: list[Any] = []

    @httmock.all_requests  # type: ignore[misc]
    def answer(url: Any, request: Any) -> dict[str, Any]:
        seen.append((request.method, url.path, url.query, request.body))
        return {"status_code": 200}

    with httmock.HTTMock(answer), freezegun.freeze_time("2021-04-19 00:00:01"):
        Tracker("cf", [GET_EMITTER, POST_EMITTER]).track_page_view("http://x", tstamp=5)
        Tracker("cf", POST_EMITTER).track(PageView("http://y"))
    (get, post) = seen
    assert get[:2] == ("GET", "/i")
    query = parse_qs(get[2])
    assert (query["dtm"], query["ttm"], query["url"]) == (["1618790401000"], ["5"], ["http://x"])
    assert post[:2] == ("POST", "/com.snowplowanalytics.snowplow/tp2")
    assert b'"dtm":"1618790401000"' in post[3] and b'"url":"http://y"' in post[3]


def test_patching_tracker_methods_sees_every_event() -> None:
    with mock.patch.object(Tracker, "track") as track:
        Tracker("cf", GET_EMITTER).track_struct_event("c", "a")
    (event,) = (call.kwargs["event"] for call in track.call_args_list)
    assert event.payload.nv_pairs == {"e": "se", "se_ca": "c", "se_ac": "a"}
    with mock.patch.object(Tracker, "get_uuid", return_value="fixed"):
        payload = Tracker("cf", GET_EMITTER).complete_payload(PageView("http://x"))
    assert payload.nv_pairs["eid"] == "fixed"
