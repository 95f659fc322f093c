"""An event that cannot be encoded when it is sent is dropped alone; its batch goes out."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from delivery_support import Harness

from snowplow_tracker import Emitter, SQLiteEventStore, payload
from snowplow_tracker.collector import Collector
from snowplow_tracker.event_store import InMemoryEventStore
from snowplow_tracker.exceptions import InvalidValueError
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
def test_input_refuses_an_event_that_cannot_be_sent_and_the_rest_go_out(
    harness: Harness, collector: Collector, method: str, field: str
) -> None:
    """A lone surrogate is refused at the call that hands the event over, naming the
    field, before it can reach a batch; the events around it are sent as usual."""
    harness.make(collector.endpoint, method=method, buffer_size=50)
    good = harness.track(24)
    with pytest.raises(InvalidValueError, match=f"{field} must be text that can be sent"):
        harness._call(lambda: harness.emitter.input(poisoned(field)))
    good += harness.track(25, start=24)
    assert harness.flush(10)
    assert sorted(event["eid"] for event in collector.wait_for(49)) == sorted(good)
    stats = harness.stats()
    assert (stats.sent, stats.failed, stats.dropped["unencodable"]) == (49, 0, 0)


class SharedStore(InMemoryEventStore):
    """A 1.x event store that another producer fills too: what it hands back has not
    been through this emitter's input()."""


def store_with_poison(field: str) -> SharedStore:
    store = SharedStore(logging.getLogger("test"))
    store.add_event({"e": "pv", "eid": "0"})
    store.add_event({"e": "pv", "eid": "1"})
    store.add_event(poisoned(field))
    store.add_event({"e": "pv", "eid": "3"})
    return store


@pytest.mark.parametrize("method", ["get", "post"])
@pytest.mark.parametrize("field", FIELDS)
def test_an_event_that_cannot_be_encoded_is_dropped_alone_when_sent(
    method: str, field: str
) -> None:
    """The delivery core's own defence: such an event from a store is dropped and
    counted alone, and its batch goes out."""
    failures: list[Any] = []
    transport = MemoryTransport()
    emitter = Emitter(
        "c.example.com",
        method=method,
        event_store=store_with_poison(field),
        transport=transport,
        on_failure=lambda sent, unsent: failures.append(unsent),
    )
    emitter.flush()
    assert [event["eid"] for event in transport.events] == ["0", "1", "3"]
    assert emitter.stats().dropped["unencodable"] == 1
    assert [[event["eid"] for event in unsent] for unsent in failures] == [["poison"]]
    emitter.close()


def test_the_sqlite_spool_is_never_handed_an_event_it_cannot_store(tmp_path: Path) -> None:
    """The spool used to raise UnicodeEncodeError out of track_* for it: input() now
    refuses it with the package's own error, and the spool keeps the others."""
    transport = MemoryTransport()
    store = SQLiteEventStore(tmp_path / "spool.db")
    emitter = Emitter("c.example.com", method="post", event_store=store, transport=transport)
    emitter.input({"e": "pv", "eid": "1"})
    with pytest.raises(InvalidValueError, match="url"):
        emitter.input(poisoned("url"))
    emitter.input({"e": "pv", "eid": "2"})
    assert emitter.flush()
    assert [event["eid"] for event in transport.events] == ["1", "2"]
    assert emitter.stats().dropped["unencodable"] == 0
    emitter.close()


def test_a_post_body_keeps_the_order_around_a_poisoned_event() -> None:
    sent: list[Any] = []
    transport = MemoryTransport(respond=lambda request: sent.append(request) or 200)
    emitter = Emitter(
        "c.example.com",
        method="post",
        buffer_size=5,
        event_store=store_with_poison("ue_pr"),
        transport=transport,
    )
    emitter.flush()
    assert [event["eid"] for event in transport.events] == ["0", "1", "3"]
    assert len(sent) == 2  # the events before it, then the ones after it
    emitter.close()


@pytest.mark.parametrize("orjson", [True, False], ids=["orjson", "json"])
@pytest.mark.parametrize("field", FIELDS)
def test_a_post_queue_refuses_it_when_serialising_it_with_or_without_orjson(
    field: str, orjson: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A POST emitter's memory queue serialises each event at input(): that encoding is
    its text check, and a failed one is refused with the same error as everywhere."""
    if not orjson:
        monkeypatch.setattr(payload, "use_orjson", False)
    transport = MemoryTransport()
    emitter = Emitter("c.example.com", method="post", transport=transport)
    emitter.input({"e": "pv", "eid": "1", "dtm": 5})
    with pytest.raises(InvalidValueError, match=f"{field} must be text that can be sent"):
        emitter.input(poisoned(field))
    assert emitter.flush()
    assert transport.events == [
        {"e": "pv", "eid": "1", "dtm": "5", "stm": transport.events[0]["stm"]}
    ]
    emitter.close()
