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
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import contextvars
import ipaddress
import json
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from pathlib import Path
from typing import Any, Generic, TypeVar

import fastjsonschema
from jsonschema import Draft4Validator, FormatChecker

from .._redact import basic_auth, redact_url

BUNDLED_SCHEMAS = Path(__file__).parent / "schemas"
BUNDLED_NAME = "Iglu Central (bundled)"
CACHE_SIZE = 500
LOOKUP_TIMEOUT = 3.0  # seconds a request waits for a remote registry
# Seconds a lookup itself waits for each network step: longer, so that a slow registry's
# answer still comes in and is cached for the events after the one that could not wait.
FETCH_TIMEOUT = 10.0
MAX_LOOKUPS = 8  # remote lookups in flight at once
MAX_SCHEMA_BYTES = 1_048_576
_BUSY = "too many lookups in flight"
# A vendor may hold dots but not start with one: "." and ".." would name other directories.
_URI = re.compile(
    r"^iglu:(?P<vendor>[a-zA-Z0-9_-][a-zA-Z0-9_.-]*)/(?P<name>[a-zA-Z0-9_-]+)/(?P<format>[a-zA-Z0-9_-]+)/"
    r"(?P<version>[1-9][0-9]*-(?:0|[1-9][0-9]*)-(?:0|[1-9][0-9]*))$"
)
_DRAFT4 = "http://json-schema.org/draft-04/schema#"


# -- formats ------------------------------------------------------------------------------------
# One set of format checks for both validators, so the fast path and the full
# report never disagree about a format.

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DATE_TIME = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:([0-5]\d|60)"
    r"(\.\d+)?([Zz]|[+-]([01]\d|2[0-3]):?[0-5]\d)$"
)
_URI_FORMAT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[^\s]*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$"
)


def _ip(version: int) -> Callable[[object], bool]:
    def check(value: object) -> bool:
        if not isinstance(value, str):
            return True
        try:
            return ipaddress.ip_address(value).version == version
        except ValueError:
            return False

    return check


def _regex_format(pattern: re.Pattern[str]) -> Callable[[object], bool]:
    return lambda value: not isinstance(value, str) or pattern.match(value) is not None


FORMATS: dict[str, Callable[[object], bool]] = {
    "uuid": _regex_format(_UUID),
    "date-time": _regex_format(_DATE_TIME),
    "uri": _regex_format(_URI_FORMAT),
    "email": _regex_format(_EMAIL),
    "hostname": _regex_format(_HOSTNAME),
    "ipv4": _ip(4),
    "ipv6": _ip(6),
}
_format_checker = FormatChecker(formats=["regex"])
for _name, _check in FORMATS.items():
    _format_checker.checks(_name)(_check)


# -- schema keys --------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class DataReport:
    """One validation failure, in the Iglu client's ``dataReports`` shape."""

    path: str
    message: str
    keyword: str | None

    def as_json(self) -> dict[str, Any]:
        return {"message": self.message, "path": self.path, "keyword": self.keyword, "targets": []}

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class CompiledSchema:
    """A schema ready to validate: a compiled fast path plus jsonschema for the full report."""

    def __init__(self, key: SchemaKey, schema: dict[str, Any]) -> None:
        self.key = key
        self.schema = schema
        self._full = Draft4Validator(schema, format_checker=_format_checker)
        self._fast = (
            _string_records_check(schema) or _wrapper_check(schema) or _compile_fast(schema)
        )

    def reports(self, instance: Any) -> list[DataReport]:
        if self._fast is not None:
            try:
                self._fast(instance)
                return []
            except Exception:
                pass
        # jsonschema is the reference: it gives every error, and wins if the two disagree.
        return [_report(error) for error in self._full.iter_errors(instance)]


