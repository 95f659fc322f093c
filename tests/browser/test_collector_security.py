"""The collector process (the CLI) seen from web pages in a real headless Chromium.

A page on another origin may send events but not read the Micro API; the UI shows
secret headers redacted; Snowplow's own JavaScript tracker (from the npm registry,
installed by scripts/services.sh) keeps its network user id across an anonymous period.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from ..collector_cli import cli_collector, static_site
from .conftest import CHROMIUM

sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is missing")
if not Path(CHROMIUM).exists():
    pytest.skip(
        "no Chromium at /usr/bin/chromium: apt-get install -y chromium (scripts/services.sh "
        "installs it in CI)",
        allow_module_level=True,
    )
ROOT = Path(__file__).resolve().parents[2]
TRACKER_JS = Path(
    os.environ.get("SNOWPLOW_BROWSER_TRACKER")
    or ROOT / "test-artifacts/js/node_modules/@snowplow/browser-tracker/dist/index.umd.min.js"
)
SECRET = "TOPSECRET-9b2e"
PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
expect = sync_api.expect

# Runs in the page: send one event to the collector, then try to read the Micro API.
SEND_AND_READ = (
    """async (collector) => {
  const attempt = async (path, init) => {
    try {
      const response = await fetch(collector + path, init);
      return `read ${response.status}: ${await response.text()}`;
    } catch (error) {
      return `refused: ${error.name}`;
    }
  };
  const body = JSON.stringify({schema: "PAYLOAD_DATA", data: [{e: "pv", p: "web", tv: "js-test",
                                                     url: location.href}]});
  const sent = await fetch(collector + "/com.snowplowanalytics.snowplow/tp2", {
    method: "POST", credentials: "include", body,
    headers: {"Content-Type": "application/json; charset=UTF-8"}});
  return {
    sent: `${sent.status} ${await sent.text()}`,
    withCredentials: await attempt("/micro/good", {credentials: "include"}),
    plain: await attempt("/micro/all", {}),
    reset: await attempt("/micro/reset", {method: "POST"}),
  };
}"""
).replace("PAYLOAD_DATA", PAYLOAD_DATA)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[str]:
    """A web page on an origin of its own (another loopback port than the collector's)."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "index.html").write_text("<!doctype html><title>A shop</title><p>shop</p>")
    if TRACKER_JS.exists():
        shutil.copy(TRACKER_JS, folder / "sp.js")
    with static_site(folder) as origin:
        yield origin


def _good(url: str, count: int) -> list[Any]:
    deadline = time.monotonic() + 10
    while True:
        good = requests.get(f"{url}/micro/good", timeout=5).json()
        if len(good) >= count or time.monotonic() > deadline:
            return list(reversed(good))  # oldest first
        time.sleep(0.05)


def test_a_foreign_page_sends_events_but_cannot_read_the_micro_api(
    page: Any, site: str, tmp_path: Path
) -> None:
    with cli_collector(tmp_path, "--quiet") as collector:
        page.goto(f"{site}/index.html")
        result = page.evaluate(SEND_AND_READ, collector.url)
        assert result["sent"] == "200 ok"
        assert result["withCredentials"] == "refused: TypeError"
        assert result["plain"] == "refused: TypeError"
        (event,) = _good(collector.url, 1)  # the event arrived, and the reset did not happen
        assert event["event"]["page_url"] == f"{site}/index.html"
    # An origin given with --allow-origin may read it (a test suite running in a browser).
    with cli_collector(tmp_path, "--quiet", "--allow-origin", site) as allowing:
        result = page.evaluate(SEND_AND_READ, allowing.url)
        assert result["withCredentials"].startswith("read 200: [")
        assert result["plain"] == 'read 200: {"total": 1, "good": 1, "bad": 0}'


def test_the_ui_shows_secret_headers_redacted(page: Any, tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"}
    with cli_collector(tmp_path, "--quiet") as collector:
        requests.get(f"{collector.url}/i?e=zz&p=srv&tv=t", headers=headers, timeout=5)
        page.goto(f"{collector.url}/micro/ui")
        page.locator("tr.badrow").first.click()
        page.get_by_text("Bad row (Snowplow format)").click()
        row = page.locator("details pre")
        expect(row).to_contain_text("authorization: Bearer <redacted>")
        expect(row).to_contain_text("cookie: session=<redacted>")
        assert SECRET not in page.content()


@pytest.mark.skipif(
    not TRACKER_JS.exists(),
    reason=f"no Snowplow browser tracker at {TRACKER_JS}: scripts/services.sh installs "
    "@snowplow/browser-tracker from the npm registry (needs npm)",
)
def test_the_browser_tracker_keeps_its_network_user_id_across_an_anonymous_period(
    page: Any, site: str, tmp_path: Path
) -> None:
    with cli_collector(tmp_path, "--quiet") as collector:
        page.goto(f"{site}/index.html")
        page.add_script_tag(url=f"{site}/sp.js")
        page.evaluate(
            """(collector) => {
                 const sp = window.snowplowBrowserTracking;
                 sp.newTracker("t", collector, {appId: "shop", eventMethod: "post",
                                                bufferSize: 1, contexts: {webPage: false}});
                 sp.trackPageView({title: "before consent"});
               }""",
            collector.url,
        )
        first = _good(collector.url, 1)[0]
        page.evaluate(
            """() => {
                 const sp = window.snowplowBrowserTracking;
                 sp.enableAnonymousTracking({options: {withServerAnonymisation: true}});
                 sp.trackPageView({title: "anonymous"});
               }"""
        )
        anonymous = _good(collector.url, 2)[1]
        page.evaluate(
            """() => {
                 const sp = window.snowplowBrowserTracking;
                 sp.disableAnonymousTracking();
                 sp.trackPageView({title: "after consent"});
               }"""
        )
        events = _good(collector.url, 3)
    assert [e["event"]["page_title"] for e in events] == ["before consent", "anonymous",
                                                          "after consent"]  # fmt: skip
    nuid = first["event"]["network_userid"]
    assert len(nuid) == 36 and nuid != "00000000-0000-0000-0000-000000000000"
    assert anonymous["event"]["network_userid"] == "00000000-0000-0000-0000-000000000000"
    assert anonymous["event"]["user_ipaddress"] is None
    assert "SP-Anonymous: *".lower() in [
        h.lower() for h in anonymous["rawEvent"]["context"]["headers"]
    ]
    assert events[2]["event"]["network_userid"] == nuid
