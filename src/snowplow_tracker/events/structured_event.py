"""Structured events (``e=se``): category, action, label, property, value."""

from __future__ import annotations

from .. import contracts
from ..subject import Subject
from .event import Context, Event, Timestamp, finite
from .page_view import _field, _text


def _required(where: str, value: object) -> None:
    contracts.non_empty_string(where, "value", value)


def _number(where: str, value: object) -> None:
    contracts.number(where, "value", value, optional=True)


class StructuredEvent(Event):
    """A structured event (``e=se``), in the style of Google Analytics events.

    ``category`` and ``action`` are required; ``label``, ``property_`` and a
    numeric ``value`` are optional. A self-describing event says more.
    """

    def __init__(
        self,
        category: str,
        action: str,
        label: str | None = None,
        property_: str | None = None,
        value: int | float | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if contracts._enabled and not (
            category.__class__ is str
            and category
            and action.__class__ is str
            and action
            and (label is None or label.__class__ is str)
            and (property_ is None or property_.__class__ is str)
            and (value is None or finite(value))
        ):
            where = "StructuredEvent()"
            contracts.non_empty_string(where, "category", category)
            contracts.non_empty_string(where, "action", action)
            contracts.optional_string(where, "label", label)
            contracts.optional_string(where, "property_", property_)
            contracts.number(where, "value", value, optional=True)
        pairs = {
            "e": "se",
            "se_ca": category,
            "se_ac": action,
            "se_la": label,
            "se_pr": property_,
            "se_va": value,
        }
        self._setup(pairs, event_subject, context, true_timestamp)

    category = _field("se_ca", "category: the event's category", _required)
    action = _field("se_ac", "action: what was done", _required)
    label = _field("se_la", "label: what it was done to", _text)
    property_ = _field("se_pr", "property_: a property of the action or object", _text)
    value = _field("se_va", "value: a number about the action", _number)


__all__ = ["StructuredEvent"]
