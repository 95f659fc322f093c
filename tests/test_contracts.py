"""Argument checks: every parameter of every tracking call, and the global switch."""

from __future__ import annotations

import math
from typing import Any

import pytest

from snowplow_tracker import (
    ContractError,
    Emitter,
    InvalidTypeError,
    InvalidValueError,
    SnowplowError,
    Tracker,
    contracts_enabled,
    disable_contracts,
    enable_contracts,
)

from .conftest import ListEmitter

LINK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
GOOD_CTX = [{"schema": LINK, "data": {"targetUrl": "http://a"}}]

VALID: dict[str, dict[str, Any]] = {
    "track_page_view": {"page_url": "http://x", "page_title": "t", "referrer": "http://r"},
    "track_struct_event": {
        "category": "c",
        "action": "a",
        "label": "l",
        "property_": "p",
        "value": 1,
    },
    "track_unstruct_event": {"event_json": {"schema": LINK, "data": {"targetUrl": "http://a"}}},
    "track_screen_view": {"name": "n", "id_": "i"},
    "track_ecommerce_transaction": {
        "order_id": "o",
        "total_value": 1,
        "affiliation": "a",
        "tax_value": 1,
        "shipping": 1,
        "city": "c",
        "state": "s",
        "country": "c",
        "currency": "USD",
        "items": [{"sku": "s", "price": 1, "quantity": 1}],
    },
    "track_ecommerce_transaction_item": {
        "order_id": "o",
        "sku": "s",
        "price": 1,
        "quantity": 1,
        "name": "n",
        "category": "c",
        "currency": "USD",
    },
}

T, V = InvalidTypeError, InvalidValueError
BAD: list[tuple[str, str, Any, type[Exception]]] = [
    ("track_page_view", "page_url", None, T),
    ("track_page_view", "page_url", "", V),
    ("track_page_view", "page_url", 1, T),
    ("track_page_view", "page_title", 1, T),
    ("track_page_view", "referrer", ["r"], T),
    ("track_struct_event", "category", None, T),
    ("track_struct_event", "category", "", V),
    ("track_struct_event", "action", 3, T),
    ("track_struct_event", "label", 3, T),
    ("track_struct_event", "property_", 3, T),
    ("track_struct_event", "value", "13.99", T),
    ("track_struct_event", "value", True, T),
    ("track_struct_event", "value", math.nan, V),
    ("track_struct_event", "value", math.inf, V),
    ("track_unstruct_event", "event_json", "json", T),
    ("track_unstruct_event", "event_json", {"data": {}}, V),
    ("track_unstruct_event", "event_json", {"schema": "com.acme/x", "data": {}}, V),
    ("track_unstruct_event", "event_json", {"schema": LINK}, V),
    ("track_unstruct_event", "event_json", {"schema": LINK, "data": {}, "x": 1}, V),
    ("track_unstruct_event", "event_json", {"schema": LINK, "data": [1]}, T),
    ("track_screen_view", "name", 5, T),
    ("track_screen_view", "id_", 5, T),
    ("track_ecommerce_transaction", "order_id", 5, T),
    ("track_ecommerce_transaction", "total_value", "35", T),
    ("track_ecommerce_transaction", "affiliation", 5, T),
    ("track_ecommerce_transaction", "tax_value", "1", T),
    ("track_ecommerce_transaction", "shipping", "1", T),
    ("track_ecommerce_transaction", "city", 5, T),
    ("track_ecommerce_transaction", "state", 5, T),
    ("track_ecommerce_transaction", "country", 5, T),
    ("track_ecommerce_transaction", "currency", 5, T),
    ("track_ecommerce_transaction", "items", ["sku"], T),
    ("track_ecommerce_transaction", "items", [{"sku": "s", "price": 1}], V),
    ("track_ecommerce_transaction", "items", [{"sku": "s", "price": 1, "quantity": 1, "x": 1}], V),
    ("track_ecommerce_transaction_item", "order_id", "", V),
    ("track_ecommerce_transaction_item", "sku", None, T),
    ("track_ecommerce_transaction_item", "price", "7.99", T),
    ("track_ecommerce_transaction_item", "quantity", 1.5, T),
    ("track_ecommerce_transaction_item", "name", 1, T),
    ("track_ecommerce_transaction_item", "category", 1, T),
    ("track_ecommerce_transaction_item", "currency", 1, T),
]
for _method in VALID:
    BAD += [
        (_method, "context", {"schema": LINK, "data": {}}, T),
        (_method, "context", [{"schema": "bad", "data": {}}], V),
        (_method, "context", ["x"], T),
        (_method, "tstamp", "now", T),
    ]


