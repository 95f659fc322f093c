"""The Tracker: turns tracking calls into tracker-protocol events for its emitters."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from typing import Any, Optional, overload

from . import contracts
from ._tracker_checks import (
    as_emitter_list,
    call_if_present,
    check_emitter,
    check_init,
    check_items,
)
from ._uuid import uuid4
from ._web_methods import RENAMED, WebEventMethods
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
from .events import (
    EcommerceTransaction,
    EcommerceTransactionItem,
    Event,
    PagePing,
    PageView,
    ScreenView,
    SelfDescribing,
    StructuredEvent,
)
from .events.event import Context, Timestamp, merge
from .exceptions import ContractError
from .payload import JsonEncoder, Payload
from .scope import Scope, active_scope
from .self_describing_json import SelfDescribing as SelfDescribingValue
from .self_describing_json import SelfDescribingJson
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


#: The device time (``dtm``) the items of a transaction share with it, while they are tracked.
_shared_dtm: ContextVar[Optional[int]] = ContextVar("snowplow_shared_dtm", default=None)
#: Constructor parameters, by position: 0.5.0's order, and 1.x's (a namespace string first).
_ORDER_05 = ("emitters", "subject", "namespace", "app_id", "encode_base64", "json_encoder")
_ORDER_1X = ("namespace", "emitters", "subject", "app_id", "encode_base64", "json_encoder")


class Tracker(WebEventMethods):
    """Builds events and hands each one to every emitter.

    Every event goes one way: a ``track_*`` method makes an event object
    (:mod:`snowplow_tracker.events`) and calls :meth:`track`, which completes it
    with :meth:`complete_payload` (event id, timestamps, tracker and subject
    fields, contexts) and gives the finished dict to each emitter's ``input``.

    Constructor forms (all keyword forms work too):

    * 0.5.0: ``Tracker(emitters, subject=None, namespace=None, app_id=None,
      encode_base64=True, json_encoder=None)``; 0.4.0's ``emitter=`` keyword.
    * 1.x: ``Tracker(namespace, emitters, subject=None, app_id=None, ...)``,
      recognised by a string first.

    ``emitters`` is one emitter (any object with ``input(dict)``) or a list or
    tuple of them. Keyword-only, for tests: ``clock`` (seconds since the epoch,
    like :func:`time.time`) stamps ``dtm``; ``id_source`` makes event ids.
    Every ``track_*`` method returns the tracker, so calls chain; :meth:`track`
    of an event object returns its event id.
    """

    @overload
    def __init__(
        self,
        emitters: EmitterLike | Sequence[EmitterLike] | None = None,
        subject: Subject | None = None,
        namespace: str | None = None,
        app_id: str | None = None,
        encode_base64: bool = DEFAULT_ENCODE_BASE64,
        json_encoder: JsonEncoder = None,
        *,
        emitter: EmitterLike | Sequence[EmitterLike] | None = None,
        clock: Callable[[], float] | None = None,
        id_source: Callable[[], str] | None = None,
    ) -> None: ...

    @overload
    def __init__(
        self,
        namespace: str,
        emitters: EmitterLike | Sequence[EmitterLike],
        subject: Subject | None = None,
        app_id: str | None = None,
        encode_base64: bool = DEFAULT_ENCODE_BASE64,
        json_encoder: JsonEncoder = None,
        *,
        clock: Callable[[], float] | None = None,
        id_source: Callable[[], str] | None = None,
    ) -> None: ...

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # One signature per order (above, for type checkers); which one a call uses is known
        # only from its first argument: a namespace string first is the 1.x order.
        order = _ORDER_1X if args and isinstance(args[0], str) else _ORDER_05
        if len(args) > len(order):
            raise TypeError(f"Tracker() takes at most {len(order)} positional arguments")
        for name, value in zip(order, args):
            if name in kwargs:
                raise TypeError(f"Tracker() got multiple values for argument {name!r}")
            kwargs[name] = value
        self._configure(**kwargs)

    def _configure(
        self,
        emitters: EmitterLike | Sequence[EmitterLike] | None = None,
        subject: Subject | None = None,
        namespace: str | None = None,
        app_id: str | None = None,
        encode_base64: bool = DEFAULT_ENCODE_BASE64,
        json_encoder: JsonEncoder = None,
        *,
        emitter: EmitterLike | Sequence[EmitterLike] | None = None,
        clock: Callable[[], float] | None = None,
        id_source: Callable[[], str] | None = None,
    ) -> None:
        if emitter is not None:
            if emitters is not None:
                raise TypeError("Tracker() takes emitters or emitter, not both")
            emitters = emitter
        if contracts._enabled:
            check_init(emitters, subject, namespace, app_id, encode_base64, json_encoder)
            contracts.optional_callable("Tracker()", "clock", clock)
            contracts.optional_callable("Tracker()", "id_source", id_source)
        self.emitters: list[EmitterLike] = as_emitter_list(emitters)
        self.subject: Subject | None = subject if subject is not None else Subject()
        self.encode_base64 = encode_base64
        self.json_encoder = json_encoder
        self.standard_nv_pairs: dict[str, Any] = {"tv": VERSION, "tna": namespace, "aid": app_id}
        self._clock = clock
        self._fields_cache: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] | None = None
        if id_source is not None:
            self.get_uuid = id_source

    #: A new random (version 4) UUID in canonical lowercase form: the function itself, not a
    #: method that calls it, since every event calls it.
    get_uuid = staticmethod(uuid4)

    @staticmethod
    def get_timestamp(tstamp: Timestamp = None) -> int:
        """``tstamp`` (ms since the epoch) as an int, or now; fractions are truncated."""
        if tstamp is None:
            return int(time.time() * 1000)
        if contracts._enabled:
            contracts.number("get_timestamp()", "tstamp", tstamp)
        return int(tstamp)

    def get_namespace(self) -> str | None:
        """The tracker's namespace (``tna``)."""
        namespace: str | None = self.standard_nv_pairs.get("tna")
        return namespace

    # -- configuration -------------------------------------------------------------------------

    def set_subject(self, subject: Subject | None) -> Tracker:
        """Attach ``subject``'s fields to every later event (None: no subject fields)."""
        if contracts._enabled and subject is not None and not isinstance(subject, Subject):
            fail_type("set_subject()", "subject", "a Subject or None", subject)
        self.subject = subject
        return self

    def add_emitter(self, emitter: EmitterLike) -> Tracker:
        """Send every later event to ``emitter`` too."""
        if contracts._enabled:
            check_emitter("add_emitter()", "emitter", emitter)
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
                # Our emitters' flush() waits for the outcome; request_flush() only starts
                # it. Any other emitter gets flush(), as 0.5.0 and 1.x called it.
                if not (
                    hasattr(type(emitter), "request_flush")
                    and call_if_present(emitter, "request_flush")
                ):
                    call_if_present(emitter, "flush")
            elif not call_if_present(emitter, "sync_flush", deadline):
                call_if_present(emitter, "flush", deadline)
        return self

    # -- the one event path --------------------------------------------------------------------

    def track(self, event: Event | Payload) -> Any:
        """Complete ``event`` and hand it to every emitter; return its event id.

        ``event`` is an event object (1.x). A 0.5.0 :class:`Payload` that is
        already complete is handed over as it is, and the tracker is returned.
        """
        if isinstance(event, Payload):
            self._hand_over(event.nv_pairs)
            return self
        payload = self.complete_payload(event)
        pairs = payload.nv_pairs
        self._hand_over(pairs)
        return pairs["eid"]

    def complete_payload(
        self, event: Event | Payload, context: Context = None, tstamp: Timestamp = None
    ) -> Any:
        """An event's finished payload: its own pairs, its contexts and true timestamp, the
        subject fields (the event's subject over the tracker's), the event id, the device
        time ``dtm`` and the tracker's fields. Returns the :class:`Payload` (1.x).

        The 0.5.0 form ``complete_payload(payload, context, tstamp)`` completes a
        :class:`Payload` of an event's own pairs the same way, tracks it, and
        returns the tracker.
        """
        if isinstance(event, Payload):
            return self.track(self._complete_pairs(event, context, tstamp))
        if contracts._enabled:
            event.check_schemas("track()")
        scope = active_scope()
        if event.event_subject is None and scope is None:
            # The tracker's subject and its own fields, merged once while they stay the same.
            payload = event.build_payload(self.encode_base64, self.json_encoder, None)
            pairs = payload.nv_pairs
            cached, subject = self._fields_cache, self.subject
            if (
                cached is None
                or cached[0] != self.standard_nv_pairs
                or cached[1] != (subject.standard_nv_pairs if subject is not None else {})
            ):
                cached = self._cache_fields()
            pairs.update(cached[2])
        else:  # tracker subject < request scope < event subject; the event merges its own
            subject = self.subject if scope is None else _scoped(self.subject, scope)
            payload = event.build_payload(self.encode_base64, self.json_encoder, subject)
            pairs = payload.nv_pairs
            merge(pairs, self.standard_nv_pairs)
        pairs["eid"] = self.get_uuid()
        pairs["dtm"] = self._device_time()
        return payload

    def _cache_fields(self) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
        """The subject's pairs and the tracker's (``tv``, ``tna``, ``aid``), without ``None``
        and ``""``, merged once and kept with copies of what they were made from: the cache
        is used while both stay equal, since code may edit ``standard_nv_pairs`` directly
        or swap the subject."""
        own = self.standard_nv_pairs
        subject = self.subject.standard_nv_pairs if self.subject is not None else {}
        merged: dict[str, Any] = {}
        merge(merged, subject)
        merge(merged, own)
        self._fields_cache = cached = (dict(own), dict(subject), merged)
        return cached

    def _complete_pairs(self, pb: Payload, context: Context, tstamp: Timestamp) -> Payload:
        """The 0.5.0 ``complete_payload``: an :class:`Event` around ``pb``'s pairs."""
        event = Event(pb.nv_pairs, context=context, true_timestamp=tstamp)
        payload: Payload = self.complete_payload(event)
        return payload

    def _device_time(self) -> int:
        """``dtm``: now by the tracker's clock, or the time a transaction shares with its items."""
        shared = _shared_dtm.get()
        return shared if shared is not None else int((self._clock or time.time)() * 1000)

    def _hand_over(self, pairs: dict[str, Any]) -> None:
        """The finished event to every emitter: the same dict for each, values as they
        are, as 0.5.0 handed them over (this package's emitters make them strings)."""
        for emitter in self.emitters:
            emitter.input(pairs)

    # -- events --------------------------------------------------------------------------------

    def track_page_view(
        self,
        page_url: str,
        page_title: str | None = None,
        referrer: str | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A page view (``e=pv``) of ``page_url`` (:class:`~snowplow_tracker.events.PageView`)."""
        try:
            event = PageView(page_url, page_title, referrer, event_subject, context, tstamp)
            self.track(event=event)
            return self
        except ContractError as error:
            raise contracts.relabel(error, "track_page_view()", RENAMED) from None

    def track_page_ping(
        self,
        page_url: str,
        page_title: str | None = None,
        referrer: str | None = None,
        min_x: int | None = None,
        max_x: int | None = None,
        min_y: int | None = None,
        max_y: int | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A page ping (``e=pp``): see :class:`~snowplow_tracker.events.PagePing`."""
        try:
            event = PagePing(
                page_url,
                page_title,
                referrer,
                min_x,
                max_x,
                min_y,
                max_y,
                event_subject,
                context,
                tstamp,
            )
            self.track(event=event)
            return self
        except ContractError as error:
            raise contracts.relabel(error, "track_page_ping()", RENAMED) from None

    def track_struct_event(
        self,
        category: str,
        action: str,
        label: str | None = None,
        property_: str | None = None,
        value: int | float | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A structured event (``e=se``): category, action, and optional label, property, value."""
        try:
            event = StructuredEvent(
                category, action, label, property_, value, event_subject, context, tstamp
            )
            self.track(event=event)
            return self
        except ContractError as error:
            raise contracts.relabel(error, "track_struct_event()", RENAMED) from None

    def track_self_describing_event(
        self,
        event_json: SelfDescribingValue,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A self-describing event (``e=ue``): ``{"schema": "iglu:...", "data": {...}}``."""
        try:
            self.track(event=SelfDescribing(event_json, event_subject, context, tstamp))
            return self
        except ContractError as error:
            raise contracts.relabel(error, "track_self_describing_event()", RENAMED) from None

    def track_unstruct_event(
        self,
        event_json: SelfDescribingValue,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """The 0.5.0 name of :meth:`track_self_describing_event`."""
        try:
            return self.track_self_describing_event(
                event_json=event_json, context=context, tstamp=tstamp, event_subject=event_subject
            )
        except ContractError as error:
            raise contracts.relabel(error, "track_unstruct_event()", RENAMED) from None

    def track_screen_view(
        self,
        name: str | None = None,
        id_: str | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A screen view: a self-describing event with the screen_view 1-0-0 schema
        (for the mobile schema, see :meth:`track_mobile_screen_view`)."""
        try:
            if contracts._enabled:
                contracts.optional_string("track_screen_view()", "name", name)
                contracts.optional_string("track_screen_view()", "id_", id_)
                if not name and not id_:
                    fail_value(
                        "track_screen_view()", "name or id_", "given (the schema needs one)", None
                    )
            data = {key: value for key, value in (("name", name), ("id", id_)) if value is not None}
            return self.track_self_describing_event(
                event_json=SelfDescribingJson(SCREEN_VIEW_SCHEMA, data),
                context=context,
                tstamp=tstamp,
                event_subject=event_subject,
            )
        except ContractError as error:
            raise contracts.relabel(error, "track_screen_view()", RENAMED) from None

    def track_mobile_screen_view(
        self,
        name: str,
        id_: str | None = None,
        type: str | None = None,
        previous_name: str | None = None,
        previous_id: str | None = None,
        previous_type: str | None = None,
        transition_type: str | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A mobile screen view (:class:`~snowplow_tracker.events.ScreenView`); ``id_`` is
        made (a UUID) when not given."""
        try:
            event = ScreenView(
                id_ if id_ is not None else self.get_uuid(),
                name,
                type,
                previous_name,
                previous_id,
                previous_type,
                transition_type,
                event_subject,
                context,
                tstamp,
            )
            self.track(event=event)
            return self
        except ContractError as error:
            raise contracts.relabel(error, "track_mobile_screen_view()", RENAMED) from None

    def track_ecommerce_transaction_item(
        self,
        order_id: str,
        sku: str,
        price: int | float,
        quantity: int,
        name: str | None = None,
        category: str | None = None,
        currency: str | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """One line of a transaction (``e=ti``); usually sent by ``track_ecommerce_transaction``."""
        try:
            event = EcommerceTransactionItem(
                order_id,
                sku,
                price,
                quantity,
                name,
                category,
                currency,
                event_subject,
                context,
                tstamp,
            )
            self.track(event=event)
            return self
        except ContractError as error:
            raise contracts.relabel(error, "track_ecommerce_transaction_item()", RENAMED) from None

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
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A transaction (``e=tr``) and one ``e=ti`` event per item, all with its ``dtm``.

        Each item is a dict with ``sku``, ``price``, ``quantity`` and optional
        ``name``, ``category``, ``currency`` and ``context``; the transaction's
        currency, context, ``tstamp`` and ``event_subject`` apply to items that
        have none. The caller's dicts are not changed.
        """
        try:
            items = list(items) if items is not None else []
            if contracts._enabled:
                check_items(items)
            event = EcommerceTransaction(
                order_id,
                total_value,
                affiliation,
                tax_value,
                shipping,
                city,
                state,
                country,
                currency,
                event_subject,
                context,
                tstamp,
            )
            token = _shared_dtm.set(self._device_time())
            try:
                self.track(event=event)
                for item in items:
                    fields = {"currency": currency, "context": context, **item}
                    self.track_ecommerce_transaction_item(
                        order_id=order_id, tstamp=tstamp, event_subject=event_subject, **fields
                    )
            finally:
                _shared_dtm.reset(token)
            return self

        except ContractError as error:
            raise contracts.relabel(error, "track_ecommerce_transaction()", RENAMED) from None


def _scoped(subject: Subject | None, scope: Scope) -> Subject:
    """The subject of an event tracked inside :func:`~snowplow_tracker.scope.tracker_scope`:
    the tracker's subject with the scope's fields over it (the scope module's one hook)."""
    scoped = Subject.__new__(Subject)
    scoped.standard_nv_pairs = scope.over(subject.standard_nv_pairs if subject is not None else {})
    return scoped
