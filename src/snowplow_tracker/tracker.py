"""The Tracker: turns tracking calls into tracker-protocol events for its emitters."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union

from . import contracts
from .constants import (
    BASE_SCHEMA_PATH,
    CONTEXT_SCHEMA,
    DEFAULT_ENCODE_BASE64,
    SCHEMA_TAG,
    SCREEN_VIEW_SCHEMA,
    UNSTRUCT_EVENT_SCHEMA,
    VERSION,
)
from .contracts import fail_type, fail_value
from .payload import JsonEncoder, Payload
from .self_describing_json import SelfDescribing, as_dict
from .subject import Subject
from .typing import EmitterLike

__all__ = [
    "BASE_SCHEMA_PATH",
    "CONTEXT_SCHEMA",
    "DEFAULT_ENCODE_BASE64",
    "SCHEMA_TAG",
    "UNSTRUCT_EVENT_SCHEMA",
    "VERSION",
    "Tracker",
]

Contexts = Optional[Sequence[SelfDescribing]]
Timestamp = Optional[Union[int, float]]
_ITEM_KEYS = frozenset({"sku", "price", "quantity", "name", "category", "currency", "context"})


class Tracker:
    """Builds events and hands each one to every emitter.

    ``Tracker(emitters, subject=None, namespace=None, app_id=None, encode_base64=True)``
    is the 0.5.0 form. ``emitters`` is one emitter (any object with an
    ``input(dict)`` method) or a list or tuple of them. The 0.4.0 keyword
    ``emitter=`` and the 1.x form ``Tracker(namespace, emitters, ...)`` work too.
    Every ``track_*`` method returns the tracker, so calls chain.
    """

    def __init__(
        self,
        emitters: EmitterLike | Sequence[EmitterLike] | str | None = None,
        subject: Any = None,
        namespace: Any = None,
        app_id: str | None = None,
        encode_base64: bool = DEFAULT_ENCODE_BASE64,
        json_encoder: JsonEncoder = None,
        *,
        emitter: EmitterLike | Sequence[EmitterLike] | None = None,
    ) -> None:
        if isinstance(emitters, str):
            # The 1.x order: Tracker(namespace, emitters, subject=None, app_id=None, ...).
            emitters, subject, namespace = subject, namespace, emitters
        if emitter is not None:
            if emitters is not None:
                raise TypeError("Tracker() takes emitters or emitter, not both")
            emitters = emitter
        if contracts._enabled:
            _check_init(emitters, subject, namespace, app_id, encode_base64, json_encoder)
        self.emitters: list[EmitterLike] = _as_emitter_list(emitters)
        self.subject: Subject = subject if subject is not None else Subject()
        self.encode_base64 = encode_base64
        self.json_encoder = json_encoder
        self.standard_nv_pairs: dict[str, Any] = {"tv": VERSION, "tna": namespace, "aid": app_id}

    @staticmethod
    def get_uuid() -> str:
        """A new random (version 4) UUID in canonical lowercase form."""
        return str(uuid.uuid4())

    @staticmethod
    def get_timestamp(tstamp: Timestamp = None) -> int:
        """``tstamp`` (ms since the epoch) as an int, or now; fractions are truncated."""
        if tstamp is None:
            return int(time.time() * 1000)
        if contracts._enabled:
            contracts.number("get_timestamp()", "tstamp", tstamp)
        return int(tstamp)

    # -- configuration -------------------------------------------------------------------------

    def set_subject(self, subject: Subject) -> Tracker:
        """Attach ``subject``'s fields to every later event."""
        if contracts._enabled and not isinstance(subject, Subject):
            fail_type("set_subject()", "subject", "a Subject", subject)
        self.subject = subject
        return self

    def add_emitter(self, emitter: EmitterLike) -> Tracker:
        """Send every later event to ``emitter`` too."""
        if contracts._enabled:
            _check_emitter("add_emitter()", "emitter", emitter)
        self.emitters.append(emitter)
        return self

    def flush(self, is_async: bool = False) -> Tracker:
        """Send what every emitter has buffered.

        By default each emitter sends synchronously (``sync_flush``); with
        ``is_async=True`` each emitter's ``flush()`` is called, which for
        :class:`~snowplow_tracker.emitters.AsyncEmitter` returns at once.
        """
        for emitter in self.emitters:
            if is_async or not _call_if_present(emitter, "sync_flush"):
                _call_if_present(emitter, "flush")
        return self

    # -- the pipeline --------------------------------------------------------------------------

    def track(self, pb: Payload) -> Tracker:
        """Hand a finished payload to every emitter."""
        pairs = pb.nv_pairs
        emitters = self.emitters
        if len(emitters) == 1:
            emitters[0].input(pairs)
        else:
            # Each emitter gets its own dict, so one that keeps or edits it cannot affect another.
            for emitter in emitters:
                emitter.input(dict(pairs))
        return self

    def complete_payload(self, pb: Payload, context: Contexts, tstamp: Timestamp) -> Tracker:
        """Stamp ``eid``, ``dtm``, contexts, tracker and subject fields, then track."""
        pb.add("eid", Tracker.get_uuid())
        pb.add("dtm", Tracker.get_timestamp(tstamp))
        self._add_contexts(pb, context)
        pb.add_dict(self.standard_nv_pairs)
        pb.add_dict(self.subject.standard_nv_pairs)
        return self.track(pb)

    def _add_contexts(self, pb: Payload, context: Contexts) -> None:
        if context:
            envelope = {"schema": CONTEXT_SCHEMA, "data": [as_dict(c) for c in context]}
            pb.add_json(envelope, self.encode_base64, "cx", "co", self.json_encoder)

    # -- events --------------------------------------------------------------------------------

    def track_page_view(
        self,
        page_url: str,
        page_title: str | None = None,
        referrer: str | None = None,
        context: Contexts = None,
        tstamp: Timestamp = None,
    ) -> Tracker:
        """A page view (``e=pv``) of ``page_url``."""
        if contracts._enabled:
            where = "track_page_view()"
            contracts.non_empty_string(where, "page_url", page_url)
            contracts.optional_string(where, "page_title", page_title)
            contracts.optional_string(where, "referrer", referrer)
            _check_common(where, context, tstamp)
        pb = Payload()
        pb.add("e", "pv")
        pb.add("url", page_url)
        pb.add("page", page_title)
        pb.add("refr", referrer)
        return self.complete_payload(pb, context, tstamp)

    def track_struct_event(
        self,
        category: str,
        action: str,
        label: str | None = None,
        property_: str | None = None,
        value: int | float | None = None,
        context: Contexts = None,
        tstamp: Timestamp = None,
    ) -> Tracker:
        """A structured event (``e=se``): category, action, and optional label, property, value."""
        if contracts._enabled:
            where = "track_struct_event()"
            contracts.non_empty_string(where, "category", category)
            contracts.non_empty_string(where, "action", action)
            contracts.optional_string(where, "label", label)
            contracts.optional_string(where, "property_", property_)
            contracts.number(where, "value", value, optional=True)
            _check_common(where, context, tstamp)
        pb = Payload()
        pb.add("e", "se")
        pb.add("se_ca", category)
        pb.add("se_ac", action)
        pb.add("se_la", label)
        pb.add("se_pr", property_)
        pb.add("se_va", value)
        return self.complete_payload(pb, context, tstamp)

    def track_unstruct_event(
        self,
        event_json: SelfDescribing,
        context: Contexts = None,
        tstamp: Timestamp = None,
    ) -> Tracker:
        """A self-describing event (``e=ue``): ``{"schema": "iglu:...", "data": {...}}``."""
        if contracts._enabled:
            where = "track_unstruct_event()"
            contracts.self_describing(where, "event_json", as_dict(event_json))
            contracts.mapping(where, 'event_json["data"]', as_dict(event_json)["data"])
            _check_common(where, context, tstamp)
        envelope = {"schema": UNSTRUCT_EVENT_SCHEMA, "data": as_dict(event_json)}
        pb = Payload()
        pb.add("e", "ue")
        pb.add_json(envelope, self.encode_base64, "ue_px", "ue_pr", self.json_encoder)
        return self.complete_payload(pb, context, tstamp)

    #: The name the 1.x tracker uses for the same event.
    track_self_describing_event = track_unstruct_event

    def track_screen_view(
        self,
        name: str | None = None,
        id_: str | None = None,
        context: Contexts = None,
        tstamp: Timestamp = None,
    ) -> Tracker:
        """A screen view: a self-describing event with the screen_view 1-0-0 schema."""
        if contracts._enabled:
            where = "track_screen_view()"
            contracts.optional_string(where, "name", name)
            contracts.optional_string(where, "id_", id_)
            if not name and not id_:
                fail_value(where, "name or id_", "given (the schema needs one)", None)
            _check_common(where, context, tstamp)
        data = {key: value for key, value in (("name", name), ("id", id_)) if value is not None}
        event = {"schema": SCREEN_VIEW_SCHEMA, "data": data}
        return self.track_unstruct_event(event, context, tstamp)

    def track_ecommerce_transaction_item(
        self,
        order_id: str,
        sku: str,
        price: int | float,
        quantity: int,
        name: str | None = None,
        category: str | None = None,
        currency: str | None = None,
        context: Contexts = None,
        tstamp: Timestamp = None,
    ) -> Tracker:
        """One line of a transaction (``e=ti``); usually sent by ``track_ecommerce_transaction``."""
        if contracts._enabled:
            where = "track_ecommerce_transaction_item()"
            contracts.non_empty_string(where, "order_id", order_id)
            contracts.non_empty_string(where, "sku", sku)
            contracts.number(where, "price", price)
            contracts.integer(where, "quantity", quantity)
            contracts.optional_string(where, "name", name)
            contracts.optional_string(where, "category", category)
            contracts.optional_string(where, "currency", currency)
            _check_common(where, context, tstamp)
        pb = Payload()
        pb.add("e", "ti")
        pb.add("ti_id", order_id)
        pb.add("ti_sk", sku)
        pb.add("ti_nm", name)
        pb.add("ti_ca", category)
        pb.add("ti_pr", price)
        pb.add("ti_qu", quantity)
        pb.add("ti_cu", currency)
        return self.complete_payload(pb, context, tstamp)

    def track_ecommerce_transaction(
        self,
        order_id: str,
        total_value: int | float,
        affiliation: str | None = None,
        tax_value: int | float | None = None,
        shipping: int | float | None = None,
        city: str | None = None,
        state: str | None = None,
        country: str | None = None,
        currency: str | None = None,
        items: Iterable[Mapping[str, Any]] | None = None,
        context: Contexts = None,
        tstamp: Timestamp = None,
    ) -> Tracker:
        """A transaction (``e=tr``) and one ``e=ti`` event per item, all with one ``dtm``.

        Each item is a dict with ``sku``, ``price``, ``quantity`` and optional
        ``name``, ``category`` and ``context``; the transaction's ``context``
        is used for items that have none. The caller's dicts are not changed.
        """
        items = list(items) if items is not None else []
        if contracts._enabled:
            _check_transaction(order_id, total_value, affiliation, tax_value, shipping)
            _check_transaction_place(city, state, country, currency)
            _check_items(items)
            _check_common("track_ecommerce_transaction()", context, tstamp)
        dtm = Tracker.get_timestamp(tstamp)
        pb = Payload()
        pb.add("e", "tr")
        pb.add("tr_id", order_id)
        pb.add("tr_tt", total_value)
        pb.add("tr_af", affiliation)
        pb.add("tr_tx", tax_value)
        pb.add("tr_sh", shipping)
        pb.add("tr_ci", city)
        pb.add("tr_st", state)
        pb.add("tr_co", country)
        pb.add("tr_cu", currency)
        self.complete_payload(pb, context, dtm)
        for item in items:
            fields = {"context": context, "currency": currency, **item}
            self.track_ecommerce_transaction_item(order_id=order_id, tstamp=dtm, **fields)
        return self


