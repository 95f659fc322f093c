"""Screen views: the mobile screen_view 1-0-0 event of the 1.x ``ScreenView`` class."""

from __future__ import annotations

from typing import Any

from .. import contracts
from ..constants import MOBILE_SCREEN_VIEW_SCHEMA
from ..payload import JsonEncoder, Payload
from ..self_describing_json import SelfDescribingJson
from ..subject import Subject
from .event import Context, Timestamp
from .self_describing import SelfDescribing

#: Argument names and the schema's property names.
_PROPERTIES = (
    ("id_", "id"),
    ("name", "name"),
    ("type", "type"),
    ("previous_name", "previousName"),
    ("previous_id", "previousId"),
    ("previous_type", "previousType"),
    ("transition_type", "transitionType"),
)


def _property(argument: str, key: str, required: bool) -> property:
    def get(self: ScreenView) -> Any:
        return self.screen_view_properties.get(key)

    def set_(self: ScreenView, value: Any) -> None:
        if contracts._enabled:
            if required:
                contracts.non_empty_string(f"ScreenView.{argument}", argument, value)
            else:
                contracts.optional_string(f"ScreenView.{argument}", argument, value)
        if value is None:
            self.screen_view_properties.pop(key, None)
        else:
            self.screen_view_properties[key] = value

    return property(get, set_, doc=f"The screen view's ``{key}``.")


class ScreenView(SelfDescribing):
    """A mobile screen view (``iglu:com.snowplowanalytics.mobile/screen_view/jsonschema/1-0-0``):
    ``id_`` (a UUID) and ``name`` are required; the type and the previous screen's
    name, id and type, and the transition type are optional."""

    def __init__(
        self,
        id_: str,
        name: str,
        type: str | None = None,
        previous_name: str | None = None,
        previous_id: str | None = None,
        previous_type: str | None = None,
        transition_type: str | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        values = (id_, name, type, previous_name, previous_id, previous_type, transition_type)
        if contracts._enabled:
            contracts.non_empty_string("ScreenView()", "id_", id_)
            contracts.non_empty_string("ScreenView()", "name", name)
            for (argument, _), value in zip(_PROPERTIES[2:], values[2:]):
                contracts.optional_string("ScreenView()", argument, value)
        self.screen_view_properties: dict[str, Any] = {
            key: value for (_, key), value in zip(_PROPERTIES, values) if value is not None
        }
        super().__init__(
            SelfDescribingJson(MOBILE_SCREEN_VIEW_SCHEMA, self.screen_view_properties),
            event_subject,
            context,
            true_timestamp,
        )

    id_ = _property("id_", "id", True)
    name = _property("name", "name", True)
    type = _property("type", "type", False)
    previous_name = _property("previous_name", "previousName", False)
    previous_id = _property("previous_id", "previousId", False)
    previous_type = _property("previous_type", "previousType", False)
    transition_type = _property("transition_type", "transitionType", False)

    def build_payload(
        self,
        encode_base64: bool,
        json_encoder: JsonEncoder,
        subject: Subject | None = None,
    ) -> Payload:
        """The payload of the ``screen_view`` event the properties describe now."""
        self.event_json = SelfDescribingJson(MOBILE_SCREEN_VIEW_SCHEMA, self.screen_view_properties)
        return super().build_payload(encode_base64, json_encoder, subject)


__all__ = ["ScreenView"]
