"""Small immutable value classes without :mod:`dataclasses`.

``import dataclasses`` (and the ``inspect`` it pulls in) and building each
dataclass cost about a tenth of ``import snowplow_tracker``; these few value
types need only a constructor, a ``repr``, equality and immutability.
"""

from __future__ import annotations

from typing import Any


class FrozenError(AttributeError):
    """Raised on an attempt to change a field of an immutable value."""


class Value:
    """Fields in ``__slots__``; ``repr``, ``==`` and ``hash`` over them; no assignment."""

    __slots__: tuple[str, ...] = ()

    def _init(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setattr__(self, name: str, value: Any) -> None:
        raise FrozenError(f"cannot assign to field {name!r} of {type(self).__name__}")

    def __delattr__(self, name: str) -> None:
        raise FrozenError(f"cannot delete field {name!r} of {type(self).__name__}")

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())
