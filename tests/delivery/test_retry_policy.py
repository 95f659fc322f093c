"""RetryPolicy is a pure value: checked here with plain numbers."""

from __future__ import annotations

import pytest

from snowplow_tracker import InvalidValueError, RetryPolicy
from snowplow_tracker.transport import SendResult

ERR = SendResult(None, ConnectionError("refused"))


def test_retryable_classes() -> None:
    policy = RetryPolicy()
    for status in (None, 408, 429, 500, 502, 503, 504, 599):
        assert policy.is_retryable(status), status
    for status in (400, 401, 403, 404, 410, 413, 422, 301):
        assert not policy.is_retryable(status), status


def test_overrides_per_status_return_new_values() -> None:
    policy = RetryPolicy()
    more = policy.retrying(400)
    fewer = policy.not_retrying(503)
    assert more.is_retryable(400)
    assert not policy.is_retryable(400)
    assert not fewer.is_retryable(503)
    assert policy.is_retryable(503)
    assert more.not_retrying(400).is_retryable(400) is False
    with pytest.raises(AttributeError):
        policy.max_attempts = 3  # type: ignore[misc]


def test_exponential_backoff_with_a_cap() -> None:
    policy = RetryPolicy(backoff_base=1.0, backoff_max=5.0, jitter=False)
    assert [policy.backoff(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert policy.backoff(10_000) == 5.0  # no overflow


def test_full_jitter_scales_the_ceiling() -> None:
    policy = RetryPolicy(backoff_base=2.0)
    assert policy.backoff(3, rand=lambda: 0.0) == 0.0
    assert policy.backoff(3, rand=lambda: 0.5) == 4.0


def test_retry_after_is_a_clamped_floor() -> None:
    policy = RetryPolicy(backoff_base=1.0, jitter=False, retry_after_max=30.0, deadline=None)
    assert policy.next_delay(SendResult(429, None, 10.0), 1, 0.0) == 10.0
    assert policy.next_delay(SendResult(429, None, 0.1), 3, 0.0) == 4.0
    assert policy.next_delay(SendResult(503, None, 999.0), 1, 0.0) == 30.0


def test_attempts_and_deadline_end_the_retries() -> None:
    policy = RetryPolicy(max_attempts=3, deadline=10.0, backoff_base=1.0, jitter=False)
    assert policy.next_delay(ERR, 1, 0.0) == 1.0
    assert policy.next_delay(ERR, 3, 0.0) is None
    assert policy.next_delay(ERR, 2, 8.5) is None  # 8.5 + 2 > 10
    assert policy.next_delay(SendResult(400), 1, 0.0) is None
    assert RetryPolicy.never().next_delay(ERR, 1, 0.0) is None


def test_invalid_policies_are_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="deadline"):
        RetryPolicy(max_attempts=None, deadline=None)
    with pytest.raises(InvalidValueError, match="backoff_base must be a number >= 0"):
        RetryPolicy(backoff_base=-1)
    with pytest.raises(InvalidValueError, match="> 0 when max_attempts is None"):
        RetryPolicy(max_attempts=None, backoff_base=0)  # would retry in a tight loop


def test_policies_are_values() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy == RetryPolicy(max_attempts=3) != RetryPolicy()
    assert hash(policy) == hash(RetryPolicy(max_attempts=3))
    assert policy.retrying(404) == RetryPolicy(max_attempts=3).retrying(404)
    assert repr(RetryPolicy.never()).startswith("RetryPolicy(max_attempts=1, deadline=None, ")
    assert policy.__eq__(object()) is NotImplemented
    with pytest.raises(AttributeError):
        del policy.jitter
