"""The collector's web UI in a real headless Chromium (system package), driven by Playwright."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from snowplow_tracker import Emitter, Tracker
from snowplow_tracker.collector import Collector

from .conftest import CHROMIUM

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "no Chromium at /usr/bin/chromium: apt-get install -y chromium (scripts/services.sh "
        "installs it in CI)",
        allow_module_level=True,
    )
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
expect = sync_api.expect


def _track(collector: Collector) -> Tracker:
    tracker = Tracker(Emitter(collector.endpoint), namespace="web", app_id="shop")
    tracker.track_page_view("http://shop.example/paint", "Magenta paint")
    tracker.track_struct_event("basket", "add", "magenta paint", "tin", 7.99)
    tracker.track_unstruct_event(
        {"schema": LINK_CLICK, "data": {"targetUrl": "http://shop.example/checkout"}},
        [{"schema": WEB_PAGE, "data": {"id": "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d11"}}],
    )
    tracker.track_unstruct_event({"schema": LINK_CLICK, "data": {"elementId": "buy"}})
    return tracker


def test_ui_lists_events_live_opens_filters_and_resets(page: Any) -> None:
    with Collector() as collector:
        tracker = _track(collector)
        page.goto(collector.ui_url)
        rows = page.get_by_test_id("event-row")
        expect(rows).to_have_count(4)
        expect(page.locator("#n-good")).to_have_text("3")
        expect(page.locator("#n-bad")).to_have_text("1")

        # Events arrive while the page is open.
        Tracker(Emitter(collector.endpoint), app_id="admin").track_page_view("http://admin/")
        tracker.track_screen_view("basket")
        expect(rows).to_have_count(6)
        expect(page.locator("#n-total")).to_have_text("6")

        # The bad one shows its exact validation error.
        page.locator("tr.badrow").first.click()
        expect(page.get_by_test_id("detail-status")).to_contain_text("schema_violations")
        expect(page.get_by_test_id("detail-errors")).to_contain_text(
            "'targetUrl' is a required property"
        )

        # A good one shows decoded fields and its entity.
        page.locator("tr.goodrow", has_text="link_click").first.click()
        expect(page.get_by_test_id("detail-status")).to_have_text("valid")
        expect(page.get_by_test_id("detail-entity")).to_contain_text("web_page")
        expect(page.get_by_test_id("detail-fields")).to_contain_text("link_click")

        # Filters: by event type, by app id, and the Bad tab.
        page.get_by_test_id("filter-event-type").select_option("page_view")
        expect(rows).to_have_count(2)
        page.get_by_test_id("filter-app-id").select_option("admin")
        expect(rows).to_have_count(1)
        page.get_by_test_id("filter-event-type").select_option("")
        page.get_by_test_id("filter-app-id").select_option("")
        page.get_by_test_id("filter-schema").select_option(LINK_CLICK)
        expect(rows).to_have_count(2)
        page.get_by_test_id("filter-schema").select_option("")
        page.get_by_role("button", name="Bad", exact=True).click()
        expect(rows).to_have_count(1)
        page.get_by_role("button", name="All", exact=True).click()
        expect(rows).to_have_count(6)

        page.locator("tr.goodrow", has_text="link_click").first.click()
        expect(page.get_by_test_id("detail-entity")).to_be_visible()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "collector-ui.png"))
        page.locator("tr.badrow").first.click()
        expect(page.get_by_test_id("detail-errors")).to_be_visible()
        page.screenshot(path=str(ARTIFACTS / "collector-ui-bad.png"))

        page.get_by_test_id("reset").click()
        expect(rows).to_have_count(0)
        expect(page.locator("#n-total")).to_have_text("0")
        assert collector.store.counts() == (0, 0)
        expect(page.locator("#list-empty")).to_contain_text("Waiting for events")


def test_ui_escapes_what_it_shows(page: Any) -> None:
    with Collector() as collector:
        Tracker(Emitter(collector.endpoint)).track_page_view(
            "http://x/", "<img src=x onerror=\"document.title='pwned'\">"
        )
        page.goto(collector.ui_url)
        expect(page.get_by_test_id("event-row")).to_have_count(1)
        page.get_by_test_id("event-row").first.click()
        expect(page.get_by_test_id("detail-fields")).to_contain_text("<img src=x")
        assert page.title() == "Snowplow local collector"
