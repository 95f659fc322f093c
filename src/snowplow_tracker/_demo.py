"""``snowplow-tracker demo``: every event type through every in-process emitter, to a collector.

It uses a collector already running on 127.0.0.1:9090 (``snowplow-tracker
collector``, or Snowplow Micro) if there is one, else starts its own on a free
port; it reads the results back through the Micro API, so it works with both.
"""

from __future__ import annotations

import importlib.util
import json
import sys
import textwrap
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional, TextIO

from ._redact import basic_auth, redact_url
from .emitters import AsyncEmitter, Emitter
from .subject import Subject
from .tracker import Tracker

DEFAULT_URL = "http://127.0.0.1:9090"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
PAGE_ID = "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d11"
INVALID = "invalid on purpose"


def _page_view(t: Tracker) -> None:
    t.track_page_view("http://www.example.com/paint?colour=magenta", "Magenta paint",
                      "http://search.example.com/?q=paint")  # fmt: skip


def _struct(t: Tracker) -> None:
    t.track_struct_event("products", "viewed product", "magenta paint", "tin", 7.99)


def _unstruct(t: Tracker) -> None:
    t.track_unstruct_event(
        {"schema": LINK_CLICK, "data": {"targetUrl": "http://www.example.com/ü"}},
        [{"schema": WEB_PAGE, "data": {"id": PAGE_ID}}],
    )


def _screen_view(t: Tracker) -> None:
    t.track_screen_view("title screen", "screen-1")


def _transaction(t: Tracker) -> None:
    t.track_ecommerce_transaction(
        "order-1", 35, "shop", 2.5, 4.99, "Leeds", "West Yorkshire", "UK", "GBP",
        items=[{"sku": "pbz0026", "price": 7.99, "quantity": 2, "name": "magenta paint"}],
    )  # fmt: skip


def _invalid(t: Tracker) -> None:
    # link_click requires targetUrl: the collector shows how a schema violation looks.
    t.track_unstruct_event({"schema": LINK_CLICK, "data": {"elementId": "buy-button"}})


@dataclass(frozen=True)
class Example:
    title: str
    track: Callable[[Tracker], None]
    events: int = 1
    column: str = ""  # the summary table's heading, short so the table fits 100 columns


EXAMPLES = [
    Example("page view", _page_view, column="page view"),
    Example("structured event", _struct, column="struct"),
    Example("self-describing event + entity", _unstruct, column="self-desc"),
    Example("screen view", _screen_view, column="screen view"),
    Example("transaction + item", _transaction, 2, column="transaction"),
    Example(INVALID, _invalid, column="invalid"),
]
CELL = 13  # "1 good, 1 bad"
WIDTH = 100  # the output fits a terminal this wide
EMITTERS: list[tuple[str, Callable[[str], Emitter]]] = [
    ("Emitter GET", lambda endpoint: Emitter(endpoint)),
    ("Emitter POST", lambda endpoint: Emitter(endpoint, method="post")),
    ("AsyncEmitter GET", lambda endpoint: AsyncEmitter(endpoint)),
    ("AsyncEmitter POST", lambda endpoint: AsyncEmitter(endpoint, method="post")),
]


def _asyncio_emitter(endpoint: str, method: str) -> Emitter:
    from .aio import AsyncioEmitter

    return AsyncioEmitter(endpoint, method=method)


if importlib.util.find_spec("httpx") is not None:  # the asyncio emitter needs the httpx extra
    EMITTERS += [
        ("AsyncioEmitter GET", lambda endpoint: _asyncio_emitter(endpoint, "get")),
        ("AsyncioEmitter POST", lambda endpoint: _asyncio_emitter(endpoint, "post")),
    ]


# -- finding a collector --------------------------------------------------------------------------


def _get_json(url: str, timeout: float = 5.0, data: Optional[bytes] = None) -> Any:
    url, authorization = basic_auth(url)
    request = urllib.request.Request(url, data=data)
    if authorization:
        request.add_header("Authorization", authorization)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def running_collector(url: str = DEFAULT_URL) -> Optional[str]:
    """``url`` if a Micro-compatible collector answers there, else None."""
    try:
        summary = _get_json(f"{url}/micro/all", timeout=0.5)
    except (OSError, ValueError):
        return None
    return url if isinstance(summary, dict) and "total" in summary else None


# -- the run ------------------------------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal, a single line otherwise."""

    def __init__(self, out: TextIO, total: int, enabled: bool) -> None:
        self.out, self.total, self.done = out, total, 0
        self.live = enabled and out.isatty()

    def step(self, label: str) -> None:
        self.done += 1
        if self.live:
            filled = 30 * self.done // self.total
            bar = "█" * filled + "░" * (30 - filled)
            self.out.write(f"\r  {bar} {self.done:>3}/{self.total}  {label:<56.56}")
            self.out.flush()

    def finish(self) -> None:
        if self.live:
            self.out.write("\r" + " " * 100 + "\r")
        self.out.write(f"  sent {self.done} tracking calls\n")


@dataclass
class Tally:
    """What arrived, per (emitter, example): good and bad counts, and bad messages."""

    good: dict[tuple[str, str], int] = field(default_factory=dict)
    bad: dict[tuple[str, str], int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.good.values()) + sum(self.bad.values())


