"""The Tracker: turns tracking calls into tracker-protocol events for its emitters."""

from __future__ import annotations

import base64
import os
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Optional, Union

from . import contracts
from ._handoff import STRING_INPUTS, all_take_strings
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
from .exceptions import InvalidValueError
from .payload import JsonEncoder, Payload, b64encode_json, dumps, dumps_bytes
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


#: UUIDs made per ``os.urandom`` call: one system call, and C-speed formatting, per 512 events.
_UUID_BATCH = 512
_uuids: deque[str] = deque()
_uuids_pid = os.getpid()
#: Where each of the 32 hex digits of a UUID goes in its 36-character form.
_UUID_DIGITS = [(i, i + (i >= 8) + (i >= 12) + (i >= 16) + (i >= 20)) for i in range(32)]
_UUID_CUTS = [slice(k, k + 36) for k in range(0, 36 * _UUID_BATCH, 36)]
#: A random hex digit to the RFC 4122 variant digit (its top two bits set to ``10``).
_VARIANT_DIGITS = bytes.maketrans(b"0123456789abcdef", b"89ab89ab89ab89ab")


def _uuid4() -> str:
    """A random UUID in canonical lowercase form, without building a ``uuid.UUID``.

    The same 122 random bits from ``os.urandom`` as :func:`uuid.uuid4`, made
    512 at a time by slice assignments, in a tenth of the time.
    ``deque.popleft`` is atomic, so no two threads get the same one; the
    process id is checked on every call (not only in a fork hook, which a
    server forking from C may skip) so that a forked child never reuses its
    parent's unused UUIDs.
    """
    if os.getpid() != _uuids_pid:
        _refill_after_fork()
    try:
        return _uuids.popleft()
    except IndexError:
        _uuids.extend(_new_uuids())
        return _uuids.popleft()


def _new_uuids() -> list[str]:
    count = _UUID_BATCH
    digits = os.urandom(16 * count).hex().encode("ascii")
    text = bytearray(36 * count)
    for digit, place in _UUID_DIGITS:  # each assignment places one digit of every UUID
        text[place::36] = digits[digit::32]
    text[8::36] = text[13::36] = text[18::36] = text[23::36] = b"-" * count
    text[14::36] = b"4" * count  # the version
    text[19::36] = text[19::36].translate(_VARIANT_DIGITS)
    return list(map(text.decode("ascii").__getitem__, _UUID_CUTS))


def _refill_after_fork() -> None:
    global _uuids_pid
    _uuids.clear()
    _uuids_pid = os.getpid()


def _keep(value: Any) -> bool:
    """What :meth:`Payload.add` keeps: everything but ``None`` and ``""``."""
    return value is not None and not (isinstance(value, str) and not value)


def _merge(pairs: dict[str, Any], extra: Mapping[str, Any]) -> None:
    """``Payload.add_dict``, at C speed when (as usual) nothing needs leaving out."""
    values = extra.values()
    if None in values or "" in values:
        for name, value in extra.items():
            if _keep(value):
                pairs[name] = value
    else:
        pairs.update(extra)


def _finite(value: object) -> bool:
    """The common case of ``contracts.number``: a plain int, or a finite float."""
    cls = value.__class__
    return cls is int or (cls is float and value - value == 0.0)  # type: ignore[operator]


