"""An event that cannot be encoded when it is sent is dropped alone; its batch goes out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from delivery_support import Harness

from snowplow_tracker import Emitter, SQLiteEventStore
from snowplow_tracker.collector import Collector
from snowplow_tracker.testing import MemoryTransport

LONE = json.loads('"\\udcff"')  # what json.loads makes of client input: a lone surrogate
SELF_DESCRIBING = '{"schema":"iglu:com.acme/x/jsonschema/1-0-0","data":{"name":"%s"}}'


def poisoned(field: str) -> dict[str, str]:
    """A page view whose ``field`` (plain, contexts, self-describing, subject) has a surrogate."""
    event = {"e": "pv", "p": "srv", "tv": "py-test", "eid": "poison", "url": "http://x/"}
    value = {
        "url": f"http://x/{LONE}",
        "co": '{"schema":"iglu:c/contexts/jsonschema/1-0-0","data":[%s]}'
        % (SELF_DESCRIBING % LONE),
        "ue_pr": SELF_DESCRIBING % LONE,
        "uid": f"user-{LONE}",
    }[field]
    event[field] = value
    return event


FIELDS = ["url", "co", "ue_pr", "uid"]


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("field", FIELDS)
def test_one_poisoned_event_is_dropped_alone(
    harness: Harness, collector: Collector, method: str, field: str
) -> None:
    harness.make(collector.endpoint, method=method, buffer_size=50)
    good = harness.track(24)
    harness._call(lambda: harness.emitter.input(poisoned(field)))
    good += harness.track(25, start=24)
    assert harness.flush(10)
    assert sorted(event["eid"] for event in collector.wait_for(49)) == sorted(good)
    stats = harness.stats()
    assert (stats.sent, stats.failed, stats.dropped["unencodable"]) == (49, 1, 1)
    assert harness.calls.failed_eids() == ["poison"]


def test_a_poisoned_event_in_the_sqlite_spool_is_dropped_alone(tmp_path: Path) -> None:
    """The spool used to raise UnicodeEncodeError out of track_* for it."""
    transport = MemoryTransport()
    store = SQLiteEventStore(tmp_path / "spool.db")
    emitter = Emitter("c.example.com", method="post", event_store=store, transport=transport)
    emitter.input({"e": "pv", "eid": "1"})
    emitter.input(poisoned("url"))
    emitter.input({"e": "pv", "eid": "2"})
    assert emitter.flush()
    assert [event["eid"] for event in transport.events] == ["1", "2"]
    assert emitter.stats().dropped["unencodable"] == 1
    emitter.close()


def test_a_post_body_keeps_the_order_around_a_poisoned_event() -> None:
    sent: list[Any] = []
    transport = MemoryTransport(respond=lambda request: sent.append(request) or 200)
    emitter = Emitter("c.example.com", method="post", buffer_size=5, transport=transport)
    for n in range(4):
        emitter.input({"e": "pv", "eid": str(n)} if n != 2 else poisoned("ue_pr"))
    emitter.flush()
    assert [event["eid"] for event in transport.events] == ["0", "1", "3"]
    assert len(sent) == 2  # the events before it, then the ones after it
    emitter.close()
