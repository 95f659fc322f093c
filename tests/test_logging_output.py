"""Logging as the 0.4.0 notes describe: the emitters' INFO-and-above messages reach stderr while
the application has configured no logging; once it has, only its handlers print them; and
``logger.setLevel(10/30/60)`` works as the notes show. Each case runs in a fresh interpreter so
that its stderr and its logging configuration are its own."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap

import pytest

DROP = "snowplow emitter dropped events (1 retries_exhausted"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run(setup: str, after: str = "") -> str:
    """Run ``setup``, track one event to a closed port (a wrong collector), then ``after``;
    return stderr."""
    script = (
        textwrap.dedent(setup)
        + textwrap.dedent(
            f"""
        import logging
        from snowplow_tracker import Emitter, Tracker, logger
        logging.getLogger("snowplow_tracker.emitters").info("an info line")
        Tracker(Emitter("127.0.0.1:{_closed_port()}")).track_page_view("http://x")
        """
        )
        + textwrap.dedent(after)
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr


def test_without_logging_configured_info_and_above_reach_stderr() -> None:
    err = _run("")
    assert "INFO snowplow_tracker.emitters: an info line" in err
    assert f"WARNING snowplow_tracker.emitters: {DROP}" in err
    assert "event(s) to" not in err  # per-request detail is DEBUG
    assert err.count("\n") == 2, err


@pytest.mark.parametrize(
    ("level", "info", "warning", "debug"),
    [(10, True, True, True), (30, False, True, False), (60, False, False, False)],
)
def test_release_note_levels(level: int, info: bool, warning: bool, debug: bool) -> None:
    err = _run(f"from snowplow_tracker import logger\nlogger.setLevel({level})\n")
    assert ("an info line" in err) is info, err
    assert (DROP in err) is warning, err
    assert ("GET of 1 event(s) to http://127.0.0.1" in err) is debug, err


def test_an_application_configuration_replaces_ours() -> None:
    err = _run('import logging\nlogging.basicConfig(format="APP %(levelname)s %(message)s")\n')
    assert err.count(DROP) == 1, err
    assert f"APP WARNING {DROP}" in err
    assert "APP INFO an info line" in err  # our logger's level (INFO) still applies
    assert "snowplow_tracker.emitters:" not in err  # our handler stayed silent


def test_logging_configured_after_import_takes_over() -> None:
    err = _run(
        "import snowplow_tracker\n",
        'logging.basicConfig(format="APP %(message)s")\n'
        'logging.getLogger("snowplow_tracker.emitters").warning("after")\n',
    )
    assert f"WARNING snowplow_tracker.emitters: {DROP}" in err  # before: ours
    assert "APP after" in err and "snowplow_tracker.emitters: after" not in err


def test_a_handler_on_our_logger_alone_replaces_ours() -> None:
    err = _run(
        """
        import logging, sys
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("MINE %(message)s"))
        logging.getLogger("snowplow_tracker").addHandler(handler)
        """
    )
    assert f"MINE {DROP}" in err and err.count(DROP) == 1, err


def test_a_non_propagating_logger_without_handlers_still_prints_through_ours() -> None:
    """The walk stops where propagation stops, as the logging module's own does."""
    err = _run(
        """
        import logging
        logging.basicConfig(format="APP %(message)s")
        logging.getLogger("snowplow_tracker").propagate = False
        """
    )
    assert f"WARNING snowplow_tracker.emitters: {DROP}" in err and "APP" not in err, err