def _send_everything(endpoint: str, run: str, progress: Progress) -> int:
    """Track every example through every emitter; return how many events that makes."""
    expected = 0
    for name, make in EMITTERS:
        emitter = make(endpoint)
        subject = Subject().set_platform("srv").set_user_id("demo-user")
        tracker = Tracker(emitter, subject, namespace=run, app_id=name)
        for example in EXAMPLES:
            # The app id names emitter and example, so the summary can tell them apart.
            tracker.standard_nv_pairs["aid"] = f"{name}|{example.title}"
            example.track(tracker)
            expected += example.events
            progress.step(f"{name}: {example.title}")
        tracker.flush()
    return expected


def _fetch(url: str, run: str) -> Tally:
    tally = Tally()
    for item in _get_json(f"{url}/micro/good"):
        event = item.get("event") or {}
        if event.get("name_tracker") == run:
            key = _key(event.get("app_id"))
            tally.good[key] = tally.good.get(key, 0) + 1
    for item in _get_json(f"{url}/micro/bad"):
        params = (item.get("rawEvent") or {}).get("parameters") or {}
        if params.get("tna") == run:
            key = _key(params.get("aid"))
            tally.bad[key] = tally.bad.get(key, 0) + 1
            tally.errors.append(_first_error(item))
    return tally


def _key(app_id: Any) -> tuple[str, str]:
    emitter, _, example = str(app_id).partition("|")
    return emitter, example


def _first_error(item: dict[str, Any]) -> str:
    try:
        row = json.loads(item["errors"][1])
        message = row["data"]["failure"]["messages"][0]
        reports = message.get("error", {}).get("dataReports") or [{}]
        return f"{message.get('schemaKey', '')}: {reports[0].get('message', message)}"
    except (LookupError, ValueError, AttributeError, TypeError):
        return str(item.get("errors"))[:200]


def _wait_for(url: str, run: str, expected: int, timeout: float = 15.0) -> Tally:
    deadline = time.monotonic() + timeout
    tally = _fetch(url, run)
    while tally.total < expected and time.monotonic() < deadline:
        time.sleep(0.05)
        tally = _fetch(url, run)
    return tally


def _cell(good: int, bad: int) -> str:
    parts = [f"{good} good"] * bool(good) + [f"{bad} bad"] * bool(bad)
    return ", ".join(parts) or "missing"


def _table(tally: Tally, out: TextIO) -> None:
    """One row per emitter, one column per kind of event: at most 99 characters wide."""
    width = max(len(name) for name, _ in EMITTERS) + 1
    out.write("\n" + " " * width + "".join(f"{e.column:>{CELL}}" for e in EXAMPLES) + "\n")
    for name, _ in EMITTERS:
        cells = [
            _cell(tally.good.get((name, e.title), 0), tally.bad.get((name, e.title), 0))
            for e in EXAMPLES
        ]
        out.write(f"{name:<{width}}" + "".join(f"{c:>{CELL}}" for c in cells) + "\n")


def _write_error(error: str, out: TextIO) -> None:
    """A bad event's schema on one line, its message wrapped below it."""
    schema, _, message = error.partition(": ") if error.startswith("iglu:") else ("", "", error)
    if schema:
        out.write(f"  bad: {schema}\n")
    first = "        " if schema else "  bad: "
    out.write(textwrap.fill(message, WIDTH, initial_indent=first, subsequent_indent=" " * 8))
    out.write("\n")


def run_demo(
    out: TextIO = sys.stdout,
    collector: Any = None,
    *,
    url: Optional[str] = None,
    progress: bool = True,
    keep: bool = False,
    wait: float = 15.0,
) -> int:
    """Run the demo; return 0 if every event arrived and only the deliberate one was bad."""
    own = None
    if collector is not None:
        url = collector.url
    elif url is None:
        url = running_collector()
        if url is None:
            from .collector import run_collector

            own = run_collector()
            url = own.url
            out.write(f"Started a local collector at {url}\n")
        else:
            out.write(f"Using the collector already running at {redact_url(url)}\n")
    try:
        return _run(url, out, progress, wait, own=own is not None, keep=keep)
    finally:
        if own is not None:
            own.stop()


def _run(url: str, out: TextIO, progress: bool, wait: float, *, own: bool, keep: bool) -> int:
    run = f"demo-{uuid.uuid4().hex[:8]}"
    endpoint = url.split("://", 1)[-1]
    bar = Progress(out, len(EMITTERS) * len(EXAMPLES), progress)
    out.write(f"Tracking {len(EXAMPLES)} kinds of event through {len(EMITTERS)} emitters "
              f"(namespace {run}):\n")  # fmt: skip
    expected = _send_everything(endpoint, run, bar)
    bar.finish()
    tally = _wait_for(url, run, expected, wait)
    _table(tally, out)
    good, bad = sum(tally.good.values()), sum(tally.bad.values())
    out.write(f"\n{tally.total} of {expected} events arrived: {good} good, {bad} bad\n")
    for error in sorted(set(tally.errors)):
        _write_error(error, out)
    out.write(f"\nSee them in the collector's UI: {redact_url(url)}/micro/ui\n")
    expected_bad = len(EMITTERS) * sum(e.events for e in EXAMPLES if e.title == INVALID)
    ok = tally.total == expected and bad == expected_bad
    if own and keep:
        out.write("The collector keeps running; press Ctrl-C to stop it.\n")
        out.flush()
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    elif own:
        out.write(
            "(This collector stops with the demo: run `snowplow-tracker collector` in another\n"
            "terminal first, or pass --keep, to browse the events afterwards.)\n"
        )
    return 0 if ok else 1


__all__ = ["EMITTERS", "EXAMPLES", "run_demo", "running_collector"]
