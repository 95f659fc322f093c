"""A Django middleware configured from settings (the ``django`` extra)::

    MIDDLEWARE = [
        ...
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "snowplow_tracker.integrations.django.SnowplowMiddleware",  # after authentication
    ]
    SNOWPLOW = {
        "TRACKER": "myproject.tracking.tracker",  # a Tracker, or its dotted path
        "TRUSTED_PROXIES": ["10.0.0.0/8"],
        "PAGE_VIEWS": False,
    }

Every request runs in a :func:`~snowplow_tracker.scope.tracker_scope` holding its
client IP, user agent, language, user id (by default ``request.user.pk`` of an
authenticated user) and the browser's ids; events tracked while it is handled carry
them. Works under WSGI and ASGI. Queued events are sent at process exit within each
emitter's ``exit_timeout``.

The ``SNOWPLOW`` keys are the options of
:class:`~snowplow_tracker.integrations._common.RequestTracking` in upper case:
``TRACKER``, ``TRUSTED_PROXIES``, ``USER_ID`` (a callable or its dotted path),
``PAGE_VIEWS``, ``INCLUDE``, ``EXCLUDE``, ``FLUSH_TIMEOUT``, ``DOMAIN_COOKIE`` and
``NETWORK_COOKIE``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Optional, Union

from .._extras import require
from ..exceptions import InvalidValueError
from ..scope import tracker_scope
from ._common import RequestTracking, logger

require("django", "django")

from asgiref.sync import iscoroutinefunction, markcoroutinefunction  # noqa: E402
from django.conf import settings  # noqa: E402
from django.utils.module_loading import import_string  # noqa: E402

__all__ = ["SnowplowMiddleware", "default_user_id", "tracking_from_settings"]

_OPTIONS = {
    "TRACKER": "tracker",
    "TRUSTED_PROXIES": "trusted_proxies",
    "USER_ID": "user_id",
    "PAGE_VIEWS": "page_views",
    "INCLUDE": "include",
    "EXCLUDE": "exclude",
    "FLUSH_TIMEOUT": "flush_timeout",
    "DOMAIN_COOKIE": "domain_cookie",
    "NETWORK_COOKIE": "network_cookie",
}


def default_user_id(request: Any) -> Optional[str]:
    """The primary key of ``request.user`` when authenticated (``AuthenticationMiddleware``)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    return str(user.pk)


def tracking_from_settings() -> RequestTracking:
    """The options of ``settings.SNOWPLOW``, dotted paths imported."""
    config = dict(getattr(settings, "SNOWPLOW", {}))
    unknown = sorted(set(config) - set(_OPTIONS))
    if unknown:
        known = sorted(_OPTIONS)
        raise InvalidValueError(f"settings.SNOWPLOW: unknown keys {unknown}; known: {known}")
    if "TRACKER" not in config:
        raise InvalidValueError("settings.SNOWPLOW must name the app's Tracker: 'TRACKER'")
    options = {_OPTIONS[key]: value for key, value in config.items()}
    for name in ("tracker", "user_id"):
        if isinstance(options.get(name), str):
            options[name] = import_string(options[name])
    options.setdefault("user_id", default_user_id)
    tracker = options.pop("tracker")
    return RequestTracking(tracker, **options)


Response = Any
GetResponse = Callable[[Any], Union[Response, Awaitable[Response]]]


class SnowplowMiddleware:
    """Opens a scope for each request; sync and async (Django picks what the stack needs)."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.tracking = tracking_from_settings()
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self.is_async:
            return self._acall(request)
        subject = self._subject(request)
        if subject is None:
            return self.get_response(request)
        with tracker_scope(subject):
            self._page_view(request)
            return self.get_response(request)

    async def _acall(self, request: Any) -> Any:
        subject = self._subject(request)
        if subject is None:
            return await self.get_response(request)
        with tracker_scope(subject):
            self._page_view(request)
            return await self.get_response(request)

    def _subject(self, request: Any) -> Any:
        tracking = self.tracking
        try:
            meta = request.META
            return tracking.subject(
                remote_addr=meta.get("REMOTE_ADDR"),
                forwarded_for=meta.get("HTTP_X_FORWARDED_FOR"),
                user_agent=meta.get("HTTP_USER_AGENT"),
                accept_language=meta.get("HTTP_ACCEPT_LANGUAGE"),
                cookies=request.COOKIES,
                user_id=tracking.user_id(request) if tracking.user_id else None,
            )
        except Exception:
            logger.exception("reading the request's subject failed; tracking it without one")
            return None

    def _page_view(self, request: Any) -> None:
        if self.tracking.wants_page_view(request.method, request.path):
            try:
                url = request.build_absolute_uri()
            except Exception:  # a Host that ALLOWED_HOSTS refuses: Django answers 400 itself
                return
            self.tracking.track_page_view(url, request.META.get("HTTP_REFERER"))
