"""The base of every event: context entities, a true timestamp and a per-event subject."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union, overload

from .. import contracts
from ..constants import CONTEXT_SCHEMA
from ..payload import JsonEncoder, Payload, put_json
from ..self_describing_json import SelfDescribing as SelfDescribingValue
from ..self_describing_json import as_dict
from ..subject import Subject

Context = Optional[Sequence[SelfDescribingValue]]
Timestamp = Optional[Union[int, float]]


def finite(value: object) -> bool:
    """The common case of ``contracts.number``: a plain int, or a finite float."""
    cls = value.__class__
    return cls is int or (cls is float and value - value == 0.0)  # type: ignore[operator]


class Event:
    """What every event has: ``context`` entities, a ``true_timestamp`` and an ``event_subject``.

    ``Event(dict_=None, event_subject=None, context=None, true_timestamp=None)``
    is the 1.x base class; ``dict_`` holds the event's own tracker-protocol
    pairs (``{"e": "pv", "url": ...}``), kept in :attr:`payload`. Subclasses
    set them from named arguments. A Tracker completes an event with
    :meth:`Tracker.track <snowplow_tracker.tracker.Tracker.track>`.

    * ``context``: a list of self-describing JSON entities
      (:class:`~snowplow_tracker.SelfDescribingJson` or ``{"schema", "data"}`` dicts).
    * ``true_timestamp``: when the event really happened, ms since the epoch
      (sent as ``ttm``); the device time ``dtm`` is stamped when it is tracked.
    * ``event_subject``: a :class:`~snowplow_tracker.Subject` whose fields win
      over the tracker's subject for this event only.
    """

    def __init__(
        self,
        dict_: Mapping[str, Any] | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        self._setup(dict(dict_) if dict_ else {}, event_subject, context, true_timestamp)

    def _setup(
        self,
        pairs: dict[str, Any],
        event_subject: Subject | None,
        context: Context,
        true_timestamp: Timestamp,
    ) -> None:
        """What every constructor does: check the common arguments and keep ``pairs`` (a
        fresh dict, of which the ``None`` and ``""`` values are left out) as the payload."""
        if contracts._enabled and not (
            (event_subject is None or event_subject.__class__ is Subject)
            and (context is None or context.__class__ is list)
            and (true_timestamp is None or finite(true_timestamp))
        ):
            check_common(type(self).__name__ + "()", event_subject, context, true_timestamp)
        self._pairs = pairs if all(pairs.values()) else own_pairs(pairs)
        self.event_subject = event_subject
        self.context = context or []
        self.true_timestamp = true_timestamp

    #: The :class:`Payload` read or set through :attr:`payload`, if any: until then the pairs
    #: live in ``_pairs`` alone, as most events are tracked without anyone reading it.
    _payload: Payload | None = None

    @property
    def payload(self) -> Payload:
        """The event's own tracker-protocol pairs (1.x), as a :class:`Payload` over the same
        dict: what is added to it is part of the event."""
        payload = self._payload
        if payload is None:
            payload = self._payload = Payload.__new__(Payload)
            payload.nv_pairs = self._pairs
        return payload

    @payload.setter
    def payload(self, payload: Payload) -> None:
        self._payload = payload

    def build_payload(
        self,
        encode_base64: bool,
        json_encoder: JsonEncoder,
        subject: Subject | None = None,
    ) -> Payload:
        """A new :class:`Payload` of this event: its own pairs, its JSON fields, contexts
        (``cx``/``co``), ``ttm``, and the subject fields (``event_subject``'s over
        ``subject``'s). Pure: the event is not changed, nothing is stamped."""
        payload = self._payload
        pairs = dict(self._pairs if payload is None else payload.nv_pairs)
        if self.context:
            envelope = {"schema": CONTEXT_SCHEMA, "data": [as_dict(c) for c in self.context]}
            put_json(pairs, envelope, encode_base64, json_encoder, "cx", "co")
        if self.true_timestamp is not None:
            pairs["ttm"] = int(self.true_timestamp)
        event_subject = self.event_subject
        if event_subject is not None:
            merge(pairs, event_subject.combine_subject(subject))
        elif subject is not None:
            merge(pairs, subject.standard_nv_pairs)
        result = Payload.__new__(Payload)
        result.nv_pairs = pairs
        return result

    def check_schemas(self, where: str) -> None:
        """Refuse what a pipeline would: context entities that are not self-describing JSON
        with an Iglu schema URI. The tracker calls this when it tracks the event."""
        context = self.context
        if context and not contracts.checked_contexts(context):
            plain = [as_dict(c) if not isinstance(c, Mapping) else c for c in context]
            contracts.contexts(where, "context", plain)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.payload.nv_pairs!r})"


def merge(pairs: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """``Payload.add_dict``, at C speed when (as usual) nothing needs leaving out."""
    pairs.update(own_pairs(extra))


@overload
def own_pairs(pairs: dict[str, Any]) -> dict[str, Any]: ...
@overload
def own_pairs(pairs: Mapping[str, Any]) -> Mapping[str, Any]: ...
def own_pairs(pairs: Mapping[str, Any]) -> Mapping[str, Any]:
    """``pairs`` without the ``None`` and ``""`` values that ``Payload.add`` leaves out."""
    if not all(pairs.values()):  # the usual case, every value truthy, is quick to tell
        return {
            name: value
            for name, value in pairs.items()
            if value is not None and not (isinstance(value, str) and not value)
        }
    return pairs


def check_common(where: str, event_subject: object, context: object, tstamp: object) -> None:
    if event_subject is not None and not isinstance(event_subject, Subject):
        contracts.fail_type(where, "event_subject", "a Subject or None", event_subject)
    if context is not None:
        if not isinstance(context, (list, tuple)):
            contracts.fail_type(
                where, "context", "a non-empty list of self-describing JSON", context
            )
        for index, entity in enumerate(context):
            if not isinstance(entity, Mapping) and not hasattr(entity, "to_json"):
                contracts.fail_type(where, f"context[{index}]", "self-describing JSON", entity)
    contracts.number(where, "true_timestamp", tstamp, optional=True)
