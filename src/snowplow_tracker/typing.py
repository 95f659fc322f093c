"""Public type aliases and protocols."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

#: ``on_success(count_sent)``
SuccessCallback = Callable[[int], Any]
#: ``on_failure(count_sent, unsent_events)``
FailureCallback = Callable[[int, "list[dict[str, str]]"], Any]


@runtime_checkable
class EmitterLike(Protocol):
    """Anything a Tracker can send to: an object with ``input(dict)``."""

    def input(self, payload: dict[str, Any]) -> Any: ...
