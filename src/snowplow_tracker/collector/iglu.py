"""An offline Iglu resolver: schema URIs to JSON Schema validators, from local directories.

Directories use the Iglu layout ``<vendor>/<name>/<format>/<version>`` (files
without an extension). The Iglu Central schemas bundled with the package are
always searched last, so a user directory can add or override schemas.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft4Validator, FormatChecker

BUNDLED_SCHEMAS = Path(__file__).parent / "schemas"
_URI = re.compile(
    r"^iglu:(?P<vendor>[a-zA-Z0-9_.-]+)/(?P<name>[a-zA-Z0-9_-]+)/(?P<format>[a-zA-Z0-9_-]+)/"
    r"(?P<version>[1-9][0-9]*-(?:0|[1-9][0-9]*)-(?:0|[1-9][0-9]*))$"
)

_format_checker = FormatChecker()


@_format_checker.checks("uuid", raises=ValueError)
def _is_uuid(value: object) -> bool:
    # python-jsonschema's Draft 4 checker has no uuid format; Iglu schemas use it.
    if not isinstance(value, str):
        return True
    return str(uuid.UUID(value)) == value.lower()


@dataclass(frozen=True)
class SchemaKey:
    vendor: str
    name: str
    format: str
    version: str

    @classmethod
    def parse(cls, uri: str) -> SchemaKey:
        match = _URI.match(uri) if isinstance(uri, str) else None
        if match is None:
            raise ValueError(f"not an Iglu schema URI: {uri!r}")
        return cls(**match.groupdict())

    @property
    def model(self) -> str:
        return self.version.split("-", 1)[0]

    def path(self) -> str:
        return f"{self.vendor}/{self.name}/{self.format}/{self.version}"

    def uri(self) -> str:
        return "iglu:" + self.path()


class SchemaNotFound(LookupError):
    """No directory holds the schema."""


class Resolver:
    """Finds and caches schemas; thread-safe."""

    def __init__(self, directories: Iterable[str | Path] = ()) -> None:
        self.directories = [Path(d) for d in directories] + [BUNDLED_SCHEMAS]
        self._cache: dict[SchemaKey, Draft4Validator] = {}
        self._lock = threading.Lock()

    def schema(self, key: SchemaKey) -> dict[str, Any]:
        for directory in self.directories:
            candidate = directory / key.path()
            if candidate.is_file():
                loaded: dict[str, Any] = json.loads(candidate.read_text(encoding="utf-8"))
                return loaded
        raise SchemaNotFound(f"schema {key.uri()} not found in {len(self.directories)} location(s)")

    def validator(self, key: SchemaKey) -> Draft4Validator:
        with self._lock:
            validator = self._cache.get(key)
        if validator is None:
            validator = Draft4Validator(self.schema(key), format_checker=_format_checker)
            with self._lock:
                self._cache[key] = validator
        return validator

    def errors(self, uri: str, instance: Any) -> list[str]:
        """Validation messages for ``instance`` against ``uri`` (empty when valid)."""
        validator = self.validator(SchemaKey.parse(uri))
        return [_message(error) for error in validator.iter_errors(instance)]


def _message(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where or '$'}: {error.message}"
