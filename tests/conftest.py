"""Shared fixtures: a real collector on a loopback port, argument-check and logger hygiene."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import snowplow_tracker
from snowplow_tracker.collector import Collector
from snowplow_tracker.emitters import as_strings

TEST_SCHEMAS = Path(__file__).parent / "schemas"


@pytest.fixture
def collector() -> Iterator[Collector]:
    """A collector on 127.0.0.1 (free port) that knows the test schemas too."""
    with Collector(schemas=[TEST_SCHEMAS]) as running:
        yield running


@pytest.fixture
def client() -> Any:
    """A client of the Redis server on 127.0.0.1:6379 (Redis tests are skipped without it)."""
    from .redis_celery_support import redis_client

    return redis_client()


@pytest.fixture
def key(client: Any, request: pytest.FixtureRequest) -> Iterator[str]:
    """A Redis key of this test's own, deleted with every key derived from it afterwards."""
    from .redis_celery_support import delete_keys, unique_key

    name = unique_key(request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_"))
    yield name
    delete_keys(client, name)


@pytest.fixture(autouse=True)
def _contracts_on() -> Iterator[None]:
    snowplow_tracker.enable_contracts()
    yield
    snowplow_tracker.enable_contracts()


@pytest.fixture(autouse=True)
def _logger_level_restored() -> Iterator[None]:
    level = snowplow_tracker.logger.level
    yield
    snowplow_tracker.logger.setLevel(level)


class ListEmitter:
    """A custom emitter, as users write them: anything with input(dict). It keeps each
    event as this package's emitters send it (``as_strings``: every value a string);
    ``given`` keeps the dicts it was handed, as they are."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.given: list[dict[str, Any]] = []

    def input(self, payload: dict[str, Any]) -> None:
        self.given.append(payload)
        self.events.append(as_strings(dict(payload)))


@pytest.fixture
def sink() -> ListEmitter:
    return ListEmitter()


@pytest.fixture
def caplog_tracker(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="snowplow_tracker")
    return caplog
