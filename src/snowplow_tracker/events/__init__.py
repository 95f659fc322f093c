"""Event classes: make an event, then ``tracker.track(event)`` (the 1.x API).

Every ``Tracker.track_*`` method makes one of these and tracks it, so both
styles send the same events.
"""

from __future__ import annotations

from .ecommerce import EcommerceTransaction, EcommerceTransactionItem
from .event import Event
from .page_view import PagePing, PageView
from .screen_view import ScreenView
from .self_describing import SelfDescribing
from .structured_event import StructuredEvent
from .web import AddToCart, FormChange, FormSubmit, LinkClick, RemoveFromCart, SiteSearch

__all__ = [
    "AddToCart",
    "EcommerceTransaction",
    "EcommerceTransactionItem",
    "Event",
    "FormChange",
    "FormSubmit",
    "LinkClick",
    "PagePing",
    "PageView",
    "RemoveFromCart",
    "ScreenView",
    "SelfDescribing",
    "SiteSearch",
    "StructuredEvent",
]
