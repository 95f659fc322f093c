"""The command's messages: ``--version``, help that names each command's extra, a missing extra
in one line with exit status 2, and demo output that fits 100 columns."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import pytest

from snowplow_tracker import __version__
from snowplow_tracker._demo import run_demo
from snowplow_tracker.cli import main
from snowplow_tracker.collector import Collector


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"snowplow-event-tracker {__version__}\n"


def test_help_says_which_command_needs_which_extra(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "collector run a local validating collector" in text, text
    assert "(needs the collector extra)" in text
    assert "(needs the redis extra)" in text
    assert "(starting one needs the collector extra)" in text
    for command, extra in [("collector", "collector"), ("redis-worker", "redis")]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert f"pip install 'snowplow-event-tracker[{extra}]'" in text


@pytest.mark.parametrize(
    ("hidden", "argv", "extra"),
    [
        ("uvicorn", ["collector", "--memory", "--port", "0"], "collector"),
        ("redis", ["redis-worker", "--endpoint", "127.0.0.1:1"], "redis"),
    ],
)
def test_a_missing_extra_is_one_line_and_exit_status_2(
    hidden: str, argv: list[str], extra: str
) -> None:
    """The module is hidden from the import system (the extra cannot be uninstalled here)."""
    script = (
        f"import sys; sys.modules[{hidden!r}] = None\n"
        f"from snowplow_tracker.cli import main\nsys.exit(main({argv!r}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"snowplow-tracker {argv[0]}: needs the {extra!r} extra")
    assert f"pip install 'snowplow-event-tracker[{extra}]'" in done.stderr


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_demo_output_fits_100_columns() -> None:
    with Collector() as collector:
        collector.respond_with(400)  # the widest cells: "missing"; then a bad event too
        out = Terminal()
        run_demo(out, progress=True, wait=0.2, url=collector.url)
    for collector_ok in (False, True):
        if collector_ok:
            out = Terminal()
            assert run_demo(out) == 0
        lines = re.split(r"[\r\n]", out.getvalue())
        assert max(len(line) for line in lines) <= 100, max(lines, key=len)
        assert "AsyncEmitter POST" in out.getvalue()
