"""A Flask app whose events carry each request's user, IP and browser ids.

Run it (with a collector on localhost:9090, e.g. ``snowplow-tracker collector``)::

    pip install 'snowplow-event-tracker[flask]' flask-login
    python examples/flask_app.py            # a threaded server on 127.0.0.1:5000
    curl -H 'Authorization: Bearer alice' http://127.0.0.1:5000/buy/book

Flask-Login's authenticated user is the events' user id; here a bearer token
stands in for a real login (it trusts the header: a demo, not an auth scheme).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from typing import Any, Optional

from flask import Flask
from flask_login import LoginManager, UserMixin
from tracking import tracker_from_env

from snowplow_tracker import Tracker
from snowplow_tracker.integrations.flask import Snowplow


class User(UserMixin):
    def __init__(self, user_id: str) -> None:
        self.id = user_id


def create_app(tracker: Tracker, **options: Any) -> Flask:
    app = Flask(__name__)
    login = LoginManager(app)

    @login.request_loader
    def user_from_token(request: Any) -> Optional[User]:
        token = request.headers.get("Authorization", "")
        return User(token[7:]) if token.startswith("Bearer ") else None

    # The proxy in front of the app (here: whatever connects from this machine).
    options.setdefault("trusted_proxies", ["127.0.0.1", "::1"])
    Snowplow(app, tracker=tracker, **options)

    @app.get("/")
    def home() -> str:
        return "hello"

    @app.get("/buy/<item>")
    def buy(item: str) -> str:
        # Tracked with this request's user, IP, user agent, language and cookie ids.
        tracker.track_struct_event("shop", "buy", label=item, property_=str(os.getpid()))
        return "bought"

    return app


def main() -> None:
    from werkzeug.serving import make_server

    app = create_app(tracker_from_env("flask-shop"))
    server = make_server("127.0.0.1", int(os.environ.get("PORT", "5000")), app, threaded=True)
    # Stop on SIGTERM (a container's stop) as on Ctrl-C: by a normal exit, at which
    # queued events are sent within the emitter's exit_timeout.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"listening on http://127.0.0.1:{server.port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


if __name__ == "__main__":
    main()
