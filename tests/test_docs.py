"""The documentation site: it builds with ``mkdocs build --strict``, every Python block of every
page runs against a real collector (files the reader is told to create are created first), the
pytest example passes as written, and every install line names our distribution."""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from snowplow_tracker.collector import Collector

from .docs_blocks import DOCS, REPO, blocks, run_page, write_files

PAGES = sorted(DOCS.rglob("*.md"))
NEEDS_REDIS = {"redis-celery.md"}  # their blocks use the Redis server on localhost:6379


def test_every_page_is_in_the_site_and_has_been_found() -> None:
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    assert len(PAGES) >= 12
    for page in PAGES:
        name = page.relative_to(DOCS).as_posix()
        assert f": {name}" in nav, name


@pytest.fixture
def _package_logger_restored() -> Iterator[None]:
    """The logging page adds a handler to the package logger, as it tells readers to."""
    logger = logging.getLogger("snowplow_tracker")
    handlers = list(logger.handlers)
    yield
    logger.handlers[:] = handlers


@pytest.mark.usefixtures("_package_logger_restored")
@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(DOCS).as_posix())
def test_the_python_blocks_of_each_page_run(
    page: Path,
    collector: Collector,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    page_blocks = blocks(page)
    replace = {"collector.example.com": collector.endpoint}
    if page.name in NEEDS_REDIS:
        pytest.importorskip("celery", reason="the celery extra is not installed")
        key = request.getfixturevalue("key")  # skips, saying why, without a Redis server
        replace['"snowplow_events"'] = repr(key)
    write_files(page_blocks, tmp_path)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    run_page(page_blocks, replace)
    collector.wait_for(len(collector.events), timeout=5)
    assert collector.violations == []
    assert [(e.get("e"), e.errors) for e in collector.bad()] == []


def test_the_pytest_example_passes_as_written(tmp_path: Path) -> None:
    page = blocks(DOCS / "testing.md")
    files = [b.title for b in page if b.title]
    assert "pytest.ini" in files and any(f.startswith("schemas/") for f in files), files
    write_files(page, tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tests = sum(b.body.count("\ndef test_") for b in page if (b.title or "").startswith("test_"))
    assert f"{tests} passed" in done.stdout, done.stdout


def test_install_lines_name_our_distribution() -> None:
    """A user with a checkout, a wheel or (later) PyPI gets this package, never Snowplow's."""
    for path in [REPO / "README.md", *PAGES]:
        for line in path.read_text(encoding="utf-8").splitlines():
            for target in re.findall(r"pip install (?:-e )?((?:\"[^\"]*\"|'[^']*'|\S)+)", line):
                target = target.strip("'\"`")
                assert target.startswith(("snowplow-event-tracker", ".", "$(ls dist/")), (
                    f"{path.name}: {line}"
                )


@pytest.mark.skipif(
    importlib.util.find_spec("mkdocs") is None,
    reason="mkdocs is not installed: pip install '.[docs]'",
)
def test_the_site_builds_with_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    reference = (tmp_path / "site" / "reference" / "index.html").read_text(encoding="utf-8")
    assert "track_page_view" in reference and "RetryPolicy" in reference
    changelog = (tmp_path / "site" / "changelog" / "index.html").read_text(encoding="utf-8")
    assert "Unreleased" in changelog
