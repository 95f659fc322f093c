"""Payload: the 0.5.0 helper API, JSON and base64 encoding."""

from __future__ import annotations

import base64
import json

import pytest

from snowplow_tracker.exceptions import InvalidTypeError
from snowplow_tracker.payload import Payload, b64encode_json, dumps


def test_constructor_copies_the_dict() -> None:
    source = {"e": "pv", "url": "http://x"}
    pb = Payload(source)
    pb.add("page", "Title")
    assert pb.get() == {"e": "pv", "url": "http://x", "page": "Title"}
    assert source == {"e": "pv", "url": "http://x"}


def test_empty_constructor() -> None:
    assert Payload().nv_pairs == {}


@pytest.mark.parametrize("value", [None, ""])
def test_add_skips_none_and_empty_string(value: object) -> None:
    pb = Payload()
    pb.add("x", value)
    assert pb.nv_pairs == {}


@pytest.mark.parametrize("value", [0, 0.0, False, "0", " "])
def test_add_keeps_falsy_values_that_carry_information(value: object) -> None:
    pb = Payload()
    pb.add("x", value)
    assert pb.nv_pairs == {"x": value}


def test_add_dict_applies_the_same_rules() -> None:
    pb = Payload()
    pb.add_dict({"a": 1, "b": None, "c": "", "d": "x"}, base64=True)
    assert pb.nv_pairs == {"a": 1, "d": "x"}


def test_add_json_plain_is_compact_utf8_json() -> None:
    pb = Payload()
    pb.add_json({"schema": "s", "data": {"name": "Zoë ✓"}}, False, "cx", "co")
    assert pb.nv_pairs == {"co": '{"schema":"s","data":{"name":"Zoë ✓"}}'}


def test_add_json_base64_is_urlsafe_with_padding_and_utf8() -> None:
    document = {"data": {"name": "Zoë ✓ ~~~ ???"}}
    pb = Payload()
    pb.add_json(document, True, "cx", "co")
    encoded = pb.nv_pairs["cx"]
    assert set(pb.nv_pairs) == {"cx"}
    assert "+" not in encoded and "/" not in encoded
    assert len(encoded) % 4 == 0
    assert json.loads(base64.urlsafe_b64decode(encoded).decode("utf-8")) == document


def test_base64_matches_the_standard_library() -> None:
    text = '{"a":"é?>"}'
    assert b64encode_json(text) == base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("empty", [None, {}])
def test_add_json_ignores_empty(empty: dict[str, object] | None) -> None:
    pb = Payload()
    pb.add_json(empty, True, "cx", "co")
    assert pb.nv_pairs == {}


def test_add_json_uses_the_json_encoder_hook() -> None:
    class Money:
        def __init__(self, cents: int) -> None:
            self.cents = cents

    pb = Payload()
    pb.add_json({"v": Money(150)}, False, "ue_px", "ue_pr", lambda o: o.cents / 100)
    assert pb.nv_pairs == {"ue_pr": '{"v":1.5}'}


def test_unserialisable_json_is_a_clear_type_error() -> None:
    with pytest.raises(InvalidTypeError, match="cannot serialise to JSON"):
        Payload().add_json({"v": object()}, False, "ue_px", "ue_pr")
    with pytest.raises(TypeError):
        dumps({"v": {1, 2}})


def test_get_returns_the_pairs_themselves() -> None:
    pb = Payload({"e": "pv"})
    assert pb.get() is pb.nv_pairs
