"""A local Snowplow collector that validates events against Iglu schemas.

Needs the ``collector`` extra (``pip install 'snowplow-tracker[collector]'``).
"""

from __future__ import annotations

from .._extras import require

require("jsonschema", "collector")

from .iglu import BUNDLED_SCHEMAS, Resolver, SchemaKey, SchemaNotFound  # noqa: E402
from .server import Collector, RequestRecord, Response, run_collector  # noqa: E402
from .validate import Event, ProtocolViolation  # noqa: E402

__all__ = [
    "BUNDLED_SCHEMAS",
    "Collector",
    "Event",
    "ProtocolViolation",
    "RequestRecord",
    "Resolver",
    "Response",
    "SchemaKey",
    "SchemaNotFound",
    "run_collector",
]
