"""The ``snowplow-tracker`` command: ``demo`` and ``collector``."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from snowplow_tracker._demo import EMITTERS, EXAMPLES, run_demo, running_collector
from snowplow_tracker.cli import main
from snowplow_tracker.collector import Collector

EVENTS_PER_EMITTER = sum(example.events for example in EXAMPLES)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_demo_with_its_own_collector_reports_every_event() -> None:
    out = Terminal()
    assert run_demo(out) == 0
    text = out.getvalue()
    total = EVENTS_PER_EMITTER * len(EMITTERS)
    assert "Started a local collector at http://127.0.0.1:" in text
    bad = len(EMITTERS)  # one invalid on purpose per emitter
    assert f"{total} of {total} events arrived: {total - bad} good, {bad} bad" in text
    assert "█" in text  # the progress bar
    assert "'targetUrl' is a required property" in text
    assert "/micro/ui" in text
    for name, _ in EMITTERS:
        assert name in text


def test_demo_against_a_running_collector(capsys: pytest.CaptureFixture[str]) -> None:
    with Collector() as collector:
        assert main(["demo", "--collector", collector.url, "--no-progress"]) == 0
        assert len(collector.good()) == (EVENTS_PER_EMITTER - 1) * len(EMITTERS)
        methods = {e.method for e in collector.good()}
        assert methods == {"GET", "POST"}
        # A second run counts only its own events.
        assert run_demo(io.StringIO(), collector) == 0
    assert "█" not in capsys.readouterr().out


def test_demo_fails_when_events_go_missing() -> None:
    with Collector() as collector:
        collector.respond_with(400)  # every request refused: nothing is collected
        out = io.StringIO()
        assert run_demo(out, collector, progress=False, wait=0.2) == 1
        assert f"0 of {EVENTS_PER_EMITTER * len(EMITTERS)} events arrived" in out.getvalue()
        assert "missing" in out.getvalue()


def test_running_collector_detection() -> None:
    with Collector() as collector:
        assert running_collector(collector.url) == collector.url
        port = collector.port
    assert running_collector(f"http://127.0.0.1:{port}") is None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "snowplow_tracker.cli", "collector", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "XDG_DATA_HOME": os.environ.get("XDG_DATA_HOME", "/nonexistent")},
    )  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    return process, line


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    return err


def test_collector_command_serves_until_terminated(tmp_path: Path) -> None:
    port = _free_port()
    db = tmp_path / "events.sqlite3"
    process, line = _start("--port", str(port), "--db", str(db))
    try:
        assert line.startswith(f"Collector listening on http://127.0.0.1:{port}")
        url = f"http://127.0.0.1:{port}"
        requests.get(f"{url}/i?e=pv&p=srv&tv=t&aid=cli", timeout=5)
        assert requests.get(f"{url}/micro/all", timeout=5).json()["good"] == 1
        assert requests.get(f"{url}/micro/ui", timeout=5).status_code == 200
    finally:
        err = _stop(process)
    assert "GOOD" in err
    assert "app_id:cli" in err
    assert db.exists()
    process, _ = _start("--port", str(port), "--db", str(db), "--quiet")
    try:
        assert requests.get(f"{url}/micro/all", timeout=5).json()["good"] == 1
    finally:
        _stop(process)


def test_collector_command_in_memory_with_schemas(tmp_path: Path) -> None:
    port = _free_port()
    process, line = _start("--port", str(port), "--memory", "--schemas", str(tmp_path), "--quiet")
    try:
        assert "(events kept in memory)" in line
    finally:
        _stop(process)


def test_collector_command_reports_a_port_in_use() -> None:
    with Collector() as collector:
        process = subprocess.run(
            [sys.executable, "-m", "snowplow_tracker.cli", "collector", "--port",
             str(collector.port), "--memory"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert process.returncode == 1
    assert "cannot listen on 127.0.0.1" in process.stderr


def test_collector_command_stops_on_ctrl_c() -> None:
    port = _free_port()
    process, _ = _start("--port", str(port), "--memory", "--quiet")
    process.send_signal(signal.SIGINT)
    process.communicate(timeout=10)
    assert process.returncode == 0
