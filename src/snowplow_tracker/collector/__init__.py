"""A local Snowplow collector that validates events against Iglu schemas, like Snowplow Micro.

Needs the ``collector`` extra (``pip install 'snowplow-event-tracker[collector]'``).
"""

from __future__ import annotations

from .._extras import require

require("jsonschema", "collector")
require("fastjsonschema", "collector")
require("uvicorn", "collector")

from .iglu import BUNDLED_SCHEMAS, Resolver, SchemaKey, SchemaNotFound  # noqa: E402
from .server import Collector, RequestRecord, Response, run_collector  # noqa: E402
from .validate import CollectorPayload, Event, PayloadFailure, ProtocolViolation  # noqa: E402

__all__ = [
    "BUNDLED_SCHEMAS",
    "Collector",
    "CollectorPayload",
    "Event",
    "PayloadFailure",
    "ProtocolViolation",
    "RequestRecord",
    "Resolver",
    "Response",
    "SchemaKey",
    "SchemaNotFound",
    "run_collector",
]
