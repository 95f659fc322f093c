"""The public surface: names, module paths, and an import without side effects."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import snowplow_tracker


def test_release_note_import_line_works() -> None:
    from snowplow_tracker import (  # noqa: F401
        AsyncEmitter,
        CeleryEmitter,
        Emitter,
        RedisEmitter,
        Subject,
        Tracker,
        disable_contracts,
        enable_contracts,
        logger,
    )


def test_all_is_sorted_and_complete() -> None:
    exported = snowplow_tracker.__all__
    assert exported == sorted(exported)
    for name in exported:
        assert hasattr(snowplow_tracker, name), name


def test_original_module_paths_import() -> None:
    from snowplow_tracker import _version, emitters, payload, redis_worker, subject, tracker

    assert tracker.Tracker is snowplow_tracker.Tracker
    assert emitters.Emitter is snowplow_tracker.Emitter
    assert subject.Subject is snowplow_tracker.Subject
    assert payload.Payload is snowplow_tracker.Payload
    assert _version.__version__ == snowplow_tracker.__version__
    assert redis_worker.__name__ == "snowplow_tracker.redis_worker"


def test_tracker_version_constant() -> None:
    from snowplow_tracker import _version
    from snowplow_tracker.tracker import VERSION

    assert VERSION == "py-" + _version.__version__
    assert _version.__version__ == ".".join(map(str, _version.__version_info__))


def _run(code: str, *, measured: bool = True) -> str:
    """Run ``code`` in a fresh interpreter; ``measured=False`` keeps coverage out of it
    (coverage measures child processes, and loads modules of its own there)."""
    env = None if measured else {k: v for k, v in os.environ.items() if "COVERAGE" not in k}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    return result.stdout.strip()


def test_import_has_no_side_effects() -> None:
    out = _run(
        """
        import logging, signal, sys
        before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        root_handlers = list(logging.getLogger().handlers)
        import snowplow_tracker
        import snowplow_tracker.redis_worker
        heavy = [m for m in ("celery", "redis", "jsonschema", "kombu") if m in sys.modules]
        after = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        others = [n for n, l in logging.root.manager.loggerDict.items()
                  if isinstance(l, logging.Logger) and l.level != logging.NOTSET
                  and not n.startswith("snowplow_tracker")]
        print(heavy, before == after, logging.getLogger().handlers == root_handlers, others)
        """
    )
    assert out == "[] True True []"


def test_package_logger_is_info_with_only_its_fallback_handler() -> None:
    import logging

    from snowplow_tracker._logging import FallbackHandler

    logger = snowplow_tracker.logger
    assert logger.name == "snowplow_tracker"
    assert logger.level == logging.INFO
    assert [type(h) for h in logger.handlers] == [FallbackHandler]


def test_release_note_logger_levels_apply_to_emitter_messages() -> None:
    from snowplow_tracker.emitters import logger as emitters_logger

    snowplow_tracker.logger.setLevel(60)
    assert not emitters_logger.isEnabledFor(50)
    snowplow_tracker.logger.setLevel(10)
    assert emitters_logger.isEnabledFor(10)


def test_import_stays_light() -> None:
    """The speed target: ``import snowplow_tracker`` within 1.2x ``import requests``.
    dataclasses (with inspect) alone was a tenth of it; orjson and uuid load on first use."""
    out = _run(
        """
        import sys
        import snowplow_tracker
        print([m for m in ("dataclasses", "inspect", "uuid", "orjson") if m in sys.modules])
        """,
        measured=False,
    )
    assert out == "[]"
