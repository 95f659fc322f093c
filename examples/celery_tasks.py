"""A Celery task that tracks with the scope of the request that queued it.

A web request queues the task with the request's fields::

    from snowplow_tracker.scope import current_fields
    record_purchase.delay("book", current_fields())

and the task, on a worker, tracks inside ``tracker_scope(fields=...)``: its events
carry the request's user, IP and browser ids, whichever worker thread runs it.
Run a worker (Redis on 127.0.0.1:6379, a collector on localhost:9090)::

    pip install 'snowplow-event-tracker[celery]'
    cd examples && celery -A celery_tasks worker --pool=threads -c 8
"""

from __future__ import annotations

import os

from celery import Celery
from tracking import tracker_from_env

from snowplow_tracker.scope import tracker_scope

app = Celery("celery_tasks", broker=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"))
app.conf.task_default_queue = os.environ.get("CELERY_QUEUE", "celery")
app.conf.broker_connection_retry_on_startup = True

tracker = tracker_from_env("celery-shop")


@app.task
def record_purchase(item: str, snowplow_fields: dict[str, str]) -> None:
    with tracker_scope(fields=snowplow_fields):
        tracker.track_struct_event("shop", "purchase-recorded", label=item)
