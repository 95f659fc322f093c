"""Tracker-protocol constants shared by the tracker, emitters and collector."""

from __future__ import annotations

from typing import Final

from ._version import __version__
from .self_describing_json import SelfDescribingJson

VERSION: Final = "py-" + __version__
BASE_SCHEMA_PATH: Final = "iglu:com.snowplowanalytics.snowplow"
MOBILE_SCHEMA_PATH: Final = "iglu:com.snowplowanalytics.mobile"
SCHEMA_TAG: Final = "jsonschema"
CONTEXT_SCHEMA: Final = f"{BASE_SCHEMA_PATH}/contexts/{SCHEMA_TAG}/1-0-1"
UNSTRUCT_EVENT_SCHEMA: Final = f"{BASE_SCHEMA_PATH}/unstruct_event/{SCHEMA_TAG}/1-0-0"
SCREEN_VIEW_SCHEMA: Final = f"{BASE_SCHEMA_PATH}/screen_view/{SCHEMA_TAG}/1-0-0"
MOBILE_SCREEN_VIEW_SCHEMA: Final = f"{MOBILE_SCHEMA_PATH}/screen_view/{SCHEMA_TAG}/1-0-0"
PAYLOAD_DATA_SCHEMA: Final = f"{BASE_SCHEMA_PATH}/payload_data/{SCHEMA_TAG}/1-0-4"

GET_PATH: Final = "/i"
POST_PATH: Final = "/com.snowplowanalytics.snowplow/tp2"
POST_CONTENT_TYPE: Final = "application/json; charset=utf-8"

DEFAULT_ENCODE_BASE64: Final = True
#: Serialised bytes of one POST body at most, envelope included (the JS tracker's default).
DEFAULT_BYTE_LIMIT: Final = 40_000
#: Seconds to wait for the collector per request.
DEFAULT_REQUEST_TIMEOUT: Final = 5.0

#: The 1.x type of a ``context`` argument.
ContextArray = list[SelfDescribingJson]
