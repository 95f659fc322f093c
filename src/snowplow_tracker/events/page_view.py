"""Page views (``e=pv``) and page pings (``e=pp``)."""

from __future__ import annotations

from typing import Any

from .. import contracts
from ..subject import Subject
from .event import Context, Event, Timestamp, finite


def _check_page(where: str, page_url: object, page_title: object, referrer: object) -> None:
    contracts.non_empty_string(where, "page_url", page_url)
    contracts.optional_string(where, "page_title", page_title)
    contracts.optional_string(where, "referrer", referrer)


def _field(name: str, doc: str, check: Any = None) -> property:
    """A property over one tracker-protocol pair of the event's payload, as 1.x has them."""

    def get(self: Event) -> Any:
        return self.payload.nv_pairs.get(name)

    def set_(self: Event, value: Any) -> None:
        if check is not None and contracts._enabled:
            check(f"{type(self).__name__}.{doc.split(':')[0]}", value)
        if value is None or (isinstance(value, str) and not value):
            self.payload.nv_pairs.pop(name, None)
        else:
            self.payload.nv_pairs[name] = value

    return property(get, set_, doc=doc)


def _url(where: str, value: object) -> None:
    contracts.non_empty_string(where, "page_url", value)


def _text(where: str, value: object) -> None:
    contracts.optional_string(where, "value", value)


def _int(where: str, value: object) -> None:
    if value is not None:
        contracts.integer(where, "value", value)


class PageView(Event):
    """A page view (``e=pv``): ``url``, and optional ``page`` title and ``refr``."""

    def __init__(
        self,
        page_url: str,
        page_title: str | None = None,
        referrer: str | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if contracts._enabled and not (
            page_url.__class__ is str
            and page_url
            and (page_title is None or page_title.__class__ is str)
            and (referrer is None or referrer.__class__ is str)
        ):
            _check_page("PageView()", page_url, page_title, referrer)
        pairs = {"e": "pv", "url": page_url, "page": page_title, "refr": referrer}
        self._setup(pairs, event_subject, context, true_timestamp)

    page_url = _field("url", "page_url: the URL of the page", _url)
    page_title = _field("page", "page_title: the title of the page", _text)
    referrer = _field("refr", "referrer: the referring URL", _text)


class PagePing(Event):
    """A page ping (``e=pp``): a page view's ``url`` plus the scroll offsets seen since the
    last ping (``pp_mix``, ``pp_max``, ``pp_miy``, ``pp_may``)."""

    def __init__(
        self,
        page_url: str,
        page_title: str | None = None,
        referrer: str | None = None,
        min_x: int | None = None,
        max_x: int | None = None,
        min_y: int | None = None,
        max_y: int | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        offsets = {"pp_mix": min_x, "pp_max": max_x, "pp_miy": min_y, "pp_may": max_y}
        if contracts._enabled:
            _check_page("PagePing()", page_url, page_title, referrer)
            for name, value in zip(("min_x", "max_x", "min_y", "max_y"), offsets.values()):
                if value is not None and not (value.__class__ is int or finite(value)):
                    contracts.integer("PagePing()", name, value)
        pairs = {"e": "pp", "url": page_url, "page": page_title, "refr": referrer, **offsets}
        self._setup(pairs, event_subject, context, true_timestamp)

    page_url = _field("url", "page_url: the URL of the page", _url)
    page_title = _field("page", "page_title: the title of the page", _text)
    referrer = _field("refr", "referrer: the referring URL", _text)
    min_x = _field("pp_mix", "min_x: the smallest x offset seen", _int)
    max_x = _field("pp_max", "max_x: the largest x offset seen", _int)
    min_y = _field("pp_miy", "min_y: the smallest y offset seen", _int)
    max_y = _field("pp_may", "max_y: the largest y offset seen", _int)


__all__ = ["PagePing", "PageView"]
