"""RedisWorker's batches: decoding stored values, setting poison aside, and reading the
emitter's reports into what was sent and what goes back to Redis."""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from .payload import dumps

logger = logging.getLogger("snowplow_tracker.redis_worker")

Raw = Union[bytes, str]
#: A stored value larger than this is not an event a collector would take: set aside.
MAX_EVENT_BYTES = 1 << 20
_PREVIEW = 60  # characters of a poison value shown in its log line
_SCALARS = (str, int, float, bool, type(None))


def event_identity(event: Mapping[str, Any]) -> str:
    """What matches an unsent event reported by an emitter to the event the worker gave it."""
    eid = event.get("eid")
    if isinstance(eid, str) and eid:
        return eid
    return dumps({k: str(v) for k, v in sorted(event.items()) if k != "stm"})


@dataclass
class Reports:
    """What an emitter reported for the batch in flight (callbacks may come from any thread)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    reported: int = 0
    unsent: list[Mapping[str, Any]] = field(default_factory=list)

    def success(self, count: int) -> None:
        with self.lock:
            self.reported += count

    def failure(self, count: int, unsent: Sequence[Mapping[str, Any]]) -> None:
        with self.lock:
            self.reported += count + len(unsent)
            self.unsent.extend(unsent)


@dataclass
class Batch:
    raws: list[Raw]  # the valid ones, in the order of ``events``
    events: list[dict[str, Any]]
    invalid: list[Raw]
    reports: Reports = field(default_factory=Reports)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


def decode(raws: list[Raw], max_event_bytes: int) -> Batch:
    """Split stored values into events and poison (each poison value logged once, here)."""
    valid: list[Raw] = []
    events: list[dict[str, Any]] = []
    invalid: list[Raw] = []
    for raw in raws:
        event, problem = _parse(raw, max_event_bytes)
        if event is not None:
            valid.append(raw)
            events.append(event)
        else:
            invalid.append(raw)
            logger.error(  # once per value: it leaves the list with this batch
                "a stored value is not an event (%s), moved aside: %s", problem, _peek(raw)
            )
    return Batch(valid, events, invalid)


def _parse(raw: Raw, max_event_bytes: int) -> tuple[dict[str, Any] | None, str]:
    if len(raw) > max_event_bytes:
        return None, f"{len(raw)} bytes, more than max_event_bytes {max_event_bytes}"
    try:
        event = json.loads(raw)
    except RecursionError:  # nested deeper than the parser's stack
        return None, "nested too deep to parse"
    except ValueError as exc:
        return None, f"not JSON: {exc}"
    if not isinstance(event, dict):
        return None, f"a JSON {type(event).__name__}, not an object"
    if not all(isinstance(value, _SCALARS) for value in event.values()):
        return None, "an object with nested values (an event's fields are strings)"
    return event, ""


def _peek(raw: Raw) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    return repr(text[:_PREVIEW]) + ("..." if len(text) > _PREVIEW else "")


def outcome(batch: Batch, trusted: bool) -> tuple[list[Raw], list[Raw]]:
    """Split the batch into acknowledged and unsent events.

    ``trusted``: the emitter has no outcome callbacks, so returning without an error is
    its only report.
    """
    if batch.error is not None:
        logger.warning(
            "the emitter raised; %d event(s) stay queued: %r", len(batch.raws), batch.error
        )
        return [], batch.raws
    if trusted:
        return batch.raws, []
    with batch.reports.lock:
        reported = batch.reports.reported
        failed = Counter(event_identity(e) for e in batch.reports.unsent)
    if reported < len(batch.events):
        logger.warning(
            "the emitter reported %d of %d event(s); the rest are sent again later",
            reported,
            len(batch.events),
        )
        return [], batch.raws
    sent: list[Raw] = []
    unsent: list[Raw] = []
    for raw, event in zip(batch.raws, batch.events):
        identity = event_identity(event)
        if failed[identity] > 0:
            failed[identity] -= 1
            unsent.append(raw)
        else:
            sent.append(raw)
    return sent, unsent
