"""Ecommerce transactions (``e=tr``) and their items (``e=ti``), as 0.5.0 sends them."""

from __future__ import annotations

from .. import contracts
from ..subject import Subject
from .event import Context, Event, Timestamp


class EcommerceTransaction(Event):
    """A transaction (``e=tr``): ``order_id`` and ``total_value``, and optional
    affiliation, tax, shipping, city, state, country and currency. Its items are
    events of their own (:class:`EcommerceTransactionItem`) with the same order id;
    ``Tracker.track_ecommerce_transaction`` tracks both."""

    def __init__(
        self,
        order_id: str,
        total_value: int | float,
        affiliation: str | None = None,
        tax_value: int | float | None = None,
        shipping: int | float | None = None,
        city: str | None = None,
        state: str | None = None,
        country: str | None = None,
        currency: str | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if contracts._enabled:
            where = "EcommerceTransaction()"
            contracts.non_empty_string(where, "order_id", order_id)
            contracts.number(where, "total_value", total_value)
            contracts.optional_string(where, "affiliation", affiliation)
            contracts.number(where, "tax_value", tax_value, optional=True)
            contracts.number(where, "shipping", shipping, optional=True)
            for name, value in (("city", city), ("state", state), ("country", country)):
                contracts.optional_string(where, name, value)
            contracts.optional_string(where, "currency", currency)
        pairs = {
            "e": "tr",
            "tr_id": order_id,
            "tr_tt": total_value,
            "tr_af": affiliation,
            "tr_tx": tax_value,
            "tr_sh": shipping,
            "tr_ci": city,
            "tr_st": state,
            "tr_co": country,
            "tr_cu": currency,
        }
        self._setup(pairs, event_subject, context, true_timestamp)


class EcommerceTransactionItem(Event):
    """One line of a transaction (``e=ti``): ``order_id``, ``sku``, ``price`` and
    ``quantity``, and optional name, category and currency."""

    def __init__(
        self,
        order_id: str,
        sku: str,
        price: int | float,
        quantity: int,
        name: str | None = None,
        category: str | None = None,
        currency: str | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if contracts._enabled:
            where = "EcommerceTransactionItem()"
            contracts.non_empty_string(where, "order_id", order_id)
            contracts.non_empty_string(where, "sku", sku)
            contracts.number(where, "price", price)
            contracts.integer(where, "quantity", quantity)
            contracts.optional_string(where, "name", name)
            contracts.optional_string(where, "category", category)
            contracts.optional_string(where, "currency", currency)
        pairs = {
            "e": "ti",
            "ti_id": order_id,
            "ti_sk": sku,
            "ti_nm": name,
            "ti_ca": category,
            "ti_pr": price,
            "ti_qu": quantity,
            "ti_cu": currency,
        }
        self._setup(pairs, event_subject, context, true_timestamp)


__all__ = ["EcommerceTransaction", "EcommerceTransactionItem"]