class Tracker:
    """Builds events and hands each one to every emitter.

    ``Tracker(emitters, subject=None, namespace=None, app_id=None, encode_base64=True)``
    is the 0.5.0 form. ``emitters`` is one emitter (any object with an
    ``input(dict)`` method) or a list or tuple of them. The 0.4.0 keyword
    ``emitter=`` and the 1.x form ``Tracker(namespace, emitters, ...)`` work too.
    Every ``track_*`` method returns the tracker, so calls chain.
    """

    _standard_cache: tuple[dict[str, Any], dict[str, Any], dict[str, str]] | None = None

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
        return _uuid4()

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

    def flush(self, is_async: bool = False, timeout: float | None = None) -> Tracker:
        """Send what every emitter has buffered.

        By default each emitter sends synchronously (``sync_flush``); with
        ``is_async=True`` each emitter is asked to start sending and the call
        returns at once (``request_flush()`` where an emitter has it, as
        :class:`~snowplow_tracker.emitters.AsyncEmitter` does, else ``flush()``).

        ``timeout`` bounds the whole call, in seconds, for emitters whose flush
        takes one (this package's do): an ``AsyncEmitter`` retrying against a
        collector that is down otherwise waits until its retries run out. What
        is not sent by then stays queued and keeps being retried.
        """
        if contracts._enabled and timeout is not None:
            contracts.number("flush()", "timeout", timeout)
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        for emitter in self.emitters:
            if is_async:
                if not _call_if_present(emitter, "request_flush"):
                    _call_if_present(emitter, "flush")
            elif not _call_if_present(emitter, "sync_flush", deadline):
                _call_if_present(emitter, "flush", deadline)
        return self

    # -- the pipeline --------------------------------------------------------------------------

    def track(self, pb: Payload) -> Tracker:
        """Hand a finished payload to every emitter."""
        _hand_over(self.emitters, pb.nv_pairs)
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
            envelope = _contexts_envelope(context)
            pb.add_json(envelope, self.encode_base64, "cx", "co", self.json_encoder)

    def _emit(self, pairs: dict[str, Any], context: Contexts, tstamp: Timestamp) -> Tracker:
        """``complete_payload`` then ``track`` for an event's own pairs (``None``/``""`` left out).

        The same pairs in the same order as through a :class:`Payload`, built
        straight into one dict. If ``complete_payload`` or ``track`` has been
        replaced (a subclass, a mock), they are called as in 0.5.0.
        """
        if (
            getattr(self.complete_payload, "__func__", None) is not _COMPLETE_PAYLOAD
            or getattr(self.track, "__func__", None) is not _TRACK
        ):
            pb = Payload()
            pb.nv_pairs = pairs
            return self.complete_payload(pb, context, tstamp)
        emitters = self.emitters
        if len(emitters) == 1:
            strings = getattr(emitters[0].input, "__func__", None) in STRING_INPUTS
        else:
            strings = all_take_strings(emitters)
        if strings:
            return self._emit_strings(pairs, context, tstamp, emitters)
        return self._emit_raw(pairs, context, tstamp, emitters)

    def _emit_strings(
        self, pairs: dict[str, Any], context: Contexts, tstamp: Timestamp, emitters: list[Any]
    ) -> Tracker:
        """For this package's emitters, which keep this dict as it is: values made strings here."""
        for name, value in pairs.items():
            if value.__class__ is not str:
                pairs[name] = str(value)
        eid = Tracker.get_uuid()
        pairs["eid"] = eid if eid.__class__ is str else str(eid)
        if tstamp is None and Tracker.get_timestamp is _GET_TIMESTAMP:
            pairs["dtm"] = str(int(time.time() * 1000))
        else:
            pairs["dtm"] = str(Tracker.get_timestamp(tstamp))
        if context:
            self._put_json(pairs, _contexts_envelope(context), "cx", "co")
        own, subject = self.standard_nv_pairs, self.subject.standard_nv_pairs
        cached = self._standard_cache
        if cached is None or cached[0] != own or cached[1] != subject:
            cached = self._cache_standard_strings(own, subject)
        pairs.update(cached[2])
        if len(emitters) == 1:
            emitters[0]._input_strings(pairs)
        else:
            for emitter in emitters:
                emitter._input_strings(dict(pairs))
        return self

    def _emit_raw(
        self, pairs: dict[str, Any], context: Contexts, tstamp: Timestamp, emitters: list[Any]
    ) -> Tracker:
        """The pairs with their values as given, for emitters that are not this package's."""
        pairs["eid"] = Tracker.get_uuid()
        pairs["dtm"] = Tracker.get_timestamp(tstamp)
        if context:
            self._put_json(pairs, _contexts_envelope(context), "cx", "co")
        _merge(pairs, self.standard_nv_pairs)
        _merge(pairs, self.subject.standard_nv_pairs)
        _hand_over(emitters, pairs)
        return self

    def _cache_standard_strings(
        self, own: dict[str, Any], subject: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
        """The tracker's and subject's pairs (``None`` and ``""`` left out) as strings.

        Kept while both dicts stay equal to what it was made from, since 0.5.0
        code may edit ``standard_nv_pairs`` directly.
        """
        merged: dict[str, Any] = {}
        _merge(merged, own)
        _merge(merged, subject)
        strings = {name: v if v.__class__ is str else str(v) for name, v in merged.items()}
        self._standard_cache = cached = (dict(own), dict(subject), strings)
        return cached

    def _put_json(self, pairs: dict[str, Any], value: Any, encoded: str, plain: str) -> None:
        try:
            if self.encode_base64 and self.json_encoder is None:
                # The UTF-8 bytes straight from the encoder: no decode and encode again.
                pairs[encoded] = base64.urlsafe_b64encode(dumps_bytes(value)).decode("ascii")
                return
            text = dumps(value, self.json_encoder)
            if self.encode_base64:
                pairs[encoded] = b64encode_json(text)
            else:
                text.encode("utf-8")  # what the wire needs: fail here, not when sending
                pairs[plain] = text
        except UnicodeEncodeError as exc:
            raise InvalidValueError(
                f"{encoded if self.encode_base64 else plain}: text that cannot be sent as UTF-8 "
                f"(a lone surrogate, {exc.object[exc.start : exc.end]!r})"
            ) from None

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
        if contracts._enabled and not (
            page_url.__class__ is str
            and page_url
            and (page_title is None or page_title.__class__ is str)
            and (referrer is None or referrer.__class__ is str)
            and (context is None or contracts.checked_contexts(context))
            and (tstamp is None or _finite(tstamp))
        ):
            where = "track_page_view()"
            contracts.non_empty_string(where, "page_url", page_url)
            contracts.optional_string(where, "page_title", page_title)
            contracts.optional_string(where, "referrer", referrer)
            _check_common(where, context, tstamp)
        pairs = {"e": "pv", "url": page_url, "page": page_title, "refr": referrer}
        return self._emit(_own_pairs(pairs), context, tstamp)

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
        if contracts._enabled and not (
            category.__class__ is str
            and category
            and action.__class__ is str
            and action
            and (label is None or label.__class__ is str)
            and (property_ is None or property_.__class__ is str)
            and (value is None or value.__class__ is int or _finite(value))
            and (context is None or contracts.checked_contexts(context))
            and (tstamp is None or _finite(tstamp))
        ):
            where = "track_struct_event()"
            contracts.non_empty_string(where, "category", category)
            contracts.non_empty_string(where, "action", action)
            contracts.optional_string(where, "label", label)
            contracts.optional_string(where, "property_", property_)
            contracts.number(where, "value", value, optional=True)
            _check_common(where, context, tstamp)
        pairs = {
            "e": "se",
            "se_ca": category,
            "se_ac": action,
            "se_la": label,
            "se_pr": property_,
            "se_va": value,
        }
        return self._emit(_own_pairs(pairs), context, tstamp)

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
        pairs: dict[str, Any] = {"e": "ue"}
        self._put_json(pairs, envelope, "ue_px", "ue_pr")
        return self._emit(_own_pairs(pairs), context, tstamp)

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
        pairs = {
            "e": "ti",
            "ti_id": order_id,
            "ti_sk": sku,
            "ti_nm": name,
            "ti_ca": category,
            "ti_pr": price,
            "ti_qu": quantity,
            "ti_cu": currency,
        }
        return self._emit(_own_pairs(pairs), context, tstamp)

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
        pairs = {
            "e": "tr",
            "tr_id": order_id,
            "tr_tt": total_value,
            "tr_af": affiliation,
            "tr_tx": tax_value,
            "tr_sh": shipping,
            "tr_ci": city,
            "tr_st": state,
            "tr_co": country,
            "tr_cu": currency,
        }
        self._emit(_own_pairs(pairs), context, dtm)
        for item in items:
            fields = {"context": context, "currency": currency, **item}
            self.track_ecommerce_transaction_item(order_id=order_id, tstamp=dtm, **fields)
        return self


_COMPLETE_PAYLOAD = Tracker.complete_payload
_GET_TIMESTAMP = Tracker.get_timestamp
_TRACK = Tracker.track


def _contexts_envelope(context: Sequence[SelfDescribing]) -> dict[str, Any]:
    """The contexts 1-0-1 self-describing JSON around an event's entities."""
    return {"schema": CONTEXT_SCHEMA, "data": [as_dict(c) for c in context]}


def _hand_over(emitters: Sequence[EmitterLike], pairs: dict[str, Any]) -> None:
    """``input(pairs)`` on every emitter, as 0.5.0 did."""
    if len(emitters) == 1:
        emitters[0].input(pairs)
    else:
        # Each emitter gets its own dict, so one that keeps or edits it cannot affect another.
        for emitter in emitters:
            emitter.input(dict(pairs))


def _own_pairs(pairs: dict[str, Any]) -> dict[str, Any]:
    """``pairs`` without the ``None`` and ``""`` values that ``Payload.add`` leaves out."""
    values = pairs.values()
    if None in values or "" in values:
        return {name: value for name, value in pairs.items() if _keep(value)}
    return pairs


# -- checks ------------------------------------------------------------------------------------


def _call_if_present(obj: object, name: str, deadline: float | None = None) -> bool:
    """Call ``obj.name()`` if it exists; with a deadline, pass what is left of it as
    ``timeout`` where the method takes one (emitters of your own may not)."""
    method = getattr(obj, name, None)
    if not callable(method):
        return False
    if deadline is not None and _takes_timeout(method):
        method(timeout=max(0.0, deadline - time.monotonic()))
    else:
        method()
    return True


def _takes_timeout(method: Any) -> bool:
    import inspect  # only here: it is slow to import, and only a flush with a timeout needs it

    try:
        return "timeout" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin, a C extension)
        return False


def _check_emitter(where: str, name: str, value: object) -> None:
    if isinstance(value, type) or not callable(getattr(value, "input", None)):  # a class: no
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
