"""Public type aliases and protocols (the 1.x names, and ours)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, Protocol, Union, runtime_checkable

#: One event's name-value pairs.
PayloadDict = dict[str, Any]
PayloadDictList = list[PayloadDict]
#: ``json.dumps(default=...)``: called for values JSON cannot serialise.
JsonEncoderFunction = Callable[[Any], Any]

#: ``on_success(sent)``: ``sent`` is the number of events sent, and also their sequence.
SuccessCallback = Callable[[Any], Any]
#: ``on_failure(count_sent, unsent_events)``
FailureCallback = Callable[[int, PayloadDictList], Any]

HttpProtocol = Literal["http", "https"]
Method = Literal["get", "post"]
SupportedPlatform = Literal["pc", "tv", "mob", "cnsl", "iot", "web", "srv", "app", "headset"]

#: The HTML node names and input types of the change_form and submit_form schemas.
FORM_NODE_NAMES = frozenset({"INPUT", "TEXTAREA", "SELECT"})
FORM_TYPES = frozenset(
    {
        "button", "checkbox", "color", "date", "datetime", "datetime-local", "email", "file",
        "hidden", "image", "month", "number", "password", "radio", "range", "reset", "search",
        "submit", "tel", "text", "time", "url", "week",
    }
)  # fmt: skip
FormNodeName = Literal["INPUT", "TEXTAREA", "SELECT"]
ElementClasses = Union[list[str], tuple[str, Any]]
FormClasses = Union[list[str], tuple[str, Any]]


@runtime_checkable
class EmitterLike(Protocol):
    """Anything a Tracker can send to: an object with ``input(dict)``."""

    def input(self, payload: dict[str, Any]) -> Any: ...


#: The 1.x name of the same protocol.
EmitterProtocol = EmitterLike
