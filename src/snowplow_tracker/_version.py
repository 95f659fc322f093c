"""The package version; ``tv`` on the wire is ``"py-" + __version__``."""

from __future__ import annotations

__version_info__ = (0, 6, 0)
__version__ = ".".join(str(part) for part in __version_info__)
