"""An offline-first Iglu resolver: schema URIs to compiled JSON Schema validators.

Schemas are looked up, in order, in the user's directories (Iglu layout
``<vendor>/<name>/<format>/<version>``, files without an extension), then in the
Iglu Central schemas bundled with the package, then, only if the user asked for
it, in remote registries. Found schemas and misses are cached (bounded), so a
flood of unknown schema URIs costs neither memory nor disk reads.

Every part of a schema key is checked before it names a file or a URL (no ``..``
vendor), and a remote lookup runs on a thread of its own, a bounded number at a
time, so the collector's event loop never waits on a registry: it awaits
``SchemaPending`` (see ``Resolver.deferring``) until the answer or its deadline.

Validation follows the Iglu clients: JSON Schema Draft 4, with ``format`` checks
(``uuid`` included, which Draft 4 validators lack). A compiled fast path
(fastjsonschema) answers "valid" for the common case; only invalid data pays for
jsonschema's complete error report.

The parts live beside this module: ``iglu_keys`` (schema keys and lookup outcomes),
``iglu_compiled`` (formats and compiled schemas), ``iglu_repositories`` (where schemas
come from). Every name is importable from here as before.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Generic, TypeVar

from jsonschema import Draft4Validator

from .._redact import redact_url
from .iglu_compiled import FORMATS, CompiledSchema, DataReport
from .iglu_keys import SchemaKey, SchemaNotFound, SchemaPending
from .iglu_repositories import (
    FETCH_TIMEOUT,
    MAX_SCHEMA_BYTES,
    DirectoryRepository,
    HttpRepository,
    Repository,
)

__all__ = [
    "BUNDLED_NAME",
    "BUNDLED_SCHEMAS",
    "CACHE_SIZE",
    "FETCH_TIMEOUT",
    "FORMATS",
    "LOOKUP_TIMEOUT",
    "MAX_LOOKUPS",
    "MAX_SCHEMA_BYTES",
    "CompiledSchema",
    "DataReport",
    "DirectoryRepository",
    "HttpRepository",
    "Repository",
    "Resolver",
    "SchemaKey",
    "SchemaNotFound",
    "SchemaPending",
]

BUNDLED_SCHEMAS = Path(__file__).parent / "schemas"
BUNDLED_NAME = "Iglu Central (bundled)"
CACHE_SIZE = 500
LOOKUP_TIMEOUT = 3.0  # seconds a request waits for a remote registry
MAX_LOOKUPS = 8  # remote lookups in flight at once
_BUSY = "too many lookups in flight"


K = TypeVar("K")
V = TypeVar("V")


class _LRU(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()


# Set by Resolver.deferring(): the monotonic time until which a remote lookup is awaited.
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "snowplow_iglu_deadline", default=None
)


@dataclass
class _Lookup:
    """A remote lookup under way on its own thread."""

    future: concurrent.futures.Future[None]
    local_history: list[dict[str, Any]]
    deadline: float  # for callers outside deferring(): when they stop waiting


class Resolver:
    """Finds, compiles and caches schemas; thread-safe.

    ``directories`` come first, then the bundled Iglu Central copy, then
    ``registries`` (URLs or Repository objects), which are only asked when given.
    A miss is remembered for ``miss_ttl`` seconds.

    Registries are asked on threads of their own, at most ``max_lookups`` keys at
    a time (beyond that a key is reported as not found, uncached); a caller waits
    at most ``lookup_timeout`` seconds for one, then the key is reported as not
    resolved in time while the lookup goes on and caches what it finds.
    """

    def __init__(
        self,
        directories: Iterable[str | Path] = (),
        registries: Iterable[str | Repository] = (),
        *,
        cache_size: int = CACHE_SIZE,
        miss_ttl: float = 60.0,
        lookup_timeout: float = LOOKUP_TIMEOUT,
        max_lookups: int = MAX_LOOKUPS,
    ) -> None:
        self.local: list[Repository] = [DirectoryRepository(d) for d in directories]
        self.local.append(DirectoryRepository(BUNDLED_SCHEMAS, BUNDLED_NAME))
        self.remote: list[Repository] = [
            r
            if isinstance(r, Repository)
            else HttpRepository(r, timeout=max(lookup_timeout, FETCH_TIMEOUT))
            for r in registries
        ]
        self.miss_ttl = miss_ttl
        self.lookup_timeout = lookup_timeout
        self.max_lookups = max_lookups
        self._compiled: _LRU[SchemaKey, CompiledSchema] = _LRU(cache_size)
        self._misses: _LRU[SchemaKey, tuple[float, list[dict[str, Any]]]] = _LRU(cache_size)
        self._by_uri: dict[str, CompiledSchema] = {}
        self._lookups: dict[SchemaKey, _Lookup] = {}
        #: Results of decoding and validating identical field values (see entities.py).
        self.memo: dict[Any, Any] = {}
        self._lock = threading.RLock()

    @property
    def repositories(self) -> list[Repository]:
        return [*self.local, *self.remote]

    @property
    def directories(self) -> list[Path]:
        return [r.directory for r in self.local if isinstance(r, DirectoryRepository)]

    @contextlib.contextmanager
    def deferring(self, deadline: float | None = None) -> Iterator[float]:
        """Within it, a key being looked up remotely raises ``SchemaPending`` instead of waiting.

        For code on an event loop: it waits for the pending future without blocking
        the loop and runs again, inside again. Once ``deadline`` (``time.monotonic()``;
        default: ``lookup_timeout`` from now; yielded) has passed, a key not yet
        resolved is reported as not resolved in time.
        """
        if deadline is None:
            deadline = time.monotonic() + self.lookup_timeout
        token = _deadline.set(deadline)
        try:
            yield deadline
        finally:
            _deadline.reset(token)

    def schema(self, key: SchemaKey) -> dict[str, Any]:
        """The schema JSON; raises SchemaNotFound."""
        return self.compiled(key).schema

    def compiled(self, key: SchemaKey) -> CompiledSchema:
        with self._lock:
            compiled = self._compiled.get(key)
            if compiled is not None:
                return compiled
            miss = self._misses.get(key)
            if miss is not None and time.monotonic() - miss[0] < self.miss_ttl:
                raise SchemaNotFound(key, miss[1], timed_out=_late(miss[1]))
            lookup = self._lookups.get(key)
            if lookup is None:
                history = self._local_history(key)
                if isinstance(history, CompiledSchema):
                    return history
                if not self.remote:
                    self._misses.put(key, (time.monotonic(), history))
                    raise SchemaNotFound(key, history)
                lookup = self._start_lookup(key, history)
        return self._await(key, lookup)

    def _local_history(self, key: SchemaKey) -> CompiledSchema | list[dict[str, Any]]:
        """The compiled schema from a local repository (cached), else where it was not found."""
        history: list[dict[str, Any]] = []
        for repository in self.local:
            found = _ask(repository, key, history)
            if found is not None:
                self._compiled.put(key, found)
                return found
        return history

    def _start_lookup(self, key: SchemaKey, history: list[dict[str, Any]]) -> _Lookup:
        if len(self._lookups) >= self.max_lookups:
            busy = [_history(r, {"error": "RepoFailure", "message": _BUSY}) for r in self.remote]
            raise SchemaNotFound(key, history + busy, timed_out=True)
        future: concurrent.futures.Future[None] = concurrent.futures.Future()
        lookup = _Lookup(future, history, time.monotonic() + self.lookup_timeout)
        self._lookups[key] = lookup
        thread = threading.Thread(
            target=self._remote_lookup, args=(key, lookup), name="iglu-lookup", daemon=True
        )
        thread.start()
        return lookup

    def _remote_lookup(self, key: SchemaKey, lookup: _Lookup) -> None:
        """On its own thread: ask each registry, cache the schema or the miss, wake waiters."""
        history = list(lookup.local_history)
        found = None
        try:
            for repository in self.remote:
                found = _ask(repository, key, history, getattr(repository, "timeout", 0.0))
                if found is not None:
                    break
        finally:
            with self._lock:
                if found is not None:
                    self._compiled.put(key, found)
                    self.memo.clear()  # it may hold this key's "not resolved in time"
                else:
                    self._misses.put(key, (time.monotonic(), history))
                del self._lookups[key]
            lookup.future.set_result(None)

    def _await(self, key: SchemaKey, lookup: _Lookup) -> CompiledSchema:
        deadline = _deadline.get()
        if not lookup.future.done():
            if deadline is not None and time.monotonic() < deadline:
                raise SchemaPending(key, lookup.future)
            if deadline is None:
                with contextlib.suppress(concurrent.futures.TimeoutError):
                    lookup.future.result(max(0.0, lookup.deadline - time.monotonic()))
        if lookup.future.done():
            return self.compiled(key)  # cached now, as a schema or a miss
        waited = _no_answer(self.lookup_timeout)
        late = [_history(r, {"error": "RepoFailure", "message": waited}) for r in self.remote]
        raise SchemaNotFound(key, lookup.local_history + late, timed_out=True)

    def validator(self, key: SchemaKey) -> Draft4Validator:
        return self.compiled(key)._full

    def reports(self, uri: str, instance: Any) -> list[DataReport]:
        """Reports for ``instance`` against ``uri``; raises SchemaNotFound or ValueError."""
        # The hot path: one dict lookup per validation once a schema is known.
        compiled = self._by_uri.get(uri)
        if compiled is None:
            compiled = self.compiled(SchemaKey.parse(uri))
            with self._lock:
                if len(self._by_uri) >= self._compiled.size:
                    self._by_uri.clear()
                self._by_uri[uri] = compiled
        return compiled.reports(instance)

    def errors(self, uri: str, instance: Any) -> list[str]:
        """Validation messages for ``instance`` against ``uri`` (empty when valid)."""
        return [str(report) for report in self.reports(uri, instance)]

    def clear(self) -> None:
        with self._lock:
            self._by_uri.clear()
            self.memo.clear()
            self._compiled.clear()
            self._misses.clear()


def _ask(
    repository: Repository, key: SchemaKey, history: list[dict[str, Any]], timeout: float = 0.0
) -> CompiledSchema | None:
    """The compiled schema if ``repository`` has it; else notes why not in ``history``."""
    try:
        schema = repository.fetch(key)
        if schema is not None:
            return CompiledSchema(key, schema)
    except Exception as exc:  # a repository's failure is a lookup's result, never a crash
        # socket.timeout is no TimeoutError before Python 3.10; urllib wraps it in .reason.
        late = isinstance(exc, socket.timeout) or isinstance(getattr(exc, "reason", None),
                                                             socket.timeout)  # fmt: skip
        message = _no_answer(timeout) if late else redact_url(str(exc))[:256]
        error = {"error": "RepoFailure", "message": message}
    else:
        error = {"error": "NotFound"}
    history.append(_history(repository, error))
    return None


def _no_answer(timeout: float) -> str:
    return f"no answer within {timeout:g} s"


def _late(history: list[dict[str, Any]]) -> bool:
    """True if a registry's answer was missing, not negative: the miss says "not in time"."""
    return any(
        e.get("message", "").startswith("no answer within") for h in history for e in h["errors"]
    )


def _history(repository: Repository, error: dict[str, Any]) -> dict[str, Any]:
    return {
        "repository": repository.name,
        "errors": [error],
        "attempts": 1,
        "lastAttempt": _now_iso(),
    }


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
