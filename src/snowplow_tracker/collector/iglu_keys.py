"""Iglu schema keys, checked when made so that every part is safe in a path or a URL,
and the lookup outcomes a resolver raises."""

from __future__ import annotations

import concurrent.futures
import re
from dataclasses import dataclass
from typing import Any

# A vendor may hold dots but not start with one: "." and ".." would name other directories.
_URI = re.compile(
    r"^iglu:(?P<vendor>[a-zA-Z0-9_-][a-zA-Z0-9_.-]*)/(?P<name>[a-zA-Z0-9_-]+)/(?P<format>[a-zA-Z0-9_-]+)/"
    r"(?P<version>[1-9][0-9]*-(?:0|[1-9][0-9]*)-(?:0|[1-9][0-9]*))$"
)


@dataclass(frozen=True)
class SchemaKey:
    vendor: str
    name: str
    format: str
    version: str

    def __post_init__(self) -> None:
        # Whoever builds a key, its parts are safe to join into a path or a URL.
        parts = (self.vendor, self.name, self.format, self.version)
        if not all(isinstance(p, str) for p in parts) or _URI.match(self.uri()) is None:
            raise ValueError(f"not an Iglu schema key: {'/'.join(map(str, parts))[:200]!r}")

    @classmethod
    def parse(cls, uri: object) -> SchemaKey:
        match = _URI.match(uri) if isinstance(uri, str) else None
        if match is None:
            raise ValueError(f"not an Iglu schema URI: {str(uri)[:200]!r}")
        return cls(**match.groupdict())

    @property
    def model(self) -> str:
        return self.version.split("-", 1)[0]

    def path(self) -> str:
        return f"{self.vendor}/{self.name}/{self.format}/{self.version}"

    def uri(self) -> str:
        return "iglu:" + self.path()


class SchemaNotFound(LookupError):
    """No repository holds the schema; ``lookup_history`` says where we looked.

    ``timed_out``: a registry did not answer in time (the lookup may still succeed later).
    """

    def __init__(
        self, key: SchemaKey, lookup_history: list[dict[str, Any]], *, timed_out: bool = False
    ) -> None:
        found = "could not be resolved in time" if timed_out else "not found"
        super().__init__(f"schema {key.uri()} {found} in {len(lookup_history)} repositories")
        self.key = key
        self.lookup_history = lookup_history
        self.timed_out = timed_out


class SchemaPending(Exception):
    """A remote lookup is under way; retry once ``future`` is done or ``deadline`` has passed.

    Raised only inside ``Resolver.deferring()``, before anything was stored, so
    the caller can await ``future`` off the event loop's critical path and run
    the same validation again.
    """

    def __init__(self, key: SchemaKey, future: concurrent.futures.Future[None]) -> None:
        super().__init__(f"schema {key.uri()} is being looked up")
        self.key = key
        self.future = future
