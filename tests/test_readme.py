"""The README's usage example runs as written against a real collector, and every event it sends
arrives and validates (only the collector host is changed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from snowplow_tracker.collector import Collector

README = Path(__file__).resolve().parents[1] / "README.md"


def usage_example(index: int = 0) -> str:
    section = README.read_text(encoding="utf-8").split("## Usage", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) > index, "the Usage section lacks a Python example"
    return str(blocks[index])


def test_usage_example_runs_and_every_event_validates(collector: Collector) -> None:
    source = usage_example().replace('"collector.example.com"', f'"{collector.endpoint}"')
    namespace: dict[str, Any] = {}
    exec(compile(source, "README.md", "exec"), namespace)
    # one GET page view; then 5 events (screen view, struct, unstruct, transaction, item)
    # to each of three emitters: GET, POST and the AsyncEmitter
    collector.wait_for(16, timeout=10)
    assert collector.violations == []
    assert [(e.get("e"), e.errors) for e in collector.bad()] == []
    assert len(collector.events) == 16
    assert sorted(e.method for e in collector.events) == ["GET"] * 6 + ["POST"] * 10


def test_the_1_x_usage_example_runs_and_every_event_validates(collector: Collector) -> None:
    from snowplow_tracker import Snowplow

    source = usage_example(1).replace('"https://collector.example.com"', f'"{collector.url}"')
    assert collector.url in source
    try:
        exec(compile(source, "README.md", "exec"), {})
        events = collector.wait_for(3, timeout=10)
        assert [(e.raw["e"], e.errors) for e in events] == [("pv", []), ("se", []), ("ue", [])]
        assert events[1].raw["uid"] == "u-42" and events[1].raw["ttm"] == "1700000000000"
        assert {e.method for e in events} == {"POST"}
    finally:
        Snowplow.reset()
