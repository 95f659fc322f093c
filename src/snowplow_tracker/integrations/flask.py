"""A Flask extension (the ``flask`` extra)::

    from flask import Flask
    from snowplow_tracker.integrations.flask import Snowplow

    app = Flask(__name__)
    snowplow = Snowplow(app, tracker=tracker, trusted_proxies=["10.0.0.0/8"])
    # or, with an app factory: snowplow = Snowplow(tracker=tracker); snowplow.init_app(app)

Every request runs in a :func:`~snowplow_tracker.scope.tracker_scope` holding its
client IP, user agent, language, user id (by default Flask-Login's
``current_user`` when it is authenticated) and the browser's ids; events tracked
while it is handled carry them. The scope opens in a ``before_request`` hook and
closes when the request is torn down. Queued events are sent at process exit
within each emitter's ``exit_timeout``.
"""

from __future__ import annotations

from typing import Any, Optional

from .._extras import require
from ..scope import tracker_scope
from ._common import RequestTracking, logger, parse_cookie_header

flask = require("flask", "flask")

__all__ = ["Snowplow", "default_user_id"]

_EXTENSION = "snowplow_tracker"


def default_user_id(request: Any) -> Optional[str]:
    """Flask-Login's ``current_user.get_id()`` when authenticated (and Flask-Login is used)."""
    try:
        from flask_login import current_user
    except ImportError:
        return None
    if not getattr(flask.current_app, "login_manager", None):
        return None
    if not current_user.is_authenticated:
        return None
    user_id = current_user.get_id()
    return str(user_id) if user_id is not None else None


class Snowplow:
    """``Snowplow(app=None, tracker=..., **options)``; the options are those of
    :class:`~snowplow_tracker.integrations._common.RequestTracking`."""

    def __init__(self, app: Any = None, tracker: Any = None, **options: Any) -> None:
        self.tracker = tracker
        self.options = options
        self.tracking: Optional[RequestTracking] = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Any, tracker: Any = None) -> None:
        """Open a scope for every request of ``app`` (``tracker`` overrides the one given)."""
        options = dict(self.options)
        options.setdefault("user_id", default_user_id)
        self.tracking = tracking = RequestTracking(tracker or self.tracker, **options)
        app.extensions[_EXTENSION] = self

        def open_scope() -> None:
            _open_scope(tracking)

        app.before_request(open_scope)
        app.teardown_request(_close_scope)


def _open_scope(tracking: RequestTracking) -> None:
    request = flask.request
    try:
        subject = tracking.subject(
            remote_addr=request.remote_addr,
            forwarded_for=request.headers.get("X-Forwarded-For"),
            user_agent=request.headers.get("User-Agent"),
            accept_language=request.headers.get("Accept-Language"),
            cookies=parse_cookie_header(request.headers.get("Cookie")),
            user_id=tracking.user_id(request) if tracking.user_id else None,
        )
    except Exception:
        logger.exception("reading the request's subject failed; tracking it without one")
        return
    scope = tracker_scope(subject)
    scope.__enter__()
    flask.g._snowplow_scope = scope
    if tracking.wants_page_view(request.method, request.path):
        tracking.track_page_view(request.url, request.referrer)


def _close_scope(exc: Optional[BaseException]) -> None:
    scope = flask.g.pop("_snowplow_scope", None)
    if scope is not None:
        scope.__exit__()
