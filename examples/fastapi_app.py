"""A FastAPI app whose events carry each request's user, IP and browser ids.

Run it (with a collector on localhost:9090, e.g. ``snowplow-tracker collector``)::

    pip install 'snowplow-event-tracker[asgi]' fastapi uvicorn
    cd examples && uvicorn fastapi_app:app
    curl -H 'Authorization: Bearer alice' http://127.0.0.1:8000/buy/book

The user comes from Starlette's AuthenticationMiddleware (a bearer token stands
in for a real login: a demo, not an auth scheme). At shutdown (the ASGI
lifespan) the middleware sends what is queued within ``flush_timeout`` seconds.
"""

from __future__ import annotations

import os
from typing import Any, Optional

from fastapi import FastAPI
from starlette.authentication import AuthCredentials, AuthenticationBackend, SimpleUser
from starlette.middleware.authentication import AuthenticationMiddleware
from tracking import tracker_from_env

from snowplow_tracker import Tracker
from snowplow_tracker.integrations.asgi import SnowplowMiddleware


class BearerUser(AuthenticationBackend):
    async def authenticate(self, conn: Any) -> Optional[tuple[AuthCredentials, SimpleUser]]:
        token = conn.headers.get("Authorization", "")
        if not token.startswith("Bearer "):
            return None
        return AuthCredentials(["authenticated"]), SimpleUser(token[7:])


def create_app(tracker: Tracker, **options: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def home() -> str:
        return "hello"

    @app.get("/buy/{item}")
    async def buy(item: str) -> str:
        # Tracked with this request's user, IP, user agent, language and cookie ids.
        tracker.track_struct_event("shop", "buy", label=item, property_=str(os.getpid()))
        return "bought"

    @app.get("/buy-sync/{item}")
    def buy_sync(item: str) -> str:  # a sync endpoint runs in a thread: the scope goes along
        tracker.track_struct_event("shop", "buy", label=item, property_=str(os.getpid()))
        return "bought"

    options.setdefault("trusted_proxies", ["127.0.0.1", "::1"])
    # The last added runs first: authentication, then Snowplow (which reads scope["user"]).
    app.add_middleware(SnowplowMiddleware, tracker=tracker, **options)
    app.add_middleware(AuthenticationMiddleware, backend=BearerUser())
    return app


def __getattr__(name: str) -> Any:
    # ``uvicorn fastapi_app:app`` builds the app (and its tracker) on first use only.
    if name == "app":
        global app
        app = create_app(tracker_from_env("fastapi-shop"))
        return app
    raise AttributeError(name)
