"""What ``on_success`` receives: the number of events sent, which is also their sequence."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, SupportsIndex, overload

from .event_store import Record, decode_record


class SentEvents(int):
    """An ``int``, the count of events sent (0.4.0 and 0.5.0: ``on_success(count)``), and
    a read-only sequence of the sent event dicts (1.x: ``on_success(events)``).

    It compares, adds and formats as the count (``sent == 3``, ``sent + 1``,
    ``f"{sent}"``), and ``len()``, indexing and iteration give the events, which
    are decoded on first use only. It equals a list or tuple of the same events.
    """

    def __new__(cls, records: Sequence[Record]) -> SentEvents:
        sent = super().__new__(cls, len(records))
        sent._records = records
        sent._events = None
        return sent

    _records: Sequence[Record]
    _events: list[dict[str, str]] | None

    @property
    def events(self) -> list[dict[str, str]]:
        """The sent events, as dicts of strings."""
        if self._events is None:
            self._events = [decode_record(record) for record in self._records]
        return self._events

    def __len__(self) -> int:
        return int(self)

    @overload
    def __getitem__(self, index: SupportsIndex) -> dict[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[dict[str, str]]: ...
    def __getitem__(self, index: Any) -> Any:
        return self.events[index]

    def __iter__(self) -> Iterator[dict[str, str]]:
        return iter(self.events)

    def __contains__(self, event: object) -> bool:
        return event in self.events

    def __eq__(self, other: object) -> bool:
        if isinstance(other, (list, tuple)):
            return self.events == list(other)
        return int(self) == other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = int.__hash__

    def __str__(self) -> str:
        return str(int(self))

    def __repr__(self) -> str:
        return f"SentEvents({int(self)})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (SentEvents, (list(self._records),))
