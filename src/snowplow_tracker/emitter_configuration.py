"""1.x module path of :class:`EmitterConfiguration`."""

from .configuration import EmitterConfiguration

__all__ = ["EmitterConfiguration"]
