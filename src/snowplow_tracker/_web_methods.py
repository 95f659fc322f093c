"""The ``track_*`` methods 1.x added for web events (link clicks, carts, forms, site search),
part of :class:`~snowplow_tracker.Tracker`: each makes the event's class build its JSON, then
tracks it as any self-describing event."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import contracts
from .events import (
    AddToCart,
    FormChange,
    FormSubmit,
    LinkClick,
    RemoveFromCart,
    SelfDescribing,
    SiteSearch,
)
from .events.event import Context, Timestamp
from .exceptions import ContractError
from .subject import Subject

if TYPE_CHECKING:
    from .tracker import Tracker

#: How a ``track_*`` method's parameters are named in the event class that checks them.
RENAMED = {"true_timestamp": "tstamp"}


class WebEventMethods:
    """Mixed into :class:`~snowplow_tracker.Tracker`."""

    track_self_describing_event: Callable[..., Any]

    def _track_json(
        self,
        event: SelfDescribing,
        context: Context,
        tstamp: Timestamp,
        event_subject: Subject | None,
    ) -> Tracker:
        """A schema's event class made the JSON; it goes as any self-describing event does."""
        tracker: Tracker = self.track_self_describing_event(
            event_json=event.event_json, context=context, tstamp=tstamp, event_subject=event_subject
        )
        return tracker

    def track_link_click(
        self,
        target_url: str,
        element_id: str | None = None,
        element_classes: Sequence[str] | None = None,
        element_target: str | None = None,
        element_content: str | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A link click (link_click 1-0-1): see :class:`~snowplow_tracker.events.LinkClick`."""
        try:
            event = LinkClick(
                target_url, element_id, element_classes, element_target, element_content
            )
            return self._track_json(event, context, tstamp, event_subject)
        except ContractError as error:
            raise contracts.relabel(error, "track_link_click()", RENAMED) from None

    def track_add_to_cart(
        self,
        sku: str,
        quantity: int,
        name: str | None = None,
        category: str | None = None,
        unit_price: int | float | None = None,
        currency: str | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """Items added to a cart (add_to_cart 1-0-0)."""
        try:
            event = AddToCart(sku, quantity, name, category, unit_price, currency)
            return self._track_json(event, context, tstamp, event_subject)
        except ContractError as error:
            raise contracts.relabel(error, "track_add_to_cart()", RENAMED) from None

    def track_remove_from_cart(
        self,
        sku: str,
        quantity: int,
        name: str | None = None,
        category: str | None = None,
        unit_price: int | float | None = None,
        currency: str | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """Items removed from a cart (remove_from_cart 1-0-0)."""
        try:
            event = RemoveFromCart(sku, quantity, name, category, unit_price, currency)
            return self._track_json(event, context, tstamp, event_subject)
        except ContractError as error:
            raise contracts.relabel(error, "track_remove_from_cart()", RENAMED) from None

    def track_form_change(
        self,
        form_id: str,
        element_id: str | None,
        node_name: str,
        value: str | None,
        type_: str | None = None,
        element_classes: Sequence[str] | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A change to a form field (change_form 1-0-0)."""
        try:
            event = FormChange(form_id, element_id, node_name, value, type_, element_classes)
            return self._track_json(event, context, tstamp, event_subject)
        except ContractError as error:
            raise contracts.relabel(error, "track_form_change()", RENAMED) from None

    def track_form_submit(
        self,
        form_id: str,
        form_classes: Sequence[str] | None = None,
        elements: Sequence[Mapping[str, Any]] | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A form submission (submit_form 1-0-0)."""
        try:
            event = FormSubmit(form_id, form_classes, elements)
            return self._track_json(event, context, tstamp, event_subject)
        except ContractError as error:
            raise contracts.relabel(error, "track_form_submit()", RENAMED) from None

    def track_site_search(
        self,
        terms: Sequence[str],
        filters: Mapping[str, str | bool] | None = None,
        total_results: int | None = None,
        page_results: int | None = None,
        context: Context = None,
        tstamp: Timestamp = None,
        event_subject: Subject | None = None,
    ) -> Tracker:
        """A search on the site (site_search 1-0-0)."""
        try:
            event = SiteSearch(terms, filters, total_results, page_results)
            return self._track_json(event, context, tstamp, event_subject)
        except ContractError as error:
            raise contracts.relabel(error, "track_site_search()", RENAMED) from None
