"""The web events of the 1.x ``track_*`` methods as self-describing event classes:
link clicks, cart changes, form changes and submissions, site searches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .. import contracts
from ..constants import BASE_SCHEMA_PATH, SCHEMA_TAG
from ..self_describing_json import SelfDescribingJson
from ..subject import Subject
from ..typing import FORM_NODE_NAMES, FORM_TYPES
from .event import Context, Timestamp
from .self_describing import SelfDescribing

LINK_CLICK_SCHEMA = f"{BASE_SCHEMA_PATH}/link_click/{SCHEMA_TAG}/1-0-1"
ADD_TO_CART_SCHEMA = f"{BASE_SCHEMA_PATH}/add_to_cart/{SCHEMA_TAG}/1-0-0"
REMOVE_FROM_CART_SCHEMA = f"{BASE_SCHEMA_PATH}/remove_from_cart/{SCHEMA_TAG}/1-0-0"
CHANGE_FORM_SCHEMA = f"{BASE_SCHEMA_PATH}/change_form/{SCHEMA_TAG}/1-0-0"
SUBMIT_FORM_SCHEMA = f"{BASE_SCHEMA_PATH}/submit_form/{SCHEMA_TAG}/1-0-0"
SITE_SEARCH_SCHEMA = f"{BASE_SCHEMA_PATH}/site_search/{SCHEMA_TAG}/1-0-0"


def _present(**fields: Any) -> dict[str, Any]:
    """The schema properties that were given (``None`` leaves a property out)."""
    return {name: value for name, value in fields.items() if value is not None}


def _optional_strings(where: str, **values: object) -> None:
    for name, value in values.items():
        contracts.optional_string(where, name, value)


def _classes(where: str, name: str, value: object) -> None:
    if value is not None and (
        not isinstance(value, (list, tuple)) or not all(isinstance(c, str) for c in value)
    ):
        contracts.fail_type(where, name, "a list of strings or None", value)


class _Schema(SelfDescribing):
    """A self-describing event of one fixed schema, built from named properties."""

    schema = ""

    def __init__(
        self,
        data: dict[str, Any],
        event_subject: Subject | None,
        context: Context,
        true_timestamp: Timestamp,
    ) -> None:
        event_json = SelfDescribingJson(self.schema, data)
        super().__init__(event_json, event_subject, context, true_timestamp)


class LinkClick(_Schema):
    """A click on a link (link_click 1-0-1): ``target_url`` and optional element details."""

    schema = LINK_CLICK_SCHEMA

    def __init__(
        self,
        target_url: str,
        element_id: str | None = None,
        element_classes: Sequence[str] | None = None,
        element_target: str | None = None,
        element_content: str | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if contracts._enabled:
            contracts.non_empty_string("LinkClick()", "target_url", target_url)
            _optional_strings(
                "LinkClick()",
                element_id=element_id,
                element_target=element_target,
                element_content=element_content,
            )
            _classes("LinkClick()", "element_classes", element_classes)
        data = _present(
            targetUrl=target_url,
            elementId=element_id,
            elementClasses=element_classes,
            elementTarget=element_target,
            elementContent=element_content,
        )
        super().__init__(data, event_subject, context, true_timestamp)


class AddToCart(_Schema):
    """Items added to a cart (add_to_cart 1-0-0)."""

    schema = ADD_TO_CART_SCHEMA

    def __init__(
        self,
        sku: str,
        quantity: int,
        name: str | None = None,
        category: str | None = None,
        unit_price: int | float | None = None,
        currency: str | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        where = f"{type(self).__name__}()"
        if contracts._enabled:
            contracts.non_empty_string(where, "sku", sku)
            contracts.integer(where, "quantity", quantity)
            _optional_strings(where, name=name, category=category, currency=currency)
            contracts.number(where, "unit_price", unit_price, optional=True)
        data = _present(
            sku=sku,
            quantity=quantity,
            name=name,
            category=category,
            unitPrice=unit_price,
            currency=currency,
        )
        super().__init__(data, event_subject, context, true_timestamp)


class RemoveFromCart(AddToCart):
    """Items removed from a cart (remove_from_cart 1-0-0)."""

    schema = REMOVE_FROM_CART_SCHEMA


class FormChange(_Schema):
    """A change to a form field (change_form 1-0-0)."""

    schema = CHANGE_FORM_SCHEMA

    def __init__(
        self,
        form_id: str,
        element_id: str | None,
        node_name: str,
        value: str | None,
        type_: str | None = None,
        element_classes: Sequence[str] | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if contracts._enabled:
            where = "FormChange()"
            contracts.non_empty_string(where, "form_id", form_id)
            _optional_strings(where, element_id=element_id, value=value)
            contracts.one_of(where, "node_name", node_name, FORM_NODE_NAMES)
            if type_ is not None:
                contracts.one_of(where, "type_", str(type_).lower(), FORM_TYPES)
            _classes(where, "element_classes", element_classes)
        # elementId and value are required by the schema, and may be null.
        data = {"formId": form_id, "elementId": element_id, "nodeName": node_name, "value": value}
        data.update(_present(type=type_, elementClasses=element_classes))
        super().__init__(data, event_subject, context, true_timestamp)


class FormSubmit(_Schema):
    """A form submission (submit_form 1-0-0), with its elements if given."""

    schema = SUBMIT_FORM_SCHEMA

    def __init__(
        self,
        form_id: str,
        form_classes: Sequence[str] | None = None,
        elements: Sequence[Mapping[str, Any]] | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if contracts._enabled:
            contracts.non_empty_string("FormSubmit()", "form_id", form_id)
            _classes("FormSubmit()", "form_classes", form_classes)
            for index, element in enumerate(elements or []):
                contracts.form_element(element, "FormSubmit()", f"elements[{index}]")
        data = _present(formId=form_id, formClasses=form_classes, elements=elements or None)
        super().__init__(data, event_subject, context, true_timestamp)


class SiteSearch(_Schema):
    """A search on the site (site_search 1-0-0): its terms, filters and result counts."""

    schema = SITE_SEARCH_SCHEMA

    def __init__(
        self,
        terms: Sequence[str],
        filters: Mapping[str, str | bool] | None = None,
        total_results: int | None = None,
        page_results: int | None = None,
        event_subject: Subject | None = None,
        context: Context = None,
        true_timestamp: Timestamp = None,
    ) -> None:
        if contracts._enabled:
            where = "SiteSearch()"
            if isinstance(terms, str) or not isinstance(terms, Sequence):
                contracts.fail_type(where, "terms", "a list of strings", terms)
            if not terms:
                contracts.fail_value(where, "terms", "a non-empty list of strings", terms)
            if filters is not None:
                contracts.mapping(where, "filters", filters)
            for name, value in (("total_results", total_results), ("page_results", page_results)):
                if value is not None:
                    contracts.integer(where, name, value, minimum=0)
        data = _present(
            terms=terms, filters=filters, totalResults=total_results, pageResults=page_results
        )
        super().__init__(data, event_subject, context, true_timestamp)


__all__ = [
    "AddToCart",
    "FormChange",
    "FormSubmit",
    "LinkClick",
    "RemoveFromCart",
    "SiteSearch",
]