def call(method: str, name: str, value: Any) -> Tracker:
    kwargs = {**VALID[method], name: value}
    return getattr(Tracker(ListEmitter()), method)(**kwargs)  # type: ignore[no-any-return]


@pytest.mark.parametrize("method", sorted(VALID))
def test_valid_calls_pass(method: str) -> None:
    assert isinstance(call(method, "context", GOOD_CTX), Tracker)


@pytest.mark.parametrize(("method", "name", "value", "error"), BAD)
def test_bad_input_raises_a_clear_error_naming_call_and_parameter(
    method: str, name: str, value: Any, error: type[Exception]
) -> None:
    with pytest.raises(error) as info:
        call(method, name, value)
    message = str(info.value)
    assert message.startswith(method + "()")
    assert name.split("_")[0] in message
    assert isinstance(info.value, ContractError) and isinstance(info.value, SnowplowError)


@pytest.mark.parametrize("method", sorted(VALID))
def test_an_empty_context_list_means_no_context(method: str) -> None:
    # 1.x code passes context=[] (its events default to it); 0.5.0 refused it.
    sink = ListEmitter()
    getattr(Tracker(sink), method)(**{**VALID[method], "context": []})
    assert sink.events and not any("cx" in event for event in sink.events)


def test_screen_view_needs_a_name_or_an_id() -> None:
    with pytest.raises(InvalidValueError, match="name or id_"):
        Tracker(ListEmitter()).track_screen_view()


def test_errors_keep_builtin_meanings() -> None:
    assert issubclass(InvalidTypeError, TypeError)
    assert issubclass(InvalidValueError, ValueError)
    with pytest.raises(ValueError, match="page_url"):
        Tracker(ListEmitter()).track_page_view("")


@pytest.mark.parametrize(
    ("method", "name", "value"),
    [(m, n, v) for m, n, v, _ in BAD if not (n == "event_json" and not isinstance(v, dict))],
)
def test_disable_contracts_really_skips_the_checks(method: str, name: str, value: Any) -> None:
    disable_contracts()
    assert not contracts_enabled()
    try:
        call(method, name, value)
    except ContractError:  # pragma: no cover - the assertion below explains
        pytest.fail("a contract check ran while contracts were disabled")
    except (KeyError, TypeError, ValueError, AttributeError):
        pass  # the input is still wrong; what matters is that no check rejected it first


def test_enable_contracts_turns_them_back_on() -> None:
    disable_contracts()
    Tracker(ListEmitter()).track_page_view(1)  # type: ignore[arg-type]
    enable_contracts()
    assert contracts_enabled()
    with pytest.raises(InvalidTypeError):
        Tracker(ListEmitter()).track_page_view(1)  # type: ignore[arg-type]


EMITTER_BAD: list[tuple[dict[str, Any], type[Exception], str]] = [
    ({"endpoint": ""}, V, "endpoint"),
    ({"endpoint": None}, T, "endpoint"),
    ({"endpoint": "a b"}, V, "endpoint"),
    ({"protocol": "ftp"}, V, "protocol"),
    ({"port": "80"}, T, "port"),
    ({"port": 0}, V, "port"),
    ({"port": 70000}, V, "port"),
    ({"method": "put"}, V, "method"),
    ({"buffer_size": 0}, V, "buffer_size"),
    ({"buffer_size": "1"}, T, "buffer_size"),
    ({"on_success": 1}, T, "on_success"),
    ({"on_failure": "x"}, T, "on_failure"),
    ({"byte_limit": 0}, V, "byte_limit"),
]


@pytest.mark.parametrize(("kwargs", "error", "name"), EMITTER_BAD)
def test_bad_emitter_arguments(kwargs: dict[str, Any], error: type[Exception], name: str) -> None:
    arguments = {"endpoint": "localhost", **kwargs}
    with pytest.raises(error, match=name):
        Emitter(**arguments)
