"""The name-value pairs of one event, as the tracker protocol sends them.

Building a payload is pure: nothing here reads a clock, makes an id or does
I/O. The tracker passes ``eid`` and ``dtm`` in.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any, Optional

from .exceptions import InvalidTypeError, InvalidValueError

JsonEncoder = Optional[Callable[[Any], Any]]

# One encoder for every call: json.dumps with non-default options builds a new one each time.
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))

#: Whether :func:`dumps` uses orjson (the ``fast`` extra): None until first needed, so that
#: importing the package does not import it; tests set it to run the pure-Python path.
use_orjson: Optional[bool] = None
_orjson: Any = None
_ORJSON_OPTIONS = 0


def _load_orjson() -> bool:
    global use_orjson, _orjson, _ORJSON_OPTIONS
    try:
        import orjson
    except ImportError:
        use_orjson = False
        return False
    _orjson = orjson
    # Types orjson would write itself where json calls ``default``: hand them back instead.
    _ORJSON_OPTIONS = (
        orjson.OPT_PASSTHROUGH_DATACLASS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_SUBCLASS
    )
    use_orjson = True
    return True


def dumps(value: Any, json_encoder: JsonEncoder = None) -> str:
    """Compact JSON that keeps non-ASCII text as is (it is UTF-8 on the wire).

    With orjson installed (``pip install 'snowplow-event-tracker[fast]'``) it writes the
    same JSON five times faster. Whatever orjson refuses (integers beyond 64
    bits, non-string keys, datetimes, dataclasses, subclasses of built-in types)
    and every call with a ``json_encoder`` goes through :mod:`json`, so results
    and errors are the same, except that orjson writes NaN and infinities as
    ``null`` (valid JSON), spells some floats in exponent form differently
    (``1e-7`` for ``1e-07``, the same number) and serialises ``uuid.UUID`` and
    ``Enum`` values.
    """
    if json_encoder is None and use_orjson is not False and (use_orjson or _load_orjson()):
        try:
            text: str = _orjson.dumps(value, option=_ORJSON_OPTIONS).decode("utf-8")
            return text
        except _orjson.JSONEncodeError:
            pass  # let json produce its own result or error
    try:
        if json_encoder is None:
            return _ENCODER.encode(value)
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=json_encoder)
    except (TypeError, ValueError) as exc:
        raise InvalidTypeError(f"cannot serialise to JSON: {exc}") from exc


def dumps_bytes(value: Any) -> bytes:
    """:func:`dumps` as UTF-8 bytes (orjson writes bytes: no decode and encode again).

    Raises ``ValueError`` for text that cannot be UTF-8 (lone surrogates).
    """
    if use_orjson is not False and (use_orjson or _load_orjson()):
        try:
            data: bytes = _orjson.dumps(value, option=_ORJSON_OPTIONS)
            return data
        except _orjson.JSONEncodeError:
            pass  # let json produce its own result or error
    return dumps(value).encode("utf-8")


def b64encode_json(text: str) -> str:
    """URL-safe base64 of the UTF-8 bytes, with ``=`` padding as the 0.5.0 tracker sent it."""
    return base64.urlsafe_b64encode(text.encode("utf-8")).decode("ascii")


def put_json(
    pairs: dict[str, Any],
    value: Any,
    encode_base64: bool,
    json_encoder: JsonEncoder,
    encoded: str,
    plain: str,
) -> None:
    """``value`` as JSON into ``pairs``: base64 under ``encoded``, or as text under ``plain``.

    Text that cannot be UTF-8 (a lone surrogate) is refused here, naming the
    field, rather than failing the whole batch when it is sent.
    """
    try:
        if encode_base64 and json_encoder is None:
            # The UTF-8 bytes straight from the encoder: no decode and encode again.
            pairs[encoded] = base64.urlsafe_b64encode(dumps_bytes(value)).decode("ascii")
            return
        text = dumps(value, json_encoder)
        if encode_base64:
            pairs[encoded] = b64encode_json(text)
        else:
            text.encode("utf-8")  # what the wire needs: fail here, not when sending
            pairs[plain] = text
    except UnicodeEncodeError as exc:
        raise InvalidValueError(
            f"{encoded if encode_base64 else plain}: text that cannot be sent as UTF-8 "
            f"(a lone surrogate, {exc.object[exc.start : exc.end]!r})"
        ) from None


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
        if dict_:
            put_json(
                self.nv_pairs,
                dict_,
                encode_base64,
                json_encoder,
                type_when_encoded,
                type_when_not_encoded,
            )

    def get(self) -> dict[str, Any]:
        """The pairs (the same dict, not a copy)."""
        return self.nv_pairs
