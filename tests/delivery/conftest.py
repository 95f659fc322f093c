"""Fixtures for the delivery suite: a real loopback collector, a dead port, and the harness."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from delivery_support import KINDS, Harness

from snowplow_tracker.collector import Collector


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector(max_events=250_000) as running:  # the 160 000-event test keeps them all
        yield running


@pytest.fixture
def dead_endpoint() -> str:
    """host:port where nothing listens (connections are refused at once)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture(params=KINDS)
def harness(request: pytest.FixtureRequest) -> Iterator[Harness]:
    made = Harness(request.param)
    yield made
    made.stop()
