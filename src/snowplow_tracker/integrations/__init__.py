"""Web framework integrations: a :func:`~snowplow_tracker.scope.tracker_scope` per request.

* :mod:`snowplow_tracker.integrations.django`: a middleware configured from Django settings
  (``pip install 'snowplow-event-tracker[django]'``);
* :mod:`snowplow_tracker.integrations.flask`: an ``init_app`` extension (``[flask]``);
* :mod:`snowplow_tracker.integrations.asgi`: a pure ASGI middleware for FastAPI and
  Starlette (``[asgi]``).

Each imports its framework only when imported itself.
"""
