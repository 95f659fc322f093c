"""snowplow_tracker.testing and the snowplow_collector pytest fixture."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from snowplow_tracker import Emitter, Tracker
from snowplow_tracker.collector import Collector
from snowplow_tracker.exceptions import InvalidValueError
from snowplow_tracker.testing import CapturingEmitter, capture_events

LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"

pytest_plugins = ["pytester"]


def test_capture_events_refuses_what_the_emitters_refuse() -> None:
    """Captured tracking fails where real tracking would: text that cannot be UTF-8 is
    refused at the call, naming the field, with no event captured."""
    refused = pytest.raises(InvalidValueError, match="page must be text that can be sent")
    with capture_events() as events, refused:
        Tracker(Emitter("127.0.0.1:9")).track_page_view("http://x", "\udcff")
    assert events == []


def test_capturing_emitter_decodes_and_validates() -> None:
    emitter = CapturingEmitter()
    tracker = Tracker(emitter, namespace="ns", app_id="shop")
    tracker.track_unstruct_event(
        {"schema": LINK_CLICK, "data": {"targetUrl": "http://x"}},
        [{"schema": WEB_PAGE, "data": {"id": "not-a-uuid"}}],
    )
    tracker.track_page_view("http://x")
    click, page_view = emitter.events
    assert (click.event_type, click.schema, click.data) == (
        "unstruct", LINK_CLICK, {"targetUrl": "http://x"},
    )  # fmt: skip
    assert click.context_schemas == [WEB_PAGE]
    assert not click.valid
    assert "does not match" in click.errors[0]
    assert page_view.valid
    assert page_view["url"] == "http://x"
    assert page_view.get("aid") == "shop"
    assert emitter.good() == [page_view]
    assert emitter.bad() == [click]
    emitter.clear()
    assert emitter.events == []


def test_capturing_emitter_can_skip_validation() -> None:
    emitter = CapturingEmitter(validate=False)
    Tracker(emitter).track_unstruct_event({"schema": "iglu:com.acme/x/jsonschema/1-0-0",
                                            "data": {}})  # fmt: skip
    assert emitter.events[0].valid is None  # not validated: neither good nor bad
    assert emitter.good() == emitter.bad() == []
    assert emitter.events[0].schema == "iglu:com.acme/x/jsonschema/1-0-0"


def test_capture_events_catches_trackers_made_elsewhere_without_sending() -> None:
    with Collector() as collector:
        app_tracker = Tracker(Emitter(collector.endpoint), app_id="app")  # made "at import"
        with capture_events() as events:
            app_tracker.track_struct_event("shop", "buy")
            worker = threading.Thread(target=app_tracker.track_page_view, args=("http://x",))
            worker.start()
            item = {"sku": "s", "price": 1, "quantity": 1}
            app_tracker.track_ecommerce_transaction("o-1", 10, items=[item])
            worker.join()
        assert collector.requests == []  # nothing was sent
        assert sorted(e.event_type or "" for e in events) == [
            "page_view", "struct", "transaction", "transaction_item",
        ]  # fmt: skip
        assert all(e.valid for e in events)
        app_tracker.track_page_view("http://after")  # the patch is gone
        assert len(collector.good()) == 1


def test_capture_events_can_also_send() -> None:
    with Collector() as collector:
        tracker = Tracker(Emitter(collector.endpoint))
        with capture_events(send=True) as events:
            tracker.track_page_view("http://x")
        assert len(events) == 1
        assert len(collector.good()) == 1


def test_snowplow_collector_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        from snowplow_tracker import Emitter, Tracker

        def test_first(snowplow_collector):
            Tracker(Emitter(snowplow_collector.endpoint)).track_page_view("http://x")
            assert len(snowplow_collector.good()) == 1
            assert snowplow_collector.url.startswith("http://127.0.0.1:")

        def test_second_starts_empty(snowplow_collector):
            assert snowplow_collector.good() == []
            assert snowplow_collector.bad() == []
            snowplow_collector.respond_with(500)

        def test_third_answers_200_again(snowplow_collector):
            Tracker(Emitter(snowplow_collector.endpoint)).track_page_view("http://x")
            assert len(snowplow_collector.good()) == 1
        """
    )
    # pytest-asyncio (a dev dependency) is not needed here and would warn about its settings.
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=3)


def test_importing_the_package_and_testing_loads_no_collector_dependency() -> None:
    code = (
        "import sys, snowplow_tracker, snowplow_tracker.testing, snowplow_tracker_pytest\n"
        "heavy = {'uvicorn', 'httptools', 'fastjsonschema', 'jsonschema', 'sqlite3'}\n"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
    )
    # Coverage measurement of child processes would load sqlite3 itself: leave it out here.
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVERAGE_")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    assert result.stdout.strip() == "[]"
