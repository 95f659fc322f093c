"""bench/middleware.py runs end to end (quick mode) for every framework; timings are not checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def test_the_middleware_benchmark_reports_every_framework(tmp_path: Path) -> None:
    for module in ("flask", "django", "starlette"):
        pytest.importorskip(module)
    out = tmp_path / "middleware"
    command = [sys.executable, str(REPO / "bench" / "middleware.py"), "--quick", "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.with_suffix(".json").read_text())["results"]
    assert len(results) == 4
    for result in results.values():
        assert result["requests"] == 300 and result["rounds"] == 1
        assert result["bare_median_us"] > 0 and result["with_median_us"] > 0
    assert "| added median (µs) |" in out.with_suffix(".md").read_text()
