"""Which defaults an emitter takes: the release notes' (0.5.0) or 1.x's, decided once.

A bare ``Emitter(host)`` keeps 0.5.0's: http, GET to ``/i``, buffer 1 (GET) or
10 (POST), no retries for the sync Emitter. Any 1.x-only option
(``batch_size``, ``buffer_capacity``, ``custom_retry_codes``,
``max_retry_delay_seconds``) or ``defaults="1.x"`` (what
``EmitterConfiguration`` and ``Snowplow.create_tracker`` pass) selects 1.x's:
https unless the endpoint names its scheme, POST to tp2, batches of 10, and
retries for every emitter on every non-2xx status but 400, 401, 403, 410 and
422 (``custom_retry_codes`` overrides per status), with backoff capped by
``max_retry_delay_seconds`` (60).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import contracts
from ._store_v1 import V1StoreAdapter, is_v1_store
from .retry import RetryPolicy

#: Events per request by default (GET: one event per request).
DEFAULT_BATCH = 10
#: The statuses 1.x never retries (it retries every other non-2xx status).
V1_NEVER_RETRY = frozenset({400, 401, 403, 410, 422})
#: Attempts per request at most with 1.x defaults (1.x itself retried without end).
V1_MAX_ATTEMPTS = 10
#: ``max_retry_delay_seconds`` by default (1.x's).
V1_MAX_RETRY_DELAY = 60.0
_NON_2XX = frozenset(range(100, 200)) | frozenset(range(300, 600))


class V1Options:
    """The 1.x-only emitter options, checked, and the defaults they select."""

    def __init__(
        self,
        batch_size: Any,
        buffer_capacity: Any,
        custom_retry_codes: Any,
        max_retry_delay_seconds: Any,
        defaults: Any,
    ) -> None:
        if contracts._enabled:
            _check(batch_size, buffer_capacity, custom_retry_codes, max_retry_delay_seconds)
            if defaults is not None:
                contracts.one_of("Emitter()", "defaults", defaults, ("0.5", "1.x"))
        given = (batch_size, buffer_capacity, custom_retry_codes, max_retry_delay_seconds)
        if defaults is None:
            defaults = "1.x" if any(option is not None for option in given) else "0.5"
        self.defaults: str = defaults
        self.v1 = defaults == "1.x"
        self.batch_size: int | None = batch_size
        self.capacity: int | None = buffer_capacity
        self.codes: Mapping[int, bool] = custom_retry_codes or {}
        self.max_retry_delay = float(
            V1_MAX_RETRY_DELAY if max_retry_delay_seconds is None else max_retry_delay_seconds
        )

    def protocol(self, protocol: str | None) -> str:
        return protocol if protocol is not None else ("https" if self.v1 else "http")

    def method(self, method: str | None) -> str:
        return method if method is not None else ("post" if self.v1 else "get")

    def buffer_size(self, buffer_size: int | None, method: str) -> int:
        if buffer_size is not None and self.batch_size not in (None, buffer_size):
            contracts.fail_value(
                "Emitter()",
                "batch_size",
                f"equal to buffer_size ({buffer_size})",
                self.batch_size,
            )
        size = buffer_size if buffer_size is not None else self.batch_size
        return size or (1 if method == "get" else DEFAULT_BATCH)

    def queue_size(self, max_queue_size: int | None, default: int) -> int:
        if max_queue_size is not None:
            return max_queue_size
        return self.capacity if self.capacity is not None else default

    def retry(self, default: RetryPolicy) -> RetryPolicy:
        """1.x's retries, or the emitter's own default."""
        if not self.v1:
            return default
        policy = RetryPolicy(
            max_attempts=V1_MAX_ATTEMPTS,
            deadline=None,
            backoff_max=self.max_retry_delay,
            retry_statuses=_NON_2XX - V1_NEVER_RETRY,
            never_retry_statuses=V1_NEVER_RETRY,
        )
        retried = [status for status, retry in self.codes.items() if retry]
        final = [status for status, retry in self.codes.items() if not retry]
        return policy.retrying(*retried).not_retrying(*final)


def as_store(store: Any) -> Any:
    """Our store protocol for ``store``: itself, or a 1.x store behind the adapter."""
    return V1StoreAdapter(store) if is_v1_store(store) else store


def _check(batch_size: Any, capacity: Any, codes: Any, max_delay: Any) -> None:
    where = "Emitter()"
    if batch_size is not None:
        contracts.integer(where, "batch_size", batch_size, minimum=1)
    if capacity is not None:
        contracts.integer(where, "buffer_capacity", capacity, minimum=1)
    if max_delay is not None:
        contracts.positive(where, "max_retry_delay_seconds", max_delay)
    if codes is not None:
        contracts.mapping(where, "custom_retry_codes", codes)
        for status, retry in codes.items():
            contracts.integer(where, "custom_retry_codes key", status, minimum=100)
            if not isinstance(retry, bool):
                contracts.fail_type(where, f"custom_retry_codes[{status}]", "a bool", retry)
