"""``Snowplow``: the 1.x registry of trackers by namespace, and ``create_tracker``."""

from __future__ import annotations

import logging
import threading
from typing import ClassVar, Optional

from . import contracts
from .configuration import EmitterConfiguration, TrackerConfiguration
from .emitters import Emitter
from .subject import Subject
from .tracker import Tracker
from .typing import Method

logger = logging.getLogger(__name__)


class Snowplow:
    """Trackers by namespace, process-wide (1.x)::

    tracker = Snowplow.create_tracker("ns", "collector.example.com", app_id="app")
    Snowplow.get_tracker("ns").track(PageView("https://example.com"))
    """

    _trackers: ClassVar[dict[str, Tracker]] = {}
    _lock = threading.Lock()

    @staticmethod
    def create_tracker(
        namespace: str,
        endpoint: str,
        method: Method = "post",
        app_id: Optional[str] = None,
        subject: Optional[Subject] = None,
        tracker_config: Optional[TrackerConfiguration] = None,
        emitter_config: Optional[EmitterConfiguration] = None,
    ) -> Tracker:
        """A Tracker with one :class:`Emitter` (1.x defaults: https unless ``endpoint`` names
        a scheme, POST batches of 10, retries), registered under ``namespace``; a namespace
        already registered raises ``TypeError``, as in 1.x."""
        if endpoint is None:
            raise TypeError("Emitter or Collector URL must be provided")
        if contracts._enabled:
            contracts.non_empty_string("create_tracker()", "namespace", namespace)
        tracker_config = tracker_config or TrackerConfiguration()
        emitter_config = emitter_config or EmitterConfiguration()
        emitter = Emitter(endpoint, method=method, **emitter_config.emitter_options())
        tracker = Tracker(
            namespace,
            emitter,
            subject=subject,
            app_id=app_id,
            encode_base64=tracker_config.encode_base64,
            json_encoder=tracker_config.json_encoder,
        )
        return Snowplow.add_tracker(tracker)

    @classmethod
    def add_tracker(cls, tracker: Tracker) -> Tracker:
        """Register ``tracker`` under its namespace (``TypeError`` if that one is taken)."""
        if not isinstance(tracker, Tracker):
            contracts.fail_type("add_tracker()", "tracker", "a Tracker", tracker)
        namespace = tracker.get_namespace()
        with cls._lock:
            if namespace in cls._trackers:
                raise TypeError(f"a tracker with namespace {namespace!r} already exists")
            cls._trackers[namespace] = tracker  # type: ignore[index]
        logger.info("Tracker with namespace %r added to Snowplow", namespace)
        return tracker

    @classmethod
    def remove_tracker(cls, tracker: Tracker) -> None:
        """Unregister ``tracker`` (nothing happens if it is not registered)."""
        namespace = tracker.get_namespace()
        if namespace is not None:
            cls.remove_tracker_by_namespace(namespace)

    @classmethod
    def remove_tracker_by_namespace(cls, namespace: str) -> None:
        """Unregister the tracker of ``namespace``, if there is one."""
        with cls._lock:
            removed = cls._trackers.pop(namespace, None)
        if removed is None:
            logger.info("No tracker with namespace %r to remove", namespace)

    @classmethod
    def reset(cls) -> None:
        """Unregister every tracker."""
        with cls._lock:
            cls._trackers = {}

    @classmethod
    def get_tracker(cls, namespace: str) -> Optional[Tracker]:
        """The tracker registered under ``namespace``, or None."""
        return cls._trackers.get(namespace)


__all__ = ["Snowplow"]
