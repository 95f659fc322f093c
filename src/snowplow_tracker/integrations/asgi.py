"""A pure ASGI middleware for FastAPI, Starlette or any ASGI app (the ``asgi`` extra).

::

    from fastapi import FastAPI
    from snowplow_tracker.integrations.asgi import SnowplowMiddleware

    app = FastAPI()
    app.add_middleware(SnowplowMiddleware, tracker=tracker, trusted_proxies=["10.0.0.0/8"])

Every HTTP and WebSocket request runs in a
:func:`~snowplow_tracker.scope.tracker_scope` holding its client IP, user agent,
language, user id and the browser's ids; events tracked while it is handled
(in the endpoint, in background tasks it starts, in sync endpoints run in the
thread pool) carry them. At lifespan shutdown the tracker's emitters are flushed
within ``flush_timeout`` seconds, after the app's own shutdown handlers ran.

The default user id is ``scope["user"]`` of Starlette's ``AuthenticationMiddleware``
when it is authenticated (add this middleware before that one, so it runs inside
it); where the user is known only in the endpoint (a FastAPI dependency, say),
call ``current_subject().set_user_id(...)`` there.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Optional

from ..scope import tracker_scope
from ._common import RequestTracking, logger, parse_cookie_header

# A pure ASGI middleware needs no framework: it imports none (the ``asgi`` extra brings
# Starlette for the apps built on it), so it serves any ASGI app, FastAPI's or not.

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["SnowplowMiddleware", "default_user_id"]


def default_user_id(scope: Scope) -> Optional[str]:
    """The identity of Starlette's authenticated ``scope["user"]``, if there is one."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    try:
        return str(user.identity)
    except (AttributeError, NotImplementedError):
        name = getattr(user, "display_name", None)
        return str(name) if name else None


class SnowplowMiddleware:
    """``SnowplowMiddleware(app, tracker=..., **options)``; the options are those of
    :class:`~snowplow_tracker.integrations._common.RequestTracking`."""

    def __init__(self, app: ASGIApp, tracker: Any, **options: Any) -> None:
        options.setdefault("user_id", default_user_id)
        self.app = app
        self.tracking = RequestTracking(tracker, **options)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.app(scope, receive, self._on_shutdown(send))
            return
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        subject = self._subject(scope)
        if subject is None:
            await self.app(scope, receive, send)
            return
        with tracker_scope(subject):
            if kind == "http" and self.tracking.wants_page_view(scope["method"], scope["path"]):
                headers = _headers(scope)
                self.tracking.track_page_view(_url(scope, headers), headers.get("referer"))
            await self.app(scope, receive, send)

    def _subject(self, scope: Scope) -> Any:
        try:
            headers = _headers(scope)
            client = scope.get("client")
            tracking = self.tracking
            return tracking.subject(
                remote_addr=client[0] if client else None,
                forwarded_for=headers.get("x-forwarded-for"),
                user_agent=headers.get("user-agent"),
                accept_language=headers.get("accept-language"),
                cookies=parse_cookie_header(headers.get("cookie")),
                user_id=tracking.user_id(scope) if tracking.user_id else None,
            )
        except Exception:
            logger.exception("reading the request's subject failed; tracking it without one")
            return None

    def _on_shutdown(self, send: Send) -> Send:
        async def send_after_flushing(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await self.tracking.flush_async()
            await send(message)

        return send_after_flushing


def _headers(scope: Scope) -> dict[str, str]:
    """The request headers by lowercase name; repeated ones joined with ``,`` as HTTP allows."""
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        if name in headers:
            value = headers[name] + ("; " if name == "cookie" else ",") + value
        headers[name] = value
    return headers


def _url(scope: Scope, headers: dict[str, str]) -> str:
    scheme = scope.get("scheme", "http")
    server = scope.get("server")
    host = headers.get("host") or (f"{server[0]}:{server[1]}" if server else "localhost")
    path = scope.get("root_path", "") + scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{scheme}://{host}{path}" + (f"?{query}" if query else "")