# -- checks ------------------------------------------------------------------------------------


def _call_if_present(obj: object, name: str) -> bool:
    method = getattr(obj, name, None)
    if callable(method):
        method()
        return True
    return False


def _check_emitter(where: str, name: str, value: object) -> None:
    if not callable(getattr(value, "input", None)):
        fail_type(where, name, "an emitter (an object with an input(dict) method)", value)


def _as_emitter_list(emitters: Any) -> list[EmitterLike]:
    if isinstance(emitters, (list, tuple)):
        return list(emitters)
    return [emitters]


def _check_init(
    emitters: Any, subject: Any, namespace: Any, app_id: Any, encode_base64: Any, encoder: Any
) -> None:
    where = "Tracker()"
    if isinstance(emitters, (list, tuple)):
        if not emitters:
            fail_value(where, "emitters", "a non-empty list of emitters", emitters)
        for index, emitter in enumerate(emitters):
            _check_emitter(where, f"emitters[{index}]", emitter)
    else:
        _check_emitter(where, "emitters", emitters)
    if subject is not None and not isinstance(subject, Subject):
        fail_type(where, "subject", "a Subject or None", subject)
    contracts.optional_string(where, "namespace", namespace)
    contracts.optional_string(where, "app_id", app_id)
    if not isinstance(encode_base64, bool):
        fail_type(where, "encode_base64", "a bool", encode_base64)
    contracts.optional_callable(where, "json_encoder", encoder)


