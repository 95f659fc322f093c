"""1.x module path of :class:`TrackerConfiguration`."""

from .configuration import TrackerConfiguration

__all__ = ["TrackerConfiguration"]
