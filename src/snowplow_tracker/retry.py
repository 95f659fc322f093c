"""When to send a failed request again, and how long to wait first.

:class:`RetryPolicy` is an immutable value: it holds no clock and does no
sleeping, so the emitters drive it and tests can check it with plain numbers.

.. versionadded:: 0.6.0
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any, Optional, Protocol

from ._values import Value
from .contracts import fail_type, fail_value, integer, number

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
        _check_policy(max_attempts, deadline, backoff_base, backoff_max, retry_after_max, jitter)
        for name, codes in (
            ("retry_statuses", retry_statuses),
            ("never_retry_statuses", never_retry_statuses),
        ):
            _check_statuses(name, codes)
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


_WHERE = "RetryPolicy()"


def _check_policy(
    max_attempts: object,
    deadline: object,
    backoff_base: object,
    backoff_max: object,
    retry_after_max: object,
    jitter: object,
) -> None:
    """Refuse a policy that cannot work, at construction (checked even with contracts off:
    a RetryPolicy is built once, and a bad one would fail on a sending thread)."""
    if max_attempts is not None:
        integer(_WHERE, "max_attempts", max_attempts, minimum=1)
    number(_WHERE, "deadline", deadline, optional=True)
    if deadline is not None and deadline <= 0:  # type: ignore[operator]
        fail_value(_WHERE, "deadline", "a number > 0, or None", deadline)
    if max_attempts is None and deadline is None:
        fail_value(_WHERE, "max_attempts", "an int when deadline is None", max_attempts)
    for name, value in (
        ("backoff_base", backoff_base),
        ("backoff_max", backoff_max),
        ("retry_after_max", retry_after_max),
    ):
        number(_WHERE, name, value)
        if value < 0:  # type: ignore[operator]
            fail_value(_WHERE, name, "a number >= 0", value)
    if max_attempts is None and min(backoff_base, backoff_max) <= 0:  # type: ignore[call-overload]
        fail_value(_WHERE, "backoff_base", "a number > 0 when max_attempts is None", backoff_base)
    if not isinstance(jitter, bool):
        fail_type(_WHERE, "jitter", "a bool", jitter)


def _check_statuses(name: str, codes: object) -> None:
    if isinstance(codes, (str, bytes)) or not isinstance(codes, Iterable):
        fail_type(_WHERE, name, "a set of HTTP status codes", codes)
    for code in codes:
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            fail_value(_WHERE, name, "HTTP status codes (100-599)", code)
