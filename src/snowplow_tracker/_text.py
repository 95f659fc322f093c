"""Text that can go on the wire: every value of an event must be encodable as UTF-8."""

from __future__ import annotations

from collections.abc import Mapping

from .contracts import fail_value


def check_utf8(name: str, value: str) -> None:
    """Refuse text that cannot go on the wire as UTF-8 (a lone surrogate, e.g. from
    ``json.loads('"\\\\udcff"')`` of client input), naming the field."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        fail_value(
            "input()",
            name,
            "text that can be sent as UTF-8 (no lone surrogate)",
            exc.object[exc.start : exc.end],
        )


def check_event_text(event: Mapping[str, str]) -> None:
    """:func:`check_utf8` for every value of an event whose values are strings."""
    for name, value in event.items():
        if not value.isascii():
            check_utf8(name, value)
