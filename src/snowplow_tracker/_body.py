"""What goes on the wire: a batch cut into requests, and each request's query or body.

A POST body is the payload_data 1-0-4 envelope around the batch's events,
each stamped with ``stm``; a GET carries one event as its query. An event
that cannot be encoded as UTF-8 (a lone surrogate that slipped past the
checks) makes a unit of its own, :class:`Unencodable`, which the delivery
core drops and counts as ``unencodable`` without sending: the rest of its
batch goes out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from .constants import PAYLOAD_DATA_SCHEMA
from .event_store import Record, decode_record, encode_record
from .payload import dumps
from .transport import Request

POST_PREFIX = ('{"schema":"' + PAYLOAD_DATA_SCHEMA + '","data":[').encode()
POST_SUFFIX = b"]}"
ENVELOPE_BYTES = len(POST_PREFIX) + len(POST_SUFFIX)
#: Bytes the ``,"stm":"<13 digits>"`` pair adds to an event, plus its comma in the body.
STM_BYTES = 22 + 1


class Chunk(list):  # type: ignore[type-arg]
    """Events for one POST, with each event's compact record, so a POST serialises each once."""

    records: list[Record]
    bare: bool  # every record is compact bytes


class Unencodable(list):  # type: ignore[type-arg]
    """One event that cannot be sent: it has text that is not valid UTF-8."""


def units_for(
    events: Sequence[Record], method: str, byte_limit: Optional[int]
) -> list[list[Record]]:
    """The requests a batch is sent in: one per event for GET, byte-limited bodies for POST."""
    if method == "get":
        return [[event] if _encodable(event) else Unencodable([event]) for event in events]
    return split_batch(events, byte_limit)


def _encodable(event: Record) -> bool:
    if type(event) is bytes:
        return True
    # Joined, lone surrogates stay lone (str never pairs them), so one check covers them all.
    text = "".join(event.values()) + "".join(event)  # type: ignore[union-attr,arg-type]
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def split_batch(batch: Sequence[Record], byte_limit: int | None) -> list[list[Record]]:
    """Cut ``batch`` into runs whose POST bodies stay within ``byte_limit`` bytes.

    ``batch`` holds event dicts, or compact records (``event_store.Record``) as a
    memory store queues them; each chunk keeps its events' records for
    :func:`post_body`. Unencodable events come out alone, as :class:`Unencodable`.
    """
    if not batch:
        return []
    bare = _all_bytes(batch)
    records: list[Record] = list(batch) if bare else [encode_record(event) for event in batch]
    sizes = None if bare else [_record_bytes(record) for record in records]
    encodable = sizes is None or None not in sizes
    if encodable and (byte_limit is None or _body_size(records, sizes) <= byte_limit):
        return [_chunk(batch, records, bare)]
    chunks: list[list[Record]] = []
    first, size = 0, ENVELOPE_BYTES
    for index, record in enumerate(records):
        record_bytes = _record_bytes(record) if sizes is None else sizes[index]
        if record_bytes is None:  # alone, and the run before it ends here
            if index > first:
                chunks.append(_chunk(batch[first:index], records[first:index], bare))
            chunks.append(Unencodable([batch[index]]))
            first, size = index + 1, ENVELOPE_BYTES
            continue
        if byte_limit is not None and index > first and size + record_bytes > byte_limit:
            chunks.append(_chunk(batch[first:index], records[first:index], bare))
            first, size = index, ENVELOPE_BYTES
        size += record_bytes
    if first < len(records):
        chunks.append(_chunk(batch[first:], records[first:], bare))
    return chunks


def _all_bytes(records: Sequence[Record]) -> bool:
    # map and set run in C: no Python code per record.
    return set(map(type, records)) == {bytes}


def _chunk(events: Sequence[Record], records: list[Record], bare: bool) -> list[Record]:
    chunk = Chunk(events)
    chunk.records = records
    chunk.bare = bare
    return chunk


def _record_bytes(record: Record) -> Optional[int]:
    """Bytes ``record`` takes in a body; None if it cannot be encoded."""
    if type(record) is bytes:
        return len(record) + 1 + STM_BYTES
    try:
        return len(dumps(record).encode()) + STM_BYTES
    except UnicodeEncodeError:
        return None


def _body_size(records: list[Record], sizes: Optional[list[Optional[int]]]) -> int:
    if sizes is None:
        return sum(map(len, records)) + (1 + STM_BYTES) * len(records) + ENVELOPE_BYTES
    return sum(sizes) + ENVELOPE_BYTES  # type: ignore[arg-type]


def post_body(events: Sequence[Record], stm: str) -> bytes:
    """The payload_data 1-0-4 body for ``events``, each stamped with ``stm``."""
    records = getattr(events, "records", None)
    if records is None:
        records = [encode_record(event) for event in events]
        bare = _all_bytes(records) if records else True
    else:
        bare = events.bare  # type: ignore[attr-defined]
    # A compact record is its event's JSON without the closing brace: the "stm" pair and
    # the brace follow it, so a body of records is one join.
    tail = b',"stm":"' + stm.encode() + b'"}'
    if bare:
        data = (tail + b",").join(records) + tail if records else b""
    else:
        data = b",".join(
            [
                record + tail if type(record) is bytes else dumps({**record, "stm": stm}).encode()
                for record in records
            ]
        )
    return POST_PREFIX + data + POST_SUFFIX


def request_for(method: str, url: str, events: list[Record], stm: str) -> Request:
    """The request that sends ``events`` (one event for GET) to ``url``."""
    if method == "post":
        return Request("POST", url, None, post_body(events, stm))
    return Request("GET", url, {**decode_record(events[0]), "stm": stm})
