"""RedisEmitter: stores events in a Redis list for a RedisWorker to send."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

from . import contracts, emitters
from ._extras import require
from .emitters import as_strings
from .payload import dumps
from .retry import RetryPolicy
from .typing import FailureCallback

logger = logging.getLogger("snowplow_tracker.emitters")

#: Environment variable naming the Redis server used when no client is given.
REDIS_URL_ENV = "SNOWPLOW_REDIS_URL"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
#: Values per RPUSH; a larger group is split into several commands sent as one pipeline.
PUSH_CHUNK = 1000
#: A hung Redis must not hang ``track_*`` forever (redis-py's default is no timeout).
SOCKET_TIMEOUT = 5.0


def default_client(url: str | None = None) -> Any:
    """A client for ``url`` or ``$SNOWPLOW_REDIS_URL`` (default ``redis://localhost:6379/0``).

    Creating it does no I/O: redis-py connects on the first command.
    """
    redis = require("redis", "redis")
    url = url or os.environ.get(REDIS_URL_ENV) or DEFAULT_REDIS_URL
    return redis.Redis.from_url(
        url, socket_timeout=SOCKET_TIMEOUT, socket_connect_timeout=SOCKET_TIMEOUT
    )


class RedisEmitter:
    """Appends each event to the Redis list ``key`` as one JSON string (every value a string).

    ``rdb`` is any redis-py client (``Redis``, ``StrictRedis``, a cluster or a
    sentinel-managed client); by default one for ``$SNOWPLOW_REDIS_URL``
    (``redis://localhost:6379/0``), which connects on first use. ``input``
    returns once the event is stored. Threads that store events at the same
    time share one ``RPUSH`` (a pipeline when there are very many).

    A Redis error never reaches ``track_*``: the push is retried up to
    ``max_attempts`` times with a short backoff, then the events are counted as
    failed, logged, and handed to ``on_failure(0, events)``. :meth:`stats`
    returns the counts.
    """

    def __init__(
        self,
        rdb: Any = None,
        key: str = "snowplow",
        *,
        on_failure: FailureCallback | None = None,
        max_attempts: int = 3,
        retry_backoff: float = 0.05,
    ) -> None:
        if contracts._enabled:
            contracts.non_empty_string("RedisEmitter()", "key", key)
            contracts.optional_callable("RedisEmitter()", "on_failure", on_failure)
            contracts.integer("RedisEmitter()", "max_attempts", max_attempts, minimum=1)
            contracts.number("RedisEmitter()", "retry_backoff", retry_backoff)
            if rdb is not None and not callable(getattr(rdb, "pipeline", None)):
                contracts.fail_type("RedisEmitter()", "rdb", "a redis-py client", rdb)
        self.rdb = rdb if rdb is not None else default_client()
        self.key = key
        self.on_failure = on_failure
        self.max_attempts = max_attempts
        self.retry_backoff = retry_backoff
        # The one retry policy type: doubling from retry_backoff, no jitter, no cap in reach.
        self._retry = RetryPolicy(
            max_attempts=max_attempts,
            deadline=None,
            backoff_base=retry_backoff,
            backoff_max=retry_backoff * 2.0**max_attempts,
            jitter=False,
        )
        self._cond = threading.Condition(threading.Lock())
        self._pending: list[tuple[str, dict[str, str]]] = []
        self._enqueued = 0  # tickets handed out
        self._done = 0  # tickets whose push has finished (stored or failed)
        self._writing = False
        self._stats = {"stored": 0, "retried": 0, "failed": 0}

    def input(self, payload: Mapping[str, Any]) -> None:
        """Store one event; return when it is in Redis (or has failed and been reported)."""
        self._queue_event(as_strings(payload))

    def _queue_event(self, event: dict[str, str]) -> None:
        data = dumps(event)
        with self._cond:
            self._pending.append((data, event))
            self._enqueued += 1
            ticket = self._enqueued
            # Group commit: one thread pushes everything pending while the others wait.
            while self._done < ticket:
                if self._writing:
                    self._cond.wait()
                    continue
                self._writing = True
                group, self._pending = self._pending, []
                upto = self._enqueued
                self._cond.release()
                try:
                    self._push(group)
                finally:
                    self._cond.acquire()
                    self._writing = False
                    self._done = upto
                    self._cond.notify_all()

    def _push(self, group: list[tuple[str, dict[str, str]]]) -> None:
        values = [data for data, _ in group]
        for attempt in range(1, self.max_attempts + 1):
            try:
                self._rpush(values)
            except Exception as exc:  # any client error: never into track_*
                if attempt < self.max_attempts:
                    self._count("retried", len(values))
                    time.sleep(self._retry.backoff(attempt))
                    continue
                self._fail(group, exc)
            else:
                self._count("stored", len(values))
            return

    def _rpush(self, values: list[str]) -> None:
        if len(values) <= PUSH_CHUNK:
            self.rdb.rpush(self.key, *values)
            return
        pipe = self.rdb.pipeline(transaction=False)
        for start in range(0, len(values), PUSH_CHUNK):
            pipe.rpush(self.key, *values[start : start + PUSH_CHUNK])
        pipe.execute()

    def _fail(self, group: list[tuple[str, dict[str, str]]], exc: BaseException) -> None:
        self._count("failed", len(group))
        logger.warning(
            "RedisEmitter: %d event(s) could not be stored in %r after %d attempt(s): %s",
            len(group),
            self.key,
            self.max_attempts,
            exc,
        )
        if self.on_failure is not None:
            try:
                self.on_failure(0, [event for _, event in group])
            except Exception:
                logger.exception("an emitter callback raised; the exception was ignored")

    def _count(self, name: str, n: int) -> None:
        with self._cond:  # only called with the lock released
            self._stats[name] += n

    def stats(self) -> dict[str, int]:
        """Counts of events ``stored`` in Redis, push attempts ``retried``, and ``failed``."""
        with self._cond:
            return dict(self._stats)

    def flush(self, timeout: float | None = None) -> bool:
        """Nothing to do: every event is stored as it arrives. Returns True."""
        return True

    def sync_flush(self, timeout: float | None = None) -> bool:
        """Nothing to do: every event is stored as it arrives. Returns True."""
        return True

    def close(self, timeout: float | None = None) -> bool:
        """Nothing to do; a client passed in stays open for its owner. Returns True."""
        return True


# 0.5.0 defined RedisEmitter in snowplow_tracker.emitters: this module (imported by the package)
# adds it there, so the core never imports us.
emitters.RedisEmitter = RedisEmitter  # type: ignore[attr-defined]
