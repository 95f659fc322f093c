"""Helpers for testing code that tracks events, without a network.

``CapturingEmitter`` keeps what a tracker sends, decoded, instead of sending it::

    emitter = CapturingEmitter()
    Tracker(emitter).track_page_view("http://example.com")
    assert emitter.events[0].event_type == "page_view"

``capture_events()`` catches the events of every :class:`Tracker` in the process,
including trackers your application made at import time::

    with capture_events() as events:
        app.checkout(order)
    assert [e.event_type for e in events] == ["transaction", "transaction_item"]
    assert all(e.valid for e in events)        # validated against Iglu schemas

Events are validated against Iglu schemas (bundled Iglu Central plus ``schemas``
directories) when the ``collector`` extra is installed. Without it they are only
decoded: their ``valid`` is None (never True), and a
:class:`ValidationUnavailableWarning` says why when the capture starts.

For a real HTTP collector in tests, use the pytest fixture ``snowplow_collector``
(registered by :mod:`snowplow_tracker_pytest`).

``MemoryTransport`` stands in for the network under any emitter (``transport=``):
it keeps each request and answers with the statuses you script.

``FakeClock`` is a clock for emitters whose waits return at once, so retries and
``Retry-After`` can be tested without sleeping.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from ._distribution import DISTRIBUTION
from ._text import check_event_text
from .emitters import stringify
from .tracker import Tracker
from .transport import Request, SendResult

__all__ = [
    "CapturedEvent",
    "CapturingEmitter",
    "FakeClock",
    "MemoryTransport",
    "ValidationUnavailableWarning",
    "capture_events",
]


class ValidationUnavailableWarning(UserWarning):
    """Captured events cannot be validated: the ``collector`` extra is not installed."""


_EVENT_TYPES = {
    "pv": "page_view", "pp": "page_ping", "se": "struct", "ev": "struct", "ue": "unstruct",
    "tr": "transaction", "ti": "transaction_item", "ad": "ad_impression",
}  # fmt: skip


@dataclass
class CapturedEvent:
    """One tracked event: its wire parameters, decoded, with any validation errors."""

    raw: dict[str, str]
    unstruct_event: Optional[dict[str, Any]] = None
    contexts: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    validated: bool = False

    @property
    def valid(self) -> Optional[bool]:
        """True or False once validated against Iglu schemas; None when it could not be."""
        return not self.errors if self.validated else None

    @property
    def event_type(self) -> Optional[str]:
        """page_view, struct, unstruct, transaction, transaction_item..."""
        return _EVENT_TYPES.get(self.raw.get("e", ""))

    @property
    def schema(self) -> Optional[str]:
        """The self-describing event's schema URI, if it is one."""
        schema = (self.unstruct_event or {}).get("schema")
        return schema if isinstance(schema, str) else None

    @property
    def data(self) -> Any:
        """The self-describing event's data, if it is one."""
        return (self.unstruct_event or {}).get("data")

    @property
    def context_schemas(self) -> list[str]:
        return [str(c.get("schema")) for c in self.contexts]

    def __getitem__(self, name: str) -> str:
        return self.raw[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.raw.get(name, default)


def _json_field(raw: Mapping[str, str], encoded: str, plain: str) -> Any:
    try:
        if encoded in raw:
            value = raw[encoded]
            return json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if plain in raw:
            return json.loads(raw[plain])
    except ValueError:
        return None
    return None


def decode(raw: dict[str, str]) -> CapturedEvent:
    """Decode ``ue_px``/``ue_pr`` and ``cx``/``co``; no validation."""
    event = CapturedEvent(raw)
    unstruct = _json_field(raw, "ue_px", "ue_pr")
    if isinstance(unstruct, dict) and isinstance(unstruct.get("data"), dict):
        event.unstruct_event = unstruct["data"]
    contexts = _json_field(raw, "cx", "co")
    if isinstance(contexts, dict) and isinstance(contexts.get("data"), list):
        event.contexts = [c for c in contexts["data"] if isinstance(c, dict)]
    return event


class _Validator:
    """Validates like the local collector, if its extra is installed."""

    def __init__(self, schemas: Iterable[str | Path], enabled: Optional[bool]) -> None:
        self._resolver: Any = None
        self.unavailable: Optional[str] = None  # why events are not validated, if asked to be
        if enabled is False:
            return
        try:
            from .collector.iglu import Resolver
        except ImportError as exc:
            if enabled:
                raise
            self.unavailable = (
                f"captured events are not validated ({exc}); their `valid` is None. "
                f"Install the collector extra to validate them: "
                f"pip install '{DISTRIBUTION}[collector]'"
            )
            warnings.warn(self.unavailable, ValidationUnavailableWarning, stacklevel=3)
            return
        self._resolver = Resolver(schemas)

    def __call__(self, raw: dict[str, str]) -> CapturedEvent:
        event = decode(raw)
        if self._resolver is not None:
            from .collector.validate import check_event

            event.errors = check_event("POST", raw, self._resolver).errors
            event.validated = True
        return event


class CapturingEmitter:
    """An emitter that keeps every event in ``events``, decoded, and sends nothing.

    ``validate``: None (default) validates if the ``collector`` extra is installed
    (else warns, and ``validation_unavailable`` says why), True requires it, False
    only decodes. Events not validated have ``valid`` None and are in neither
    :meth:`good` nor :meth:`bad`.
    """

    def __init__(
        self, *, validate: Optional[bool] = None, schemas: Iterable[str | Path] = ()
    ) -> None:
        self.events: list[CapturedEvent] = []
        self._validate = _Validator(schemas, validate)
        self.validation_unavailable = self._validate.unavailable
        self._lock = threading.Lock()

    def input(self, payload: Mapping[str, Any]) -> None:
        pairs = stringify(payload)
        check_event_text(pairs)  # what this package's emitters refuse at input()
        event = self._validate(pairs)
        with self._lock:
            self.events.append(event)

    def flush(self) -> None:
        """Nothing to send."""

    def sync_flush(self, timeout: Optional[float] = None) -> bool:
        return True

    def good(self) -> list[CapturedEvent]:
        return [e for e in self.events if e.valid is True]

    def bad(self) -> list[CapturedEvent]:
        return [e for e in self.events if e.valid is False]

    def clear(self) -> None:
        with self._lock:
            self.events.clear()


@contextlib.contextmanager
def capture_events(
    *,
    send: bool = False,
    validate: Optional[bool] = None,
    schemas: Iterable[str | Path] = (),
) -> Iterator[list[CapturedEvent]]:
    """Catch every event any Tracker tracks inside the block; yield them as a live list.

    With ``send=False`` (default) the trackers' own emitters get nothing, so no
    network is used; with ``send=True`` they also get every event as usual.
    """
    emitter = CapturingEmitter(validate=validate, schemas=schemas)
    original = Tracker._hand_over

    def hand_over(self: Tracker, pairs: dict[str, Any]) -> None:
        # Every event of every Tracker passes here once, finished, on its way to the emitters.
        emitter.input(pairs)
        if send:
            original(self, pairs)

    Tracker._hand_over = hand_over  # type: ignore[method-assign]
    try:
        yield emitter.events
    finally:
        Tracker._hand_over = original  # type: ignore[method-assign]


class FakeClock:
    """A clock for emitters (``clock=FakeClock()``) whose waits return at once.

    A wait that is not cut short by its event moves the time forward by the
    whole timeout and is recorded in :attr:`sleeps`, so a test can check a
    backoff or a ``Retry-After`` without sleeping.

    .. versionadded:: 0.6.0
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds

    def wait(self, event: threading.Event, timeout: float) -> bool:
        if event.is_set():
            return True
        with self._lock:
            self.sleeps.append(timeout)
            self.now += timeout
        return event.is_set()

    async def async_wait(self, event: Any, timeout: float) -> bool:
        return self.wait(event, timeout)


class MemoryTransport:
    """A transport that keeps every request instead of sending it: hand it to any emitter.

    ::

        transport = MemoryTransport()
        emitter = AsyncEmitter("collector.example.com", method="post", transport=transport)
        Tracker(emitter).track_page_view("http://example.com")
        emitter.flush()
        assert transport.events[0]["url"] == "http://example.com"

    Each request is answered with the next of ``statuses`` (then 200 for
    ever), or by ``respond(request)`` if given, which returns a status or a
    :class:`~snowplow_tracker.transport.SendResult`, or raises to stand for a
    network error. ``requests`` holds every request (GET parameters or POST
    body, as sent), ``events`` the events of the 2xx answered ones, decoded.
    Works with :class:`~snowplow_tracker.emitters.Emitter`,
    :class:`~snowplow_tracker.emitters.AsyncEmitter` and
    :class:`~snowplow_tracker.aio.AsyncioEmitter`.

    .. versionadded:: 0.6.0
    """

    def __init__(
        self,
        statuses: Iterable[int] = (),
        respond: Optional[Callable[[Request], Union[int, SendResult]]] = None,
    ) -> None:
        self.requests: list[Request] = []
        self.events: list[dict[str, str]] = []
        self.timeouts: list[float] = []
        self.closed = False
        self._statuses = list(statuses)
        self._respond = respond
        self._lock = threading.Lock()

    def send(self, request: Request, timeout: float) -> SendResult:
        with self._lock:
            self.requests.append(request)
            self.timeouts.append(timeout)
            status: Union[int, SendResult]
            try:
                if self._respond is not None:
                    status = self._respond(request)
                else:
                    status = self._statuses.pop(0) if self._statuses else 200
            except Exception as exc:  # the test's stand-in for a network error
                return SendResult(None, exc)
            result = status if isinstance(status, SendResult) else SendResult(status)
            if result.ok:
                self.events.extend(_events_of(request))
            return result

    async def asend(self, request: Request, timeout: float) -> SendResult:
        return self.send(request, timeout)

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.close()


def _events_of(request: Request) -> list[dict[str, str]]:
    if request.method == "GET":
        return [dict(request.params or {})]
    body = json.loads(request.body or b"{}")
    data = body.get("data", [])
    return [dict(event) for event in data] if isinstance(data, list) else []
