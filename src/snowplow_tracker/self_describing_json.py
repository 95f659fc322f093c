"""Self-describing JSON: a schema URI and the data it describes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Union

from .payload import dumps


class SelfDescribingJson:
    """``{"schema": schema, "data": data}``, as the 1.x tracker spells it.

    The tracker accepts these wherever it accepts the plain dict form.
    """

    __slots__ = ("data", "schema")

    def __init__(self, schema: str, data: Any) -> None:
        self.schema = schema
        self.data = data

    def to_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "data": self.data}

    def to_string(self) -> str:
        return dumps(self.to_json())

    def __repr__(self) -> str:
        return f"SelfDescribingJson({self.schema!r}, {self.data!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SelfDescribingJson):
            return self.to_json() == other.to_json()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


SelfDescribing = Union[Mapping[str, Any], SelfDescribingJson]


def as_dict(value: SelfDescribing) -> Mapping[str, Any]:
    """The plain-dict form of either spelling."""
    if isinstance(value, SelfDescribingJson):
        return value.to_json()
    return value
