"""Bad arguments are refused at the call with our errors; credentials never reach a log."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import pytest

from snowplow_tracker import (
    AsyncEmitter,
    Emitter,
    InvalidTypeError,
    InvalidValueError,
    RetryPolicy,
    Subject,
    Tracker,
)
from snowplow_tracker._redact import redact_url
from snowplow_tracker.collector import Collector
from snowplow_tracker.testing import MemoryTransport

BAD_CALLS: dict[str, tuple[Callable[[], Any], type[Exception]]] = {
    "request_timeout=-1": (lambda: Emitter("h", request_timeout=-1), InvalidValueError),
    "request_timeout=(1, 0)": (lambda: Emitter("h", request_timeout=(1, 0)), InvalidValueError),
    "request_timeout='5'": (lambda: Emitter("h", request_timeout="5"), InvalidTypeError),
    "max_event_bytes=-5": (lambda: Emitter("h", max_event_bytes=-5), InvalidValueError),
    "flush_interval=-1": (lambda: Emitter("h", flush_interval=-1), InvalidValueError),
    "async flush_interval=0": (lambda: AsyncEmitter("h", flush_interval=0), InvalidValueError),
    "block_timeout='x'": (lambda: Emitter("h", block_timeout="x"), InvalidTypeError),
    "block_timeout=-1": (lambda: Emitter("h", block_timeout=-1), InvalidValueError),
    "Emitter('http://')": (lambda: Emitter("http://"), InvalidValueError),
    "Emitter('https://:443')": (lambda: Emitter("https://:443"), InvalidValueError),
    "Emitter('h:abc')": (lambda: Emitter("h:abc"), InvalidValueError),
    "a port twice": (lambda: Emitter("c.example.com:8080", port=9090), InvalidValueError),
    "a port twice, URL": (lambda: Emitter("http://c.example.com:80/", port=81), InvalidValueError),
    "transport=object()": (lambda: Emitter("h", transport=object()), InvalidTypeError),
    "Tracker(Emitter)": (lambda: Tracker(Emitter), InvalidTypeError),
    "set_platform([])": (lambda: Subject().set_platform([]), InvalidTypeError),
    "RetryPolicy(max_attempts=0)": (lambda: RetryPolicy(max_attempts=0), InvalidValueError),
    "RetryPolicy(max_attempts='3')": (lambda: RetryPolicy(max_attempts="3"), InvalidTypeError),
    "RetryPolicy(deadline=-1)": (lambda: RetryPolicy(deadline=-1), InvalidValueError),
    "RetryPolicy(no bound)": (
        lambda: RetryPolicy(max_attempts=None, deadline=None),
        InvalidValueError,
    ),
    "RetryPolicy(backoff_base=-1)": (lambda: RetryPolicy(backoff_base=-1), InvalidValueError),
    "RetryPolicy(backoff_max='x')": (lambda: RetryPolicy(backoff_max="x"), InvalidTypeError),
    "RetryPolicy(jitter=1)": (lambda: RetryPolicy(jitter=1), InvalidTypeError),
    "RetryPolicy(retry_statuses={'500'})": (
        lambda: RetryPolicy(retry_statuses=frozenset({"500"})),
        InvalidValueError,
    ),
    "retrying(1000)": (lambda: RetryPolicy().retrying(1000), InvalidValueError),
}


@pytest.mark.parametrize("name", list(BAD_CALLS))
def test_a_bad_argument_is_refused_at_the_call(name: str) -> None:
    call, error = BAD_CALLS[name]
    with pytest.raises(error) as raised:
        call()
    # Ours, and still what plain Python code catches.
    assert isinstance(raised.value, (ValueError, TypeError))
    assert type(raised.value).__module__ == "snowplow_tracker.exceptions"


def test_good_neighbours_of_the_bad_arguments_are_accepted() -> None:
    Emitter("c.example.com", port=8080, request_timeout=(1, 2), block_timeout=0).close()
    Emitter("http://c.example.com:8080/", flush_interval=0.5, max_event_bytes=1).close()
    Emitter("[::1]:8080").close()
    RetryPolicy(max_attempts=None, deadline=10).retrying(425)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:s3cret@c.example.com/i", "https://<redacted>@c.example.com/i"),
        ("http://tok%40en:p@ss@c.example.com:80", "http://<redacted>@c.example.com:80"),
        ("user:s3cret@c.example.com", "<redacted>@c.example.com"),
        ("https://c.example.com/i?x=a@b", "https://c.example.com/i?x=a@b"),
        ("c.example.com", "c.example.com"),
    ],
)
def test_redact_url_hides_credentials(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_password_in_the_collector_url_reaches_no_log_line_and_no_repr(
    collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="snowplow_tracker")
    emitter = Emitter(f"http://alice:s3cret@{collector.endpoint}", method="post", buffer_size=1)
    Tracker(emitter).track_page_view("http://example.com")
    assert collector.wait_for(1)
    shown = [repr(emitter), repr(emitter._transport), *(r.getMessage() for r in caplog.records)]
    assert any(collector.endpoint in line for line in caplog.messages)  # the lines were logged
    assert not [line for line in shown if "s3cret" in line]
    emitter.close()


def test_a_password_is_redacted_in_the_repr_of_a_memory_transport_emitter() -> None:
    emitter = Emitter("https://bob:hunter2@c.example.com", transport=MemoryTransport())
    assert "hunter2" not in repr(emitter)
    assert "<redacted>@c.example.com" in repr(emitter)
    emitter.close()
