"""Process-wide hooks for live emitters: a bounded flush at exit, and a reset after fork.

Both are installed when the first emitter is created, never at import.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger("snowplow_tracker.emitters")


class Managed(Protocol):
    exit_timeout: float

    def _begin_exit_flush(self) -> None: ...

    def _close_at_exit(self, timeout: float) -> bool: ...

    def _after_fork_in_child(self) -> None: ...


_live: weakref.WeakSet[Managed] = weakref.WeakSet()
_installed = False
_lock = threading.Lock()


def watch(emitter: Managed) -> None:
    """Flush ``emitter`` at interpreter exit and reset it in forked children."""
    global _installed
    with _lock:
        _live.add(emitter)
        if not _installed:
            atexit.register(close_all_at_exit)
            os.register_at_fork(after_in_child=_reset_all_after_fork)
            _installed = True


def unwatch(emitter: Managed) -> None:
    with _lock:
        _live.discard(emitter)


def close_all_at_exit() -> None:
    """Close every live emitter, all within the largest ``exit_timeout`` among them."""
    emitters = list(_live)
    start = time.monotonic()
    for emitter in emitters:
        # Start every emitter's flush first, so they send in parallel.
        _guard(emitter._begin_exit_flush)
    for emitter in emitters:
        remaining = max(0.0, emitter.exit_timeout - (time.monotonic() - start))
        _guard(emitter._close_at_exit, remaining)


def _guard(call: Callable[..., object], *args: object) -> None:
    try:
        call(*args)
    except Exception:  # exit must go on whatever one emitter does
        logger.exception("closing an emitter at exit failed")


def _reset_all_after_fork() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    for emitter in list(_live):
        emitter._after_fork_in_child()
