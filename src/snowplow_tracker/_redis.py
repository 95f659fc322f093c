"""RedisEmitter: stores events in a Redis list for a RedisWorker to send."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from . import contracts
from ._extras import require
from .payload import dumps

logger = logging.getLogger("snowplow_tracker.emitters")

#: Environment variable naming the Redis server used when no client is given.
REDIS_URL_ENV = "SNOWPLOW_REDIS_URL"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


def default_client() -> Any:
    """A client for ``$SNOWPLOW_REDIS_URL`` (default ``redis://localhost:6379/0``); no I/O yet."""
    redis = require("redis", "redis")
    return redis.Redis.from_url(os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL))


class RedisEmitter:
    """Appends each event to the Redis list ``key`` as one JSON string.

    ``rdb`` is any redis-py client; by default one for ``$SNOWPLOW_REDIS_URL``.
    """

    def __init__(self, rdb: Any = None, key: str = "snowplow") -> None:
        if contracts._enabled:
            contracts.non_empty_string("RedisEmitter()", "key", key)
        self.rdb = rdb if rdb is not None else default_client()
        self.key = key

    def input(self, payload: Mapping[str, Any]) -> None:
        """Append one event to the list."""
        from .emitters import stringify

        try:
            self.rdb.rpush(self.key, dumps(stringify(payload)))
        except Exception as exc:
            logger.warning("RedisEmitter: could not store an event in %r: %s", self.key, exc)

    def flush(self) -> None:
        """Nothing to do: every event is stored as it arrives."""

    def sync_flush(self) -> None:
        """Nothing to do: every event is stored as it arrives."""
