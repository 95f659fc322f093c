"""The name-value pairs of one event, as the tracker protocol sends them.

Building a payload is pure: nothing here reads a clock, makes an id or does
I/O. The tracker passes ``eid`` and ``dtm`` in.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any, Optional

from .exceptions import InvalidTypeError

JsonEncoder = Optional[Callable[[Any], Any]]


def dumps(value: Any, json_encoder: JsonEncoder = None) -> str:
    """Compact JSON that keeps non-ASCII text as is (it is UTF-8 on the wire)."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=json_encoder)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"cannot serialise to JSON: {exc}") from exc


def b64encode_json(text: str) -> str:
    """URL-safe base64 of the UTF-8 bytes, with ``=`` padding as the 0.5.0 tracker sent it."""
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


class Payload:
    """A dict of tracker-protocol parameters with the 0.5.0 helper methods."""

    __slots__ = ("nv_pairs",)

    def __init__(self, dict_: Mapping[str, Any] | None = None) -> None:
        self.nv_pairs: dict[str, Any] = {}
        if dict_ is not None:
            self.add_dict(dict_)

    def add(self, name: str, value: Any) -> None:
        """Add one pair; ``None`` and ``""`` are left out (``0`` and ``False`` are kept)."""
        if value is None or (isinstance(value, str) and not value):
            return
        self.nv_pairs[name] = value

    def add_dict(self, dict_: Mapping[str, Any], base64: bool = False) -> None:
        """Add every pair of ``dict_`` (``base64`` is accepted and unused, as in 0.5.0)."""
        for name, value in dict_.items():
            self.add(name, value)

    def add_json(
        self,
        dict_: Mapping[str, Any] | None,
        encode_base64: bool,
        type_when_encoded: str,
        type_when_not_encoded: str,
        json_encoder: JsonEncoder = None,
    ) -> None:
        """Add ``dict_`` as JSON: base64 under one name, plain under the other.

        An empty or missing dict adds nothing.
        """
        if not dict_:
            return
        text = dumps(dict_, json_encoder)
        if encode_base64:
            self.add(type_when_encoded, b64encode_json(text))
        else:
            self.add(type_when_not_encoded, text)

    def get(self) -> dict[str, Any]:
        """The pairs (the same dict, not a copy)."""
        return self.nv_pairs
