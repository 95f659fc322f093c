"""The 1.x event store protocol, and the adapter that puts such a store under our emitters.

A 1.x store (``add_event``, ``get_events_batch``, ``cleanup``, ``size``) keeps
the events; the emitter's delivery core keeps its own promises on top of it:
every event's outcome is counted and reported once; a batch whose delivery
is over (sent, or failed for good) is let go with ``cleanup(batch, False)``;
one left for a later retry goes back with ``cleanup(batch, True)``; and
``max_queue_size``/``overflow`` still bound what waits.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable

Event = dict[str, Any]


@runtime_checkable
class V1EventStore(Protocol):
    """The 1.x ``EventStore`` protocol."""

    def add_event(self, payload: Event) -> bool: ...

    def get_events_batch(self) -> list[Event]: ...

    def cleanup(self, batch: list[Event], need_retry: bool) -> None: ...

    def size(self) -> int: ...


class InMemoryEventStore:
    """The 1.x default store: a list of event dicts holding at most ``buffer_capacity``;
    when it is full a new event is refused (logged, and counted by the emitter as
    ``queue_full``)."""

    def __init__(self, logger: logging.Logger, buffer_capacity: int = 10_000) -> None:
        self.event_buffer: list[Event] = []
        self.buffer_capacity = buffer_capacity
        self.logger = logger

    def add_event(self, payload: Event) -> bool:
        if self.size() >= self.buffer_capacity:
            self.logger.error("Event buffer is full, dropping event.")
            return False
        self.event_buffer.append(payload)
        return True

    def get_events_batch(self) -> list[Event]:
        batch, self.event_buffer = self.event_buffer, []
        return batch

    def cleanup(self, batch: list[Event], need_retry: bool) -> None:
        if not need_retry:
            return
        # Back at the head, in order: they were the oldest.
        kept = [event for event in batch if event not in self.event_buffer]
        room = max(0, self.buffer_capacity - len(self.event_buffer))
        self.event_buffer[:0] = kept[:room]

    def size(self) -> int:
        return len(self.event_buffer)


class V1StoreAdapter:
    """Our store protocol (``add``/``take``/``ack``/``release``...) over a 1.x store."""

    durable = False
    compact = False

    def __init__(self, store: V1EventStore) -> None:
        self.store = store
        self._keys = itertools.count(1)
        self._leased: dict[int, Event] = {}

    def __len__(self) -> int:
        return int(self.store.size())

    @property
    def nbytes(self) -> int:
        return 0

    def add(self, event: Event, size: int) -> list[Event]:
        # A store that refuses the event (full) drops it: reported like an eviction.
        return [] if self.store.add_event(event) else [event]

    def take(self, max_events: int, max_bytes: int | None) -> list[tuple[int, Event]]:
        # A 1.x store hands out everything it holds at once.
        leased = [(next(self._keys), event) for event in self.store.get_events_batch()]
        self._leased.update(leased)
        return leased

    def ack(self, keys: Iterable[int]) -> None:
        batch = self._pop(keys)
        if batch:
            self.store.cleanup(batch, False)

    def release(self, keys: Iterable[int]) -> None:
        batch = self._pop(keys)
        if batch:
            self.store.cleanup(batch, True)

    def _pop(self, keys: Iterable[int]) -> list[Event]:
        return [self._leased.pop(key) for key in keys if key in self._leased]

    def evict_oldest(self, count: int) -> list[Event]:
        evicted = self.store.get_events_batch()
        self.store.cleanup(evicted[count:], True)
        return evicted[:count]

    def expire(self) -> list[Event]:
        return []

    def peek(self) -> list[Event]:
        return list(getattr(self.store, "event_buffer", []))

    def close(self) -> None:
        """Nothing to release: the store is the caller's."""


def is_v1_store(store: Any) -> bool:
    """Whether ``store`` speaks the 1.x protocol rather than ours."""
    return callable(getattr(store, "add_event", None)) and not callable(
        getattr(store, "take", None)
    )