def _string_records_check(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """A hand-made check for payload_data's shape: a non-empty array of flat objects of strings.

    Every tracker-protocol request is validated against it, so it is worth ten
    times the speed of the generic compiled check. None if the schema is any other shape.
    """
    items = schema.get("items")
    if (
        set(schema) - {"$schema", "self", "description", "type", "items", "minItems"}
        or schema.get("type") != "array"
        or schema.get("minItems", 0) > 1
        or not isinstance(items, dict)
        or set(items) - {"type", "properties", "required", "additionalProperties"}
        or items.get("type") != "object"
        or items.get("additionalProperties") is not False
        or not isinstance(items.get("properties"), dict)
        or any(p != {"type": "string"} for p in items["properties"].values())
    ):
        return None
    allowed = frozenset(items["properties"])
    required = frozenset(items.get("required", ()))
    non_empty = schema.get("minItems", 0) == 1

    def check(instance: Any) -> None:
        if type(instance) is not list or (non_empty and not instance):
            raise ValueError("not a non-empty array")
        for item in instance:
            if type(item) is not dict or not item.keys() <= allowed or not required <= item.keys():
                raise ValueError("invalid item")
        # Every value a string, in one C loop: join raises TypeError on anything else.
        "".join(chain.from_iterable(map(dict.values, instance)))

    return check


_ANNOTATIONS = {"$schema", "self", "description"}


def _wrapper_check(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """A hand-made check for the self-describing wrappers (unstruct_event, contexts).

    An object of ``schema`` (a string matching a pattern) and ``data`` (anything),
    or an array of them: the shapes every self-describing event and every entity
    list is validated against. It raises where the schema fails; jsonschema makes
    the report. None if the schema is any other shape.
    """
    shape = schema
    array = schema.get("type") == "array"
    if array:
        if set(schema) - _ANNOTATIONS - {"type", "items"} or not isinstance(
            schema.get("items"), dict
        ):
            return None
        shape = schema["items"]
    properties = shape.get("properties")
    if (
        set(shape) - _ANNOTATIONS - {"type", "properties", "required", "additionalProperties"}
        or shape.get("type") != "object"
        or shape.get("additionalProperties") is not False
        or not isinstance(properties, dict)
        or set(properties) != {"schema", "data"}
        or properties["data"] != {}
        or set(properties["schema"]) != {"type", "pattern"}
        or properties["schema"]["type"] != "string"
        or not isinstance(properties["schema"]["pattern"], str)
        or not isinstance(shape.get("required", []), list)
        or not set(shape.get("required", [])) <= {"schema", "data"}
    ):
        return None
    search = re.compile(properties["schema"]["pattern"]).search  # as jsonschema's "pattern"
    allowed = frozenset({"schema", "data"})
    required = frozenset(shape.get("required", []))

    def check_one(item: Any) -> None:
        if type(item) is not dict or not item.keys() <= allowed or not required <= item.keys():
            raise ValueError("not a self-describing object")
        if "schema" in item and (type(item["schema"]) is not str or not search(item["schema"])):
            raise ValueError("schema does not match")

    def check_array(instance: Any) -> None:
        if type(instance) is not list:
            raise ValueError("not an array")
        for item in instance:
            check_one(item)

    return check_array if array else check_one


def _compile_fast(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    # Force Draft 4 (Iglu's meta-schema URI is unknown to fastjsonschema), never fill
    # defaults into the caller's data, and never fetch a remote $ref.
    definition = dict(schema, **{"$schema": _DRAFT4})
    try:
        return fastjsonschema.compile(
            definition,
            handlers={"http": _no_fetch, "https": _no_fetch},
            formats=FORMATS,
            use_default=False,
        )
    except Exception:
        return None


def _no_fetch(uri: str) -> Any:
    raise LookupError(f"remote $ref {uri} is not fetched")


def _report(error: Any) -> DataReport:
    path = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return DataReport(path, str(error.message), str(error.validator))


# -- repositories -------------------------------------------------------------------------------


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
        #: Results of decoding and validating identical field values (see validate.py).
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
