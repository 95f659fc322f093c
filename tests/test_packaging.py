"""The distributions: the sdist carries LICENSE and the whole test suite, which collects and
(a fast, representative part of it) passes from the unpacked sdist; the wheel, installed by its
name in a fresh virtual environment, runs the collector, the demo and the documented pytest
example, and reports a missing extra in one line."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
import requests

from .docs_blocks import DOCS, REPO, blocks, write_files

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("build") is None,
    reason="the build package is not installed: pip install '.[dev]'",
)

# Run from the unpacked sdist: fast files that together touch every part of the package
# (tracker, emitters over HTTP, collector, CLI, logging, docs, seeds), about 15 s.
SDIST_SUBSET = [
    "tests/test_payload.py",
    "tests/test_subject.py",
    "tests/test_seeds.py",
    "tests/test_wire.py",
    "tests/test_readme.py",
    "tests/test_docs.py",
    "tests/test_logging_output.py",
    "tests/test_cli_messages.py",
    "tests/test_exports.py",
    "tests/test_distribution.py",
    "tests/test_testing_helpers.py",
    "tests/test_capture_without_collector.py",
]


def _env() -> dict[str, str]:
    """The environment without this run's coverage and Python path settings."""
    drop = ("COVERAGE_", "PYTHONPATH", "VIRTUAL_ENV", "PYTEST_")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _run(*command: str | Path, cwd: Path, timeout: float = 300, **env: str) -> str:
    done = subprocess.run(
        [str(part) for part in command], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**_env(), **env},
    )  # fmt: skip
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist, and the wheel built from it, as `python -m build` makes them."""
    out = tmp_path_factory.mktemp("dist")
    _run(sys.executable, "-m", "build", "--outdir", out, REPO, cwd=REPO)
    [sdist] = out.glob("snowplow_event_tracker-*.tar.gz")
    [wheel] = out.glob("snowplow_event_tracker-*-py3-none-any.whl")
    return sdist, wheel


@pytest.fixture(scope="module")
def unpacked(dists: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("sdist")
    with tarfile.open(dists[0]) as archive:
        archive.extractall(target, filter="data") if hasattr(
            tarfile, "data_filter"
        ) else archive.extractall(target)  # fmt: skip
    [root] = target.iterdir()
    return root


def _files(root: Path, under: str) -> set[str]:
    return {
        str(p.relative_to(root))
        for p in (root / under).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts
    }


def test_both_distributions_carry_the_license(dists: tuple[Path, Path], unpacked: Path) -> None:
    assert "Apache License" in (unpacked / "LICENSE").read_text(encoding="utf-8")
    with zipfile.ZipFile(dists[1]) as wheel:
        names = wheel.namelist()
        [license_file] = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert "Version 2.0" in wheel.read(license_file).decode()
        metadata = wheel.read(next(n for n in names if n.endswith("METADATA"))).decode()
    assert "Name: snowplow-event-tracker" in metadata
    assert "License-Expression: Apache-2.0" in metadata


def test_the_sdist_has_the_whole_test_suite_and_what_it_reads(unpacked: Path) -> None:
    for part in ("tests", "docs", "bench", "scripts"):
        missing = _files(REPO, part) - _files(unpacked, part)
        assert not {m for m in missing if not m.startswith("bench/.venv")}, missing
    for name in ("README.md", "CHANGELOG.md", "mkdocs.yml", "pyproject.toml"):
        assert (unpacked / name).is_file(), name


def test_the_sdist_tests_collect_and_pass_from_the_unpacked_sdist(unpacked: Path) -> None:
    """Every test file collects; the subset passes, importing the sdist's own code."""
    src = str(unpacked / "src")
    collected = _run(
        sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
        cwd=unpacked, PYTHONPATH=src,
    )  # fmt: skip
    files = {line.split("::", 1)[0] for line in collected.splitlines() if "::" in line}
    assert files == _files(unpacked, "tests") & {
        f for f in _files(unpacked, "tests") if Path(f).name.startswith("test_")
    }
    check = "import snowplow_tracker, sys; print(snowplow_tracker.__file__)"
    where = _run(sys.executable, "-c", check, cwd=unpacked, PYTHONPATH=src)
    assert where.startswith(src), where
    out = _run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *SDIST_SUBSET,
        cwd=unpacked, PYTHONPATH=src,
    )  # fmt: skip
    assert " passed" in out and "failed" not in out and "error" not in out, out
    assert "../shared/seeds is not beside the repository" in out  # the one skip it needs


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("venv")
    _run(sys.executable, "-m", "venv", path, cwd=path)
    return path


def test_the_wheel_in_a_fresh_virtualenv(
    dists: tuple[Path, Path], venv: Path, tmp_path: Path
) -> None:
    """Installed by its name as the README says, with dependencies from PyPI."""
    python, tool = venv / "bin" / "python", venv / "bin" / "snowplow-tracker"
    pip = (python, "-m", "pip", "install", "-q", "--disable-pip-version-check")
    _run(*pip, dists[1], cwd=tmp_path)
    missing = subprocess.run(
        [tool, "collector"], capture_output=True, text=True, timeout=60, env=_env()
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert "pip install 'snowplow-event-tracker[collector]'" in missing.stderr

    _run(*pip, f"{dists[1]}[collector]", "pytest", cwd=tmp_path)
    version = _run(tool, "--version", cwd=tmp_path).strip()
    assert version.startswith("snowplow-event-tracker ")
    _collector_and_demo(tool, tmp_path)
    write_files(blocks(DOCS / "testing.md"), tmp_path)
    out = _run(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=tmp_path)
    assert " passed" in out and "failed" not in out, out


def _collector_and_demo(tool: Path, cwd: Path) -> None:
    """The collector command serves; the demo sends into it (not into one on port 9090 that
    someone else may be running)."""
    with subprocess.Popen(
        [tool, "collector", "--port", "0", "--memory", "--quiet"],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=_env(),
    ) as process:  # fmt: skip
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            assert first.startswith("Collector listening on http://127.0.0.1:"), first
            url = first.split()[3]
            assert requests.get(f"{url}/health", timeout=10).status_code == 200
            demo = _run(tool, "demo", "--no-progress", "--collector", url, cwd=cwd, timeout=120)
            assert "28 of 28 events arrived: 24 good, 4 bad" in demo, demo  # 4 emitters, no httpx
            assert requests.get(f"{url}/micro/all", timeout=10).json()["total"] == 28
        finally:
            process.terminate()
            assert process.wait(timeout=30) == 0
