"""1.x module path of :class:`PagePing`."""

from .page_view import PagePing

__all__ = ["PagePing"]
