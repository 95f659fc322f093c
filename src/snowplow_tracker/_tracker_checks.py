"""What the Tracker checks and calls besides building events: its arguments, the text of a
finished event, and the emitters' flush methods."""

from __future__ import annotations

import time
from typing import Any

from . import contracts
from .contracts import fail_type, fail_value
from .subject import Subject
from .typing import EmitterLike

#: The keys an item of ``track_ecommerce_transaction`` may have.
ITEM_KEYS = frozenset({"sku", "price", "quantity", "name", "category", "currency", "context"})


def call_if_present(obj: object, name: str, deadline: float | None = None) -> bool:
    """Call ``obj.name()`` if it exists; with a deadline, pass what is left of it as
    ``timeout`` where the method takes one (emitters of your own may not)."""
    method = getattr(obj, name, None)
    if not callable(method):
        return False
    if deadline is not None and takes_timeout(method):
        method(timeout=max(0.0, deadline - time.monotonic()))
    else:
        method()
    return True


def takes_timeout(method: Any) -> bool:
    import inspect  # only here: it is slow to import, and only a flush with a timeout needs it

    try:
        return "timeout" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # no signature to read (a builtin, a C extension)
        return False


def check_emitter(where: str, name: str, value: object) -> None:
    if isinstance(value, type) or not callable(getattr(value, "input", None)):
        fail_type(where, name, "an emitter (an object with an input(dict) method)", value)


def as_emitter_list(emitters: Any) -> list[EmitterLike]:
    if isinstance(emitters, (list, tuple)):
        return list(emitters)
    return [emitters]


def check_init(
    emitters: Any, subject: Any, namespace: Any, app_id: Any, encode_base64: Any, encoder: Any
) -> None:
    where = "Tracker()"
    if isinstance(emitters, (list, tuple)):
        if not emitters:
            fail_value(where, "emitters", "a non-empty list of emitters", emitters)
        for index, emitter in enumerate(emitters):
            check_emitter(where, f"emitters[{index}]", emitter)
    else:
        check_emitter(where, "emitters", emitters)
    if subject is not None and not isinstance(subject, Subject):
        fail_type(where, "subject", "a Subject or None", subject)
    contracts.optional_string(where, "namespace", namespace)
    contracts.optional_string(where, "app_id", app_id)
    if not isinstance(encode_base64, bool):
        fail_type(where, "encode_base64", "a bool", encode_base64)
    contracts.optional_callable(where, "json_encoder", encoder)


def check_items(items: list[Any]) -> None:
    where = "track_ecommerce_transaction()"
    for index, item in enumerate(items):
        contracts.mapping(where, f"items[{index}]", item)
        unknown = set(item) - ITEM_KEYS
        if unknown:
            fail_value(where, f"items[{index}]", f"keys from {sorted(ITEM_KEYS)}", sorted(unknown))
        for key in ("sku", "price", "quantity"):
            if key not in item:
                fail_value(where, f"items[{index}]", f"a dict with {key!r}", item)
