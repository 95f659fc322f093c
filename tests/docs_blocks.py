"""The code blocks of the README and of docs/*.md, as the tests run them.

A block is a fenced code block at the start of a line. One with a ``title="path"`` is a file
the reader is told to create (written to a scratch directory before the page's other blocks
run); a Python block without one is run, in order, in one namespace per page. A block right
after the comment ``<!-- api: 1.x -->`` uses the 1.x API (event classes,
``Snowplow.create_tracker``, ``EmitterConfiguration``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"

_FENCE = re.compile(
    r"^(?P<api><!-- api: 1\.x -->\n)?```(?P<lang>[\w-]*)(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$",
    re.M | re.S,
)
_TITLE = re.compile(r'title="([^"]+)"')


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the block's first line of code
    lang: str
    title: str | None
    body: str
    api_1x: bool

    def run(self, namespace: dict[str, Any], replace: Mapping[str, str]) -> None:
        """Run a Python block; tracebacks point at its lines in the Markdown file."""
        source = self.body
        for old, new in replace.items():
            source = source.replace(old, new)
        exec(compile("\n" * (self.line - 1) + source, str(self.path), "exec"), namespace)


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        title = _TITLE.search(match["info"])
        line = text.count("\n", 0, match.start("body")) + 1
        found.append(
            Block(path, line, match["lang"], title and title[1], match["body"], bool(match["api"]))
        )
    return found


def write_files(page: list[Block], directory: Path) -> None:
    for block in page:
        if block.title:
            target = directory / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.body, encoding="utf-8")


def run_page(page: list[Block], replace: Mapping[str, str]) -> dict[str, Any]:
    """Run the page's untitled Python blocks in order, in one namespace, and each Python file it
    shows (a configuration module) on its own, except test files (pytest runs those); return
    the page's namespace."""
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in page:
        if block.lang != "python" or Path(block.title or "x").name.startswith("test_"):
            continue
        block.run(namespace if not block.title else {"__name__": "__file__"}, replace)
    return namespace
