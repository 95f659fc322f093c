"""The README's examples run as written against a real collector, and every event they send
arrives and validates (only the collector host is changed); its commands are the real ones."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from snowplow_tracker.collector import Collector

from .docs_blocks import REPO, Block, blocks

README = REPO / "README.md"
PYTHON = [b for b in blocks(README) if b.lang == "python"]


def _section(block: Block) -> str:
    text = README.read_text(encoding="utf-8")
    headings = [line for line in text[: text.index(block.body)].splitlines() if line[:3] == "## "]
    return headings[-1]


def test_usage_example_runs_and_every_event_validates(collector: Collector) -> None:
    [usage] = [b for b in PYTHON if _section(b) == "## Usage"]
    namespace: dict[str, Any] = {}
    usage.run(namespace, {'"collector.example.com"': f'"{collector.endpoint}"'})
    # one GET page view; then 5 events (screen view, struct, unstruct, transaction, item)
    # to each of three emitters: GET, POST and the AsyncEmitter
    collector.wait_for(16, timeout=10)
    assert collector.violations == []
    assert [(e.get("e"), e.errors) for e in collector.bad()] == []
    assert len(collector.events) == 16
    assert sorted(e.method for e in collector.events) == ["GET"] * 6 + ["POST"] * 10


@pytest.mark.parametrize(
    "block", [b for b in PYTHON if _section(b) != "## Usage"], ids=lambda b: f"line {b.line}"
)
def test_every_other_python_block_runs(block: Block, collector: Collector) -> None:
    block.run({}, {"collector.example.com": collector.endpoint})
    collector.wait_for(1, timeout=10)
    assert collector.violations == []
    assert [(e.get("e"), e.errors) for e in collector.bad()] == []
    assert collector.good()


def test_the_commands_in_the_readme_exist() -> None:
    """The two commands of the first lines, and every `snowplow-tracker <command>` it names."""
    text = README.read_text(encoding="utf-8")
    assert text.splitlines()[3].startswith("bash scripts/demo.sh   # set up .venv")
    assert text.splitlines()[4].startswith("bash scripts/test.sh   # set up .venv")
    for script in ("scripts/demo.sh", "scripts/test.sh"):
        assert (REPO / script).is_file()
    assert len(text.splitlines()) < 200
    help_text = subprocess.run(
        [sys.executable, "-m", "snowplow_tracker.cli", "--help"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for command in ("demo", "collector", "redis-worker"):
        assert command in help_text
