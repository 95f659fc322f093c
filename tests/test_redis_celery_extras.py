"""Redis and Celery are optional extras: without them, the package imports and names the extra."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .redis_celery_support import child_env

WITHOUT_EXTRAS = """\
import sys
sys.modules["redis"] = None   # as if neither extra were installed
sys.modules["celery"] = None
import snowplow_tracker
from snowplow_tracker import CeleryEmitter, Emitter, MissingExtraError, RedisEmitter, Tracker
from snowplow_tracker.redis_worker import RedisWorker

def extra(call):
    try:
        call()
    except MissingExtraError as exc:
        assert isinstance(exc, ImportError)
        assert f"snowplow-event-tracker[{exc.extra}]" in str(exc), str(exc)
        return exc.extra
    raise AssertionError("no MissingExtraError")

print(extra(lambda: RedisEmitter()))
print(extra(lambda: RedisWorker(Emitter("localhost"))))
print(extra(lambda: CeleryEmitter("localhost")))
print(extra(lambda: snowplow_tracker.emitters.app))
Tracker(Emitter("localhost"))  # the rest of the package works
"""

IMPORT_HAS_NO_SIDE_EFFECTS = """\
import signal, sys
before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
import snowplow_tracker, snowplow_tracker.redis_worker
from snowplow_tracker import _celery_app
assert "redis" not in sys.modules and "celery" not in sys.modules, "an extra was imported"
assert _celery_app._app is None
assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
print("clean")
"""


def run(code: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.split()


def test_without_the_extras_the_classes_name_the_extra_to_install() -> None:
    assert run(WITHOUT_EXTRAS) == ["redis", "redis", "celery", "celery"]


def test_importing_the_package_imports_no_extra_and_builds_no_app() -> None:
    pytest.importorskip("redis")
    pytest.importorskip("celery")
    assert run(IMPORT_HAS_NO_SIDE_EFFECTS) == ["clean"]
