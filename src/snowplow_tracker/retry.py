"""When to send a failed request again, and how long to wait first.

:class:`RetryPolicy` is an immutable value: it holds no clock and does no
sleeping, so the emitters drive it and tests can check it with plain numbers.

.. versionadded:: 0.6.0
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any, Optional, Protocol

from ._values import Value

#: Statuses retried besides every 5xx: request timeout and too many requests.
DEFAULT_RETRY_STATUSES = frozenset({408, 429})
#: Statuses never retried even though they look transient to some proxies.
DEFAULT_NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 410, 413, 422})


class Result(Protocol):
    """What the policy needs to know about one attempt (``SendResult`` fits)."""

    @property
    def status(self) -> Optional[int]: ...

    @property
    def retry_after(self) -> Optional[float]: ...


class RetryPolicy(Value):
    """Retry network errors, timeouts, 408, 429 and 5xx with capped, jittered backoff.

    * ``max_attempts``: attempts per request including the first (``None``: no
      limit, then ``deadline`` must bound the retries).
    * ``deadline``: seconds from a request's first attempt after which it is not
      tried again (``None``: no deadline).
    * The delay before attempt ``n + 1`` is ``min(backoff_max, backoff_base * 2 **
      (n - 1))``, multiplied by a uniform random factor in ``[0, 1)`` when
      ``jitter`` is on (full jitter, so many clients do not retry in step).
    * A ``Retry-After`` answer (seconds or an HTTP date) is a floor for that
      delay, clamped to ``retry_after_max``.
    * A status in ``never_retry_statuses`` is final; one in ``retry_statuses`` or
      any 5xx is retried; every other status is final. :meth:`retrying` and
      :meth:`not_retrying` move single codes between the two sets.

    Immutable: assigning a field raises an ``AttributeError``.
    """

    __slots__ = (  # noqa: RUF023 - the order of the fields in repr(), as in the constructor
        "max_attempts",
        "deadline",
        "backoff_base",
        "backoff_max",
        "retry_after_max",
        "jitter",
        "retry_statuses",
        "never_retry_statuses",
    )
    max_attempts: Optional[int]
    deadline: Optional[float]
    backoff_base: float
    backoff_max: float
    retry_after_max: float
    jitter: bool
    retry_statuses: frozenset[int]
    never_retry_statuses: frozenset[int]

    def __init__(
        self,
        max_attempts: Optional[int] = 6,
        deadline: Optional[float] = 60.0,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        retry_after_max: float = 60.0,
        jitter: bool = True,
        retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES,
        never_retry_statuses: frozenset[int] = DEFAULT_NEVER_RETRY_STATUSES,
    ) -> None:
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None)")
        if max_attempts is None and deadline is None:
            raise ValueError("a RetryPolicy needs max_attempts or a deadline")
        if min(backoff_base, backoff_max, retry_after_max) < 0:
            raise ValueError("backoff and retry_after_max must not be negative")
        if max_attempts is None and min(backoff_base, backoff_max) <= 0:
            raise ValueError("retrying without max_attempts needs a positive backoff")
        self._init(
            max_attempts=max_attempts,
            deadline=deadline,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            retry_after_max=retry_after_max,
            jitter=jitter,
            retry_statuses=frozenset(retry_statuses),
            never_retry_statuses=frozenset(never_retry_statuses),
        )

    def _replace(self, **changes: Any) -> RetryPolicy:
        fields = {name: getattr(self, name) for name in self.__slots__}
        return RetryPolicy(**{**fields, **changes})

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt per request: the 0.5.0 behaviour, and the sync Emitter's default."""
        return cls(max_attempts=1, deadline=None)

    def retrying(self, *statuses: int) -> RetryPolicy:
        """A copy that retries these statuses too."""
        codes = frozenset(statuses)
        return self._replace(
            retry_statuses=self.retry_statuses | codes,
            never_retry_statuses=self.never_retry_statuses - codes,
        )

    def not_retrying(self, *statuses: int) -> RetryPolicy:
        """A copy for which these statuses are final."""
        codes = frozenset(statuses)
        return self._replace(
            retry_statuses=self.retry_statuses - codes,
            never_retry_statuses=self.never_retry_statuses | codes,
        )

    def is_retryable(self, status: Optional[int]) -> bool:
        """Whether an attempt that ended like this may be tried again (None: no answer)."""
        if status is None:
            return True
        if status in self.never_retry_statuses:
            return False
        return status in self.retry_statuses or 500 <= status <= 599

    def backoff(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """The delay after the ``attempt``-th failed attempt (1-based), before any floor."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt - 1, 62))
        return ceiling * rand() if self.jitter else ceiling

    def next_delay(
        self,
        result: Result,
        attempt: int,
        elapsed: float,
        rand: Callable[[], float] = random.random,
    ) -> float | None:
        """Seconds to wait before trying again after ``result``, or None to give up.

        ``attempt`` is how many attempts were made so far and ``elapsed`` the
        seconds since the first of them.
        """
        if not self.is_retryable(result.status):
            return None
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        delay = self.backoff(attempt, rand)
        if result.retry_after is not None:
            delay = max(delay, min(result.retry_after, self.retry_after_max))
        if self.deadline is not None and elapsed + delay > self.deadline:
            return None
        return delay