def _check_common(where: str, context: object, tstamp: object) -> None:
    contracts.contexts(where, "context", _plain_contexts(context))
    contracts.number(where, "tstamp", tstamp, optional=True)


def _plain_contexts(context: Any) -> Any:
    if isinstance(context, (list, tuple)):
        return [as_dict(c) if not isinstance(c, Mapping) else c for c in context]
    return context


def _check_transaction(
    order_id: object, total: object, affiliation: object, tax: object, shipping: object
) -> None:
    where = "track_ecommerce_transaction()"
    contracts.non_empty_string(where, "order_id", order_id)
    contracts.number(where, "total_value", total)
    contracts.optional_string(where, "affiliation", affiliation)
    contracts.number(where, "tax_value", tax, optional=True)
    contracts.number(where, "shipping", shipping, optional=True)


def _check_transaction_place(
    city: object, state: object, country: object, currency: object
) -> None:
    where = "track_ecommerce_transaction()"
    for name, value in (("city", city), ("state", state), ("country", country)):
        contracts.optional_string(where, name, value)
    contracts.optional_string(where, "currency", currency)


def _check_items(items: list[Any]) -> None:
    where = "track_ecommerce_transaction()"
    for index, item in enumerate(items):
        contracts.mapping(where, f"items[{index}]", item)
        unknown = set(item) - _ITEM_KEYS
        if unknown:
            fail_value(where, f"items[{index}]", f"keys from {sorted(_ITEM_KEYS)}", sorted(unknown))
        for key in ("sku", "price", "quantity"):
            if key not in item:
                fail_value(where, f"items[{index}]", f"a dict with {key!r}", item)
