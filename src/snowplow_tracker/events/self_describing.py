"""Self-describing events (``e=ue``): any JSON described by an Iglu schema."""

from __future__ import annotations

from collections.abc import Mapping

from .. import contracts
from ..constants import UNSTRUCT_EVENT_SCHEMA
from ..payload import JsonEncoder, Payload, put_json
from ..self_describing_json import SelfDescribing as SelfDescribingValue
from ..self_describing_json import as_dict
from ..subject import Subject
from .event import Context, Event, Timestamp


class SelfDescribing(Event):
    """A self-describing event: ``event_json`` is a
    :class:`~snowplow_tracker.SelfDescribingJson` (or a ``{"schema", "data"}`` dict)
    whose schema is an Iglu URI, sent as ``ue_px`` (base64) or ``ue_pr``."""

    def __init__(
        self,
        event_json: SelfDescribingValue,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if (
            contracts._enabled
            and not isinstance(event_json, Mapping)
            and not hasattr(event_json, "to_json")
        ):
            contracts.fail_type(
                "SelfDescribing()", "event_json", "a SelfDescribingJson or dict", event_json
            )
        self._setup({"e": "ue"}, event_subject, context, true_timestamp)
        self.event_json = event_json

    def build_payload(
        self,
        encode_base64: bool,
        json_encoder: JsonEncoder,
        subject: Subject | None = None,
    ) -> Payload:
        """The event's payload (:meth:`Event.build_payload`) with ``event_json`` in its
        ``unstruct_event`` envelope, as ``ue_px`` (base64) or ``ue_pr``."""
        payload = super().build_payload(encode_base64, json_encoder, subject)
        envelope = {"schema": UNSTRUCT_EVENT_SCHEMA, "data": as_dict(self.event_json)}
        put_json(payload.nv_pairs, envelope, encode_base64, json_encoder, "ue_px", "ue_pr")
        return payload

    def check_schemas(self, where: str) -> None:
        if contracts._enabled:
            event_json = as_dict(self.event_json)
            contracts.self_describing(where, "event_json", event_json)
            contracts.mapping(where, 'event_json["data"]', event_json["data"])
        super().check_schemas(where)


__all__ = ["SelfDescribing"]
