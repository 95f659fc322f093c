"""``snowplow-tracker demo``: the release-note examples against a local collector."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from typing import TextIO

from .collector import Collector, run_collector
from .emitters import AsyncEmitter, Emitter
from .subject import Subject
from .tracker import Tracker

WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"


def _subjects_example(endpoint: str) -> None:
    e = Emitter(endpoint)
    t = Tracker(emitter=e, namespace="cf", app_id="CF63A")
    s1 = Subject()
    s1.set_platform("pc")
    s1.set_user_id("0a78f2867de")
    t.set_subject(s1)
    t.track_page_view("http://www.example.com")
    s2 = Subject()
    s2.set_platform("mob").set_user_id("0b08f8be3f1")
    t.set_subject(s2)
    t.track_page_view("http://www.example.com")


def _multiple_emitters_example(endpoint: str) -> None:
    get_emitter = Emitter(endpoint)
    post_emitter = Emitter(endpoint, method="post")
    t = Tracker([get_emitter, post_emitter], namespace="cf", app_id="my-app-id")
    t.add_emitter(AsyncEmitter(endpoint, method="post"))
    t.track_screen_view("title screen").track_struct_event(
        "products", "viewed product", "magenta paint"
    )
    t.track_unstruct_event(
        {"schema": LINK_CLICK, "data": {"targetUrl": "http://www.example.com/ü"}},
        [{"schema": WEB_PAGE, "data": {"id": "5a0c4ef9-9a43-4b4b-9e2f-2f0a6b3c7d11"}}],
    )
    t.track_ecommerce_transaction(
        "order-1", 35, currency="GBP", items=[{"sku": "pbz0026", "price": 7.99, "quantity": 2}]
    )
    t.flush()


EXAMPLES: list[tuple[str, Callable[[str], None]]] = [
    ("0.4.0: two subjects on one tracker", _subjects_example),
    ("0.5.0: GET, POST and async emitters on one tracker", _multiple_emitters_example),
]


def run_demo(out: TextIO = sys.stdout, collector: Collector | None = None) -> int:
    """Run every example, print what arrived; return 0 if every event validated."""
    own = collector is None
    collector = collector if collector is not None else run_collector()
    try:
        out.write(f"Local collector listening on {collector.url}\n")
        for title, example in EXAMPLES:
            out.write(f"  running example: {title}\n")
            example(collector.endpoint)
        return _summary(collector, out)
    finally:
        if own:
            collector.stop()


def _summary(collector: Collector, out: TextIO) -> int:
    counts: Counter[tuple[str, str, bool]] = Counter(
        (event.method, event.get("e", "?"), event.valid) for event in collector.events
    )
    out.write(f"\n{'method':<7}{'event':<7}{'valid':<7}count\n")
    for (method, kind, valid), count in sorted(counts.items()):
        out.write(f"{method:<7}{kind:<7}{'yes' if valid else 'NO':<7}{count}\n")
    bad = collector.bad()
    for event in bad:
        out.write(f"invalid {event.get('e')} event: {'; '.join(event.errors)}\n")
    total = len(collector.events)
    out.write(f"\n{total} events arrived, {total - len(bad)} valid, {len(bad)} invalid\n")
    return 1 if bad or collector.violations or not total else 0
