"""Where schemas come from: a directory in Iglu layout, or a remote registry over HTTP."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .._redact import basic_auth, redact_url
from .iglu_keys import SchemaKey

# Seconds a lookup itself waits for each network step: longer, so that a slow registry's
# answer still comes in and is cached for the events after the one that could not wait.
FETCH_TIMEOUT = 10.0
MAX_SCHEMA_BYTES = 1_048_576


class Repository:
    """Where schemas come from: a directory in Iglu layout, or a remote registry."""

    name: str

    def fetch(self, key: SchemaKey) -> dict[str, Any] | None:  # pragma: no cover - abstract
        raise NotImplementedError


class DirectoryRepository(Repository):
    def __init__(self, directory: str | Path, name: str | None = None) -> None:
        self.directory = Path(directory)
        self.name = name or str(self.directory)

    def fetch(self, key: SchemaKey) -> dict[str, Any] | None:
        candidate = self.directory / key.path()
        # Keys are checked when made; this keeps a file outside the directory out even so.
        # Lexical, so a symlink the user put inside the directory still works.
        root = os.path.normpath(self.directory)
        if os.path.commonpath([root, os.path.normpath(candidate)]) != root:
            return None
        if not candidate.is_file():
            return None
        loaded = json.loads(candidate.read_text(encoding="utf-8"))
        return loaded if isinstance(loaded, dict) else None


class HttpRepository(Repository):
    """A remote registry (opt-in): ``GET <base>/<vendor>/<name>/<format>/<version>``.

    For an Iglu Server pass ``http://host/api/schemas``; for Iglu Central
    ``http://iglucentral.com/schemas``; for another local collector ``<url>/micro/iglu``.

    ``user:password@`` in the URL is sent as Basic authentication and never shown:
    the repository's ``name`` (in bad rows and logs) has it redacted.
    """

    def __init__(
        self, base_url: str, *, api_key: str | None = None, timeout: float = FETCH_TIMEOUT
    ) -> None:
        self.base_url, self.authorization = basic_auth(base_url.rstrip("/"))
        self.name = redact_url(base_url.rstrip("/"))
        self.api_key = api_key
        self.timeout = timeout

    def fetch(self, key: SchemaKey) -> dict[str, Any] | None:
        request = urllib.request.Request(f"{self.base_url}/{key.path()}")
        if self.api_key:
            request.add_header("apikey", self.api_key)
        if self.authorization:
            request.add_header("Authorization", self.authorization)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                loaded = json.loads(response.read(MAX_SCHEMA_BYTES))
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return loaded if isinstance(loaded, dict) else None
