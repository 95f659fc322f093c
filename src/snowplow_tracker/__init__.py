"""Snowplow event tracker for Python: the 0.5.0 API, made reliable and fast.

::

    from snowplow_tracker import Subject, Emitter, Tracker

    e = Emitter("collector.example.com")
    t = Tracker(e, namespace="cf", app_id="my-app")
    t.track_page_view("http://www.example.com")

Importing the package imports neither celery nor redis, installs no signal
handler and touches no logger but its own (``snowplow_tracker``, level INFO, with
one handler that prints to stderr only while the application has configured no
logging). It warns (:class:`DistributionConflictWarning`) if ``snowplow-tracker``
or ``minimal-snowplow-tracker``, which share the import name, is installed too.
"""

from __future__ import annotations

from . import _logging

_logging.configure()
logger = _logging.logger

from ._celery import CeleryEmitter  # noqa: E402
from ._delivery import DeliveryStats  # noqa: E402
from ._distribution import warn_on_conflicts  # noqa: E402
from ._redis import RedisEmitter  # noqa: E402
from ._sent import SentEvents  # noqa: E402
from ._version import __version__, __version_info__  # noqa: E402
from .configuration import EmitterConfiguration, TrackerConfiguration  # noqa: E402
from .contracts import contracts_enabled, disable_contracts, enable_contracts  # noqa: E402
from .emitters import AsyncEmitter, Emitter  # noqa: E402
from .event_store import EventStore, MemoryEventStore, SQLiteEventStore  # noqa: E402
from .events import (  # noqa: E402
    AddToCart,
    EcommerceTransaction,
    EcommerceTransactionItem,
    Event,
    FormChange,
    FormSubmit,
    LinkClick,
    PagePing,
    PageView,
    RemoveFromCart,
    ScreenView,
    SelfDescribing,
    SiteSearch,
    StructuredEvent,
)
from .exceptions import (  # noqa: E402
    ContractError,
    DistributionConflictWarning,
    EmitterClosedError,
    EventStoreLockedError,
    InvalidTypeError,
    InvalidValueError,
    MissingExtraError,
    SnowplowError,
)
from .payload import Payload  # noqa: E402
from .retry import RetryPolicy  # noqa: E402
from .self_describing_json import SelfDescribingJson  # noqa: E402
from .snowplow import Snowplow  # noqa: E402
from .subject import Subject  # noqa: E402
from .tracker import Tracker  # noqa: E402

__all__ = [
    "AddToCart",
    "AsyncEmitter",
    "AsyncioEmitter",
    "CeleryEmitter",
    "ContractError",
    "DeliveryStats",
    "DistributionConflictWarning",
    "EcommerceTransaction",
    "EcommerceTransactionItem",
    "Emitter",
    "EmitterClosedError",
    "EmitterConfiguration",
    "Event",
    "EventStore",
    "EventStoreLockedError",
    "FormChange",
    "FormSubmit",
    "InvalidTypeError",
    "InvalidValueError",
    "LinkClick",
    "MemoryEventStore",
    "MissingExtraError",
    "PagePing",
    "PageView",
    "Payload",
    "RedisEmitter",
    "RemoveFromCart",
    "RetryPolicy",
    "SQLiteEventStore",
    "ScreenView",
    "SelfDescribing",
    "SelfDescribingJson",
    "SentEvents",
    "SiteSearch",
    "Snowplow",
    "SnowplowError",
    "StructuredEvent",
    "Subject",
    "Tracker",
    "TrackerConfiguration",
    "__version__",
    "__version_info__",
    "contracts_enabled",
    "disable_contracts",
    "enable_contracts",
    "logger",
]

warn_on_conflicts()


def __getattr__(name: str) -> object:
    # AsyncioEmitter is loaded on first use, so importing the package does not import asyncio.
    if name == "AsyncioEmitter":
        from .aio import AsyncioEmitter

        return AsyncioEmitter
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
