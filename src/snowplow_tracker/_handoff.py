"""How a Tracker hands events to this package's own emitters without copying them.

``Emitter.input(payload)`` accepts any mapping and makes a dict of strings of
it (``stringify``), as 0.5.0 did. A Tracker builds a fresh dict per event, so
for the emitters registered here it converts the few non-string values in
place and calls ``emitter._input_strings(event)`` instead, which keeps the
dict as it is. An emitter whose ``input`` was replaced (a subclass that
overrides it, a test double patched onto the instance) is not registered and
gets ``input`` as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

#: The ``input`` functions of emitter classes that also have ``_input_strings``.
STRING_INPUTS: set[Callable[..., Any]] = set()

_Class = TypeVar("_Class", bound=type)


def takes_strings(cls: _Class) -> _Class:
    """Register ``cls.input``: its ``_input_strings(event)`` takes a fresh dict of strings."""
    STRING_INPUTS.add(vars(cls)["input"])  # the class's own input, not an inherited one
    return cls


def all_take_strings(emitters: list[Any]) -> bool:
    """Whether every emitter takes fresh string dicts (see the module docstring).

    The Tracker makes the same check inline for its usual single emitter.
    """
    return all(getattr(emitter.input, "__func__", None) in STRING_INPUTS for emitter in emitters)
