"""The one Tracker an example app shares between all its requests, configured from the
environment: SNOWPLOW_COLLECTOR (host:port, default localhost:9090), SNOWPLOW_BUFFER_SIZE
(events per POST, default 10), SNOWPLOW_BYTE_LIMIT (bytes per POST, default the emitter's)
and SNOWPLOW_FLUSH_INTERVAL (seconds, default 1)."""

from __future__ import annotations

import os

from snowplow_tracker import AsyncEmitter, Subject, Tracker


def tracker_from_env(app_id: str) -> Tracker:
    emitter = AsyncEmitter(
        os.environ.get("SNOWPLOW_COLLECTOR", "localhost:9090"),
        method="post",
        buffer_size=int(os.environ.get("SNOWPLOW_BUFFER_SIZE", "10")),
        byte_limit=int(os.environ["SNOWPLOW_BYTE_LIMIT"])
        if "SNOWPLOW_BYTE_LIMIT" in os.environ
        else None,
        flush_interval=float(os.environ.get("SNOWPLOW_FLUSH_INTERVAL", "1")),
    )
    # What is true of every event of the app goes in the tracker's subject; what is
    # true of one request goes in the request's scope (the integrations fill it).
    return Tracker(emitter, Subject().set_platform("srv"), namespace="shop", app_id=app_id)
