"""A pytest plugin (registered automatically): the ``snowplow_collector`` fixture.

It lives outside the ``snowplow_tracker`` package on purpose: pytest imports
plugins before coverage starts, and importing anything under ``snowplow_tracker``
would run (and hide from coverage) the package's own ``__init__``.

``snowplow_collector`` is a local collector on a free loopback port, shared by the
whole test session and emptied before each test::

    def test_checkout_tracks_a_transaction(snowplow_collector):
        emitter = Emitter(snowplow_collector.endpoint, method="post")
        ...
        emitter.flush()
        assert [e.event_type for e in snowplow_collector.good()] == ["transaction"]
        assert snowplow_collector.bad() == []

It has ``.url`` (also a Snowplow Micro-compatible API under ``/micro``),
``.endpoint`` (``host:port`` for an Emitter), ``.good()``, ``.bad()``,
``.bad_rows()``, ``.wait_for(n)`` and ``.reset()``. Extra schema directories come
from the ``snowplow_schemas`` ini option (paths relative to the rootdir).
Needs the ``collector`` extra; the plugin itself imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from snowplow_tracker.collector import Collector


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        "snowplow_schemas",
        "directories of Iglu schemas for the snowplow_collector fixture",
        type="linelist",
        default=[],
    )


@pytest.fixture(scope="session")
def snowplow_collector_session(pytestconfig: pytest.Config) -> Iterator[Collector]:
    """The session's collector; use ``snowplow_collector``, which also empties it."""
    from snowplow_tracker.collector import Collector

    root = Path(str(pytestconfig.rootpath))
    schemas = [root / d for d in pytestconfig.getini("snowplow_schemas")]
    collector = Collector(schemas=schemas).start()
    yield collector
    collector.stop()


@pytest.fixture
def snowplow_collector(snowplow_collector_session: Collector) -> Collector:
    """A running local collector, emptied (and answering 200) for this test."""
    snowplow_collector_session.reset()
    return snowplow_collector_session
