"""The 1.x configuration classes: ``EmitterConfiguration`` and ``TrackerConfiguration``.

Module paths of 1.x (``snowplow_tracker.emitter_configuration`` and
``snowplow_tracker.tracker_configuration``) import from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from . import contracts
from .typing import FailureCallback, JsonEncoderFunction, SuccessCallback


def _size(name: str) -> property:
    """A property holding a non-negative int or None (1.x raises ``ValueError`` otherwise)."""
    attribute = "_" + name

    def get(self: Any) -> Optional[int]:
        value: Optional[int] = getattr(self, attribute)
        return value

    def set_(self: Any, value: Any) -> None:
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int):
                contracts.fail_value("EmitterConfiguration", name, "an int or None", value)
            if value < 0:
                contracts.fail_value("EmitterConfiguration", name, "an int >= 0", value)
        setattr(self, attribute, value)

    return property(get, set_)


class EmitterConfiguration:
    """How :meth:`Snowplow.create_tracker <snowplow_tracker.Snowplow.create_tracker>` builds
    its :class:`~snowplow_tracker.Emitter`, with 1.x's defaults (see ``Emitter``):
    https unless the endpoint names a scheme, POST batches of ``batch_size`` (10), and
    retries on every non-2xx status but 400, 401, 403, 410 and 422, which
    ``custom_retry_codes`` (``{status: retry}``) or :meth:`set_retry_code` override."""

    batch_size = _size("batch_size")
    byte_limit = _size("byte_limit")
    buffer_capacity = _size("buffer_capacity")

    def __init__(
        self,
        batch_size: Optional[int] = None,
        on_success: Optional[SuccessCallback] = None,
        on_failure: Optional[FailureCallback] = None,
        byte_limit: Optional[int] = None,
        request_timeout: Optional[Any] = None,
        buffer_capacity: Optional[int] = None,
        custom_retry_codes: Optional[Mapping[int, bool]] = None,
        event_store: Any = None,
        session: Any = None,
    ) -> None:
        self.batch_size = batch_size
        self.on_success = on_success
        self.on_failure = on_failure
        self.byte_limit = byte_limit
        self.request_timeout = request_timeout
        self.buffer_capacity = buffer_capacity
        self.custom_retry_codes: dict[int, bool] = dict(custom_retry_codes or {})
        self.event_store = event_store
        self.session = session

    def set_retry_code(self, status_code: int, retry: bool = True) -> bool:
        """Retry (or never retry) answers with ``status_code``; False for a 2xx code or a
        wrong type, which change nothing."""
        if isinstance(status_code, bool) or not isinstance(status_code, int):
            return False
        if not isinstance(retry, bool) or 200 <= status_code < 300:
            return False
        self.custom_retry_codes[status_code] = retry
        return True

    def emitter_options(self) -> dict[str, Any]:
        """The keyword arguments of the ``Emitter`` this configuration describes."""
        options: dict[str, Any] = {
            "batch_size": self.batch_size or None,
            "on_success": self.on_success,
            "on_failure": self.on_failure,
            "byte_limit": self.byte_limit or None,
            "buffer_capacity": self.buffer_capacity or None,
            "custom_retry_codes": self.custom_retry_codes,
            "event_store": self.event_store,
            "session": self.session,
            "defaults": "1.x",
        }
        if self.request_timeout is not None:
            options["request_timeout"] = self.request_timeout
        return options


class TrackerConfiguration:
    """How :meth:`Snowplow.create_tracker <snowplow_tracker.Snowplow.create_tracker>`
    builds its :class:`~snowplow_tracker.Tracker`: ``encode_base64`` and ``json_encoder``."""

    def __init__(
        self, encode_base64: bool = True, json_encoder: Optional[JsonEncoderFunction] = None
    ) -> None:
        self._encode_base64 = True
        self.encode_base64 = encode_base64
        self.json_encoder = json_encoder

    @property
    def encode_base64(self) -> bool:
        """Whether JSON fields are sent base64-encoded (``ue_px``, ``cx``)."""
        return self._encode_base64

    @encode_base64.setter
    def encode_base64(self, value: bool) -> None:
        if contracts._enabled and not isinstance(value, bool):
            contracts.fail_type("TrackerConfiguration", "encode_base64", "a bool", value)
        self._encode_base64 = value


__all__ = ["EmitterConfiguration", "TrackerConfiguration"]
