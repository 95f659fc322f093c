"""Our own distribution name, and the warning when a distribution that shares the import name
``snowplow_tracker`` is installed too (found by importlib.metadata, as pip would have left it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import snowplow_tracker
from snowplow_tracker._distribution import DISTRIBUTION


def _import_with(tmp_path: Path, name: str, version: str) -> subprocess.CompletedProcess[str]:
    """Import the package with a ``name`` distribution's metadata on sys.path."""
    dist_info = tmp_path / f"{name.replace('-', '_')}-{version}.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-c", "import snowplow_tracker"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "version"), [("snowplow-tracker", "1.1.0"), ("minimal-snowplow-tracker", "0.0.2")]
)
def test_a_conflicting_distribution_is_named_at_import(
    tmp_path: Path, name: str, version: str
) -> None:
    done = _import_with(tmp_path, name, version)
    assert done.returncode == 0, done.stderr
    assert "DistributionConflictWarning" in done.stderr
    assert f"{name} {version}" in done.stderr
    assert f"found in {tmp_path}" in done.stderr
    assert f"pip uninstall {name}" in done.stderr
    assert done.stderr.count("DistributionConflictWarning") == 1


def test_an_unrelated_distribution_is_not_a_conflict(tmp_path: Path) -> None:
    done = _import_with(tmp_path, "snowplow-analytics-sdk", "0.2.3")
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_this_environment_has_no_conflict_and_our_name_is_installed() -> None:
    import importlib.metadata

    from snowplow_tracker._distribution import installed_conflicts

    assert installed_conflicts() == []
    assert importlib.metadata.version(DISTRIBUTION) == snowplow_tracker.__version__
    assert DISTRIBUTION != "snowplow-tracker"
