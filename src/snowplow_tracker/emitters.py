"""Emitters: queue events and deliver them to a Snowplow collector.

* :class:`Emitter` sends in the calling thread when its buffer is full or on
  ``flush()``; a flush that is not wholly successful calls
  ``on_failure(count_sent, unsent)`` before it returns. Retries are opt-in
  (``retry=RetryPolicy()``), or on with 1.x options, as 1.x has them.
* :class:`AsyncEmitter` delivers from a fixed pool of worker threads, retrying
  failed requests in the background, so ``track_*`` never waits on the network.
* :class:`CeleryEmitter` and :class:`RedisEmitter` move sending out of the
  process; they need the ``celery`` and ``redis`` extras.

Every emitter shares one delivery core (``_delivery``): a bounded queue with an
overflow policy, batching by count, bytes and interval, a
:class:`~snowplow_tracker.retry.RetryPolicy`, ``flush(timeout)``,
``close(timeout)``, a bounded flush at interpreter exit, a reset after
``fork()``, and ``stats()``. Each event's final outcome reaches ``on_success``
or ``on_failure`` exactly once.
"""

from __future__ import annotations

import logging

import requests  # 0.5.0- and 1.x-era test suites patch snowplow_tracker.emitters.requests

from ._async_emitter import AsyncEmitter
from ._body import post_body, split_batch
from ._delivery import DeliveryStats
from ._emitter import (
    BACKLOG_MARK,
    COALESCE_SECONDS,
    DEFAULT_EXIT_TIMEOUT,
    DEFAULT_MAX_LENGTH,
    DEFAULT_MAX_QUEUE_SIZE,
    MAX_BATCH_EVENTS,
    MAX_FOLLOW_UPS,
    YIELD_SECONDS,
    Emitter,
    as_strings,
    stringify,
)
from .event_store import event_size
from .retry import RetryPolicy

logger = logging.getLogger(__name__)

# CeleryEmitter and RedisEmitter (0.5.0 names of this module) are defined in ``_celery`` and
# ``_redis``, which import this module and add themselves here (the package imports both):
# the core never imports them, so there is no import cycle.

__all__ = [
    "BACKLOG_MARK",
    "COALESCE_SECONDS",
    "DEFAULT_EXIT_TIMEOUT",
    "DEFAULT_MAX_LENGTH",
    "DEFAULT_MAX_QUEUE_SIZE",
    "MAX_BATCH_EVENTS",
    "MAX_FOLLOW_UPS",
    "YIELD_SECONDS",
    "AsyncEmitter",
    "DeliveryStats",
    "Emitter",
    "RetryPolicy",
    "as_strings",
    "event_size",
    "logger",
    "post_body",
    "requests",
    "split_batch",
    "stringify",
]
