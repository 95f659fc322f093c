"""A one-file Django project whose events carry each request's user, IP and browser ids.

Run it (with a collector on localhost:9090, e.g. ``snowplow-tracker collector``)::

    pip install 'snowplow-event-tracker[django]' gunicorn
    cd examples
    python django_shop.py runserver                      # the development server, or
    DJANGO_SETTINGS_MODULE=django_shop gunicorn --preload -w 4 django_shop:application
    curl -H 'Authorization: Bearer alice' http://127.0.0.1:8000/buy/book

This module is the settings, the URLs, the views and the WSGI application. A
real project keeps the default user id (``request.user`` of Django's
authentication); here a bearer token stands in for a login (a demo, not an auth
scheme), through the ``USER_ID`` setting.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Optional

from django.http import HttpResponse
from django.urls import path
from tracking import tracker_from_env

#: The app's one Tracker (its emitter's threads start on first use, so after a fork).
tracker = tracker_from_env("django-shop")

DEBUG = False
SECRET_KEY = "an example, not a secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "testserver", "[::1]"]
ROOT_URLCONF = "django_shop"
INSTALLED_APPS: list[str] = []
USE_TZ = True
MIDDLEWARE = ["snowplow_tracker.integrations.django.SnowplowMiddleware"]
SNOWPLOW = {
    "TRACKER": "django_shop.tracker",
    "USER_ID": "django_shop.user_from_token",
    "TRUSTED_PROXIES": ["127.0.0.1", "::1"],  # the proxy in front (here: this machine)
}


def user_from_token(request: Any) -> Optional[str]:
    token = request.headers.get("Authorization", "")
    return token[7:] if token.startswith("Bearer ") else None


def home(request: Any) -> HttpResponse:
    return HttpResponse("hello")


def buy(request: Any, item: str) -> HttpResponse:
    # Tracked with this request's user, IP, user agent, language and cookie ids.
    tracker.track_struct_event("shop", "buy", label=item, property_=str(os.getpid()))
    return HttpResponse("bought")


urlpatterns = [path("", home), path("buy/<str:item>", buy)]


def __getattr__(name: str) -> Any:
    # ``gunicorn django_shop:application`` builds the WSGI app on first use.
    if name == "application":
        from django.core.wsgi import get_wsgi_application

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_shop")
        return get_wsgi_application()
    raise AttributeError(name)


if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_shop")
    execute_from_command_line(sys.argv)
