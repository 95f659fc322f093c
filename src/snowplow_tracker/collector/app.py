"""The collector's ASGI application: the Snowplow collector's routes, Micro's REST API, the UI.

A plain ASGI callable (no framework): the routes are few, and every microsecond
spent routing is taken from event ingestion.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from importlib import resources
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote

from .._redact import redact_header
from . import micro
from .enriched import enrich, event_schema, lossy
from .iglu import Resolver, SchemaKey, SchemaNotFound, SchemaPending
from .store import Query
from .validate import CollectorPayload, Event

if TYPE_CHECKING:
    from .server import Collector

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
T = TypeVar("T")

GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
MAX_BODY = 2_097_152  # dropPayloadSize: above it, 413
MAX_REQUEST_LINE = 20_480
MAX_HEADERS = 40_960
CLIENT_CLOSED = 499  # recorded for a request whose client left during a scripted delay
ANONYMOUS_NUID = "00000000-0000-0000-0000-000000000000"
COOKIE_NAME = "sp"
COOKIE_DAYS = 365
_DROPPED_WHEN_ANONYMOUS = frozenset({"x-forwarded-for", "x-real-ip", "cookie"})
MICRO_ENDPOINTS = [
    "/micro/all",
    "/micro/good",
    "/micro/bad",
    "/micro/reset",
    "/micro/events",
    "/micro/iglu/{vendor}/{name}/jsonschema/{version}",
    "/micro/ui",
]


class _Reply:
    def __init__(
        self, status: int, body: bytes = b"", content_type: str = "text/plain; charset=utf-8"
    ) -> None:
        self.status = status
        self.body = body
        self.headers: list[tuple[bytes, bytes]] = [(b"content-type", content_type.encode())]

    def header(self, name: str, value: str) -> _Reply:
        self.headers.append((name.encode("latin-1"), value.encode("latin-1")))
        return self


def _json(status: int, document: Any) -> _Reply:
    return _Reply(status, json.dumps(document).encode(), "application/json")


def _text(status: int, text: str) -> _Reply:
    return _Reply(status, text.encode())


class CollectorApp:
    """Routes one HTTP request to the collector, Micro API or UI handlers."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self._ui_html: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        reply = await self._route(scope, receive)
        if reply is not None:  # None: the client is gone (or its request timed out)
            await _send(scope, send, reply)

    async def _route(self, scope: Scope, receive: Receive) -> _Reply | None:
        method: str = scope["method"]
        path: str = scope["path"]
        headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in scope["headers"]]
        query = scope["query_string"].decode("latin-1")
        if len(path) + len(query) > MAX_REQUEST_LINE:
            return _text(400, "request line too long")
        if sum(len(k) + len(v) for k, v in headers) > MAX_HEADERS:
            return _text(400, "headers too long")
        origin = _header(headers, "origin")
        if path.startswith("/micro") and origin is not None and not self._may_read(origin, headers):
            # A page elsewhere may neither read the API nor reset it (no CORS headers either).
            return _text(403, "cross-origin request refused: start the collector with "
                         "--allow-origin ORIGIN to let that origin use the Micro API")  # fmt: skip
        if method == "OPTIONS":
            return _cors(_Reply(200), origin, preflight=True)
        body = await _read_body(receive, headers)
        if body is _GONE:
            return None
        if body is None:
            return _text(413, "payload too large")
        if path.startswith("/micro"):
            reply = await self._micro(method, path, query, body)
            # Only an origin that passed _may_read gets CORS headers here, never "*".
            return _cors(reply, origin).header("vary", "Origin") if origin else reply
        if path == "/health" and method in ("GET", "HEAD"):
            return _text(200, "ok")
        if path == "/robots.txt" and method in ("GET", "HEAD"):
            return _text(200, "User-agent: *\nDisallow: /\n")
        if path == "/" and method in ("GET", "HEAD"):
            return _Reply(302).header("location", "/micro/ui")
        if path.startswith("/r/"):
            return _text(404, "redirects disabled")
        if _is_tracking(method, path):
            return await self._track(scope, receive, method, path, query, headers, body, origin)
        return _text(404, "not found")

    def _may_read(self, origin: str, headers: list[tuple[str, str]]) -> bool:
        """True for the collector's own origin (its UI) and the ``--allow-origin`` ones."""
        allowed = self.collector.allow_origins
        if origin in allowed or "*" in allowed:
            return True
        host = _header(headers, "host")
        return host is not None and origin in (f"http://{host}", f"https://{host}")

    # -- tracking --------------------------------------------------------------------------------

    async def _track(
        self,
        scope: Scope,
        receive: Receive,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        origin: str | None,
    ) -> _Reply:
        collector = self.collector
        scripted = collector._next_response()
        status = scripted.status
        if scripted.delay and await self._hung_up_during(scripted.delay, receive):
            # A slow collector serves a request when the delay ends; a client that
            # gave up (timed out, was killed) before then was never served.
            status = CLIENT_CLOSED
        anonymous = any(k == "sp-anonymous" for k, _ in headers)
        cookie = None if anonymous else _cookie(headers)
        nuid = _query_nuid(query) or cookie or str(uuid.uuid4())
        if anonymous:
            nuid = ANONYMOUS_NUID
            headers = [(k, v) for k, v in headers if k not in _DROPPED_WHEN_ANONYMOUS]
        if not collector.keep_secrets:
            headers = [(k, redact_header(k, v)) for k, v in headers]
        payload = CollectorPayload(
            method="GET" if method == "HEAD" else method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            content_type=_header(headers, "content-type", lower=True),
            timestamp=time.time(),
            ip=None if anonymous else _client_ip(scope, headers),
            useragent=_header(headers, "user-agent"),
            referer=_header(headers, "referer"),
            network_userid=nuid,
            hostname=_header(headers, "host"),
        )
        await _resolving(collector.resolver, lambda: collector._ingest(payload, status))
        if method == "POST":
            reply = _Reply(status, b"ok")
        else:
            reply = _Reply(status, GIF, "image/gif")
            reply.header("cache-control", "no-cache, no-store, must-revalidate")
        if scripted.retry_after:
            reply.header("retry-after", scripted.retry_after)
        if not anonymous:  # as Snowplow's collector: an anonymous request leaves the cookie be
            _set_cookie(reply, nuid)
        return _cors(reply, origin)

    async def _hung_up_during(self, delay: float, receive: Receive) -> bool:
        """Wait ``delay`` seconds (less if the collector stops); True if the client left."""
        sleeper = asyncio.ensure_future(self.collector._sleep(delay))
        listener = asyncio.ensure_future(receive())
        done, _ = await asyncio.wait({sleeper, listener}, return_when=asyncio.FIRST_COMPLETED)
        if listener in done and listener.result().get("type") == "http.disconnect":
            sleeper.cancel()
            return True
        listener.cancel()
        await sleeper
        return False

    # -- Micro API ---------------------------------------------------------------------------------

    async def _micro(self, method: str, path: str, query: str, body: bytes) -> _Reply:
        route = path.rstrip("/") or path
        if method not in ("GET", "POST", "HEAD"):
            return _text(405, "method not allowed")
        try:
            if route == "/micro/all":
                return _json(200, self._summary())
            if route == "/micro/good":
                return self._good(body if method == "POST" else b"")
            if route == "/micro/bad":
                return self._bad(body if method == "POST" else b"")
            if route == "/micro/reset":
                self.collector.clear_events()
                return _json(200, self._summary())
            if route == "/micro/events":
                return self._events(body if method == "POST" else b"")
            if route.startswith("/micro/iglu/"):
                return await self._iglu(route[len("/micro/iglu/") :])
            if route == "/micro/ui" or route == "/micro/ui/index.html":
                return _Reply(200, self._ui(), "text/html; charset=utf-8")
            if route.startswith("/micro/ui/api/"):
                return self._ui_api(route[len("/micro/ui/api/") :], query)
        except micro.FilterError as exc:
            return _json(400, {"error": str(exc)})
        return _json(404, {"error": f"unknown endpoint {path[:200]}", "endpoints": MICRO_ENDPOINTS})

    def _summary(self) -> dict[str, int]:
        good, bad = self.collector.store.counts()
        return {"total": good + bad, "good": good, "bad": bad}

    def _good(self, body: bytes) -> _Reply:
        spec = micro.parse_filter(body, micro.GOOD_FILTER_FIELDS)
        events = [
            r
            for r in self.collector.store.newest_first(True)
            if isinstance(r, Event) and micro.good_matches(r, spec)
        ]
        return _json(200, [micro.good_event(e) for e in micro.limited(events, spec)])

    def _bad(self, body: bytes) -> _Reply:
        spec = micro.parse_filter(body, micro.BAD_FILTER_FIELDS)
        records = [
            r for r in self.collector.store.newest_first(False) if micro.bad_matches(r, spec)
        ]
        return _json(200, [micro.bad_event(r) for r in micro.limited(records, spec)])

    def _events(self, body: bytes) -> _Reply:
        spec = micro.parse_filter(body, frozenset({"page", "pageSize", "validEvents"}))
        page, size = spec.get("page", 1), spec.get("pageSize", 50)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (page, size)):
            raise micro.FilterError("page and pageSize must be positive integers")
        valid = spec.get("validEvents")
        events = (
            [r for r in self.collector.store.newest_first(True) if isinstance(r, Event)]
            if valid is not False
            else []
        )
        total = len(events)
        window = events[(page - 1) * size : page * size]
        return _json(
            200,
            {
                "events": [lossy(e) for e in window],
                "totalItems": total,
                "totalPages": (total + size - 1) // size,
            },
        )

    async def _iglu(self, rest: str) -> _Reply:
        try:
            key = SchemaKey.parse("iglu:" + rest)
        except ValueError:
            return _json(400, {"error": f"not a schema path: {rest[:200]}"})
        resolver = self.collector.resolver
        try:
            return _json(200, await _resolving(resolver, lambda: resolver.schema(key)))
        except SchemaNotFound as exc:
            history = {
                h["repository"]: {k: v for k, v in h.items() if k != "repository"}
                for h in exc.lookup_history
            }
            return _json(404, {"value": history})

    # -- UI ----------------------------------------------------------------------------------------

    def _ui(self) -> bytes:
        if self._ui_html is None:
            self._ui_html = resources.files(__package__).joinpath("ui.html").read_bytes()
        return self._ui_html

    def _ui_api(self, rest: str, query: str) -> _Reply:
        store = self.collector.store
        if rest == "records":
            params = dict(parse_qsl(query))
            try:
                q = Query(
                    kind=params.get("kind", "all")
                    if params.get("kind") in ("good", "bad")
                    else "all",
                    event_type=params.get("event_type") or None,
                    schema=params.get("schema") or None,
                    app_id=params.get("app_id") or None,
                    after=int(params.get("after", 0)),
                    before=int(params["before"]) if params.get("before") else None,
                    limit=max(1, min(int(params.get("limit", 100)), 500)),
                )
            except ValueError:
                return _json(400, {"error": "after, before and limit must be integers"})
            records = store.query(q)
            return _json(
                200,
                {
                    "summary": self._summary(),
                    "facets": store.facets(),
                    "records": [_summary(r) for r in records],
                },
            )
        if rest.startswith("records/"):
            try:
                record = store.get(int(rest[len("records/") :]))
            except ValueError:
                record = None
            if record is None:
                return _json(404, {"error": "no such record"})
            return _json(200, _detail(record))
        return _json(404, {"error": "unknown UI endpoint"})


def _summary(record: micro.Record) -> dict[str, Any]:
    payload = record.payload
    out: dict[str, Any] = {
        "id": record.id,
        "good": record.valid,
        "method": record.method,
        "timestamp": payload.timestamp * 1000 if payload else None,
        "bad_row_type": record.bad_row_type,
        "error": record.errors[0] if record.errors else None,
        "error_count": len(record.errors),
    }
    if isinstance(record, Event):
        raw = record.raw
        out.update(
            event_type=record.event_type or raw.get("e"),
            schema=event_schema(record),
            app_id=raw.get("aid"),
            contexts=len(record.contexts),
            label=_label(record),
        )
    else:
        out.update(
            event_type=None,
            schema=None,
            app_id=None,
            contexts=0,
            label=f"{record.method} {record.payload.path}",
        )
    return out


def _label(event: Event) -> str:
    raw = event.raw
    kind = raw.get("e")
    if kind == "pv":
        return raw.get("page") or raw.get("url") or ""
    if kind in ("se", "ev"):
        return " / ".join(v for v in (raw.get("se_ca"), raw.get("se_ac"), raw.get("se_la")) if v)
    if kind == "ue":
        parts = (event.event_schema or "").replace("iglu:", "").split("/")
        return f"{parts[1]} ({parts[3]})" if len(parts) == 4 else ""
    if kind == "tr":
        return f"order {raw.get('tr_id', '')} total {raw.get('tr_tt', '')}"
    if kind == "ti":
        return f"{raw.get('ti_sk', '')} x {raw.get('ti_qu', '')}"
    return ""


def _detail(record: micro.Record) -> dict[str, Any]:
    out = _summary(record)
    out["errors"] = record.errors
    out["bad_row"] = micro.bad_row(record) if not record.valid else None
    if isinstance(record, Event):
        out["parameters"] = record.raw
        out["unstruct_event"] = record.unstruct_event
        out["entities"] = record.contexts
        out["enriched"] = {k: v for k, v in enrich(record).items() if v is not None}
    else:
        payload = record.payload
        out["request"] = {
            "path": payload.path,
            "query": payload.query,
            "content_type": payload.content_type,
            "body": payload.body[:20_000].decode("utf-8", "replace"),
        }
    return out


# -- helpers --------------------------------------------------------------------------------------


def _is_tracking(method: str, path: str) -> bool:
    if path in ("/i", "/ice.png"):
        return method in ("GET", "HEAD")
    parts = path.split("/")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return False
    return method in ("GET", "HEAD", "POST")


_GONE = b"<the client left>"  # compared by identity


async def _read_body(receive: Receive, headers: list[tuple[str, str]]) -> bytes | None:
    """The request body; None if it is larger than MAX_BODY; ``_GONE`` if the client left."""
    declared = _header(headers, "content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return _GONE  # a part of a body is no request
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _header(headers: list[tuple[str, str]], name: str, *, lower: bool = False) -> str | None:
    for key, value in headers:
        if key == name:
            return value.lower() if lower else value
    return None


def _cookie(headers: list[tuple[str, str]]) -> str | None:
    for key, value in headers:
        if key == "cookie":
            for part in value.split(";"):
                name, _, cookie = part.strip().partition("=")
                if name == COOKIE_NAME and cookie:
                    return cookie[:128]
    return None


def _query_nuid(query: str) -> str | None:
    if "nuid=" not in query:
        return None
    return dict(parse_qsl(query)).get("nuid") or None


def _client_ip(scope: Scope, headers: list[tuple[str, str]]) -> str | None:
    forwarded = _header(headers, "x-forwarded-for")
    if forwarded:
        return forwarded.split(",")[0].strip()[:128] or None
    client = scope.get("client")
    return str(client[0]) if client else None


def _set_cookie(reply: _Reply, nuid: str) -> None:
    expires = formatdate(time.time() + COOKIE_DAYS * 86400, usegmt=True)
    # The value may come from the query string: quote it, so it can neither break the
    # header's encoding nor inject another header.
    nuid = quote(nuid, safe="-._~")
    reply.header(
        "set-cookie",
        f"{COOKIE_NAME}={nuid}; Expires={expires}; Path=/; Secure; HttpOnly; SameSite=None",
    )


def _cors(reply: _Reply, origin: str | None, *, preflight: bool = False) -> _Reply:
    reply.header("access-control-allow-origin", origin or "*")
    reply.header("access-control-allow-credentials", "true")
    if preflight:
        reply.header("access-control-allow-headers", "Content-Type, SP-Anonymous")
        reply.header("access-control-max-age", "3600")
    return reply


async def _resolving(resolver: Resolver, work: Callable[[], T]) -> T:
    """``work()``, run again after each remote schema lookup it needs (awaited off the loop).

    ``work`` must not change anything before its lookups are done: validation
    raises ``SchemaPending`` before an event is stored. Waits end at one deadline
    for the whole request, after which a schema still missing is reported as not
    resolved in time.
    """
    if not resolver.remote:
        return work()
    deadline = time.monotonic() + resolver.lookup_timeout
    while True:
        with resolver.deferring(deadline):
            try:
                return work()
            except SchemaPending as pending:
                future = pending.future
        await _done_or_timeout(future, deadline - time.monotonic())


async def _done_or_timeout(future: concurrent.futures.Future[None], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    done = asyncio.Event()

    def wake(_: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(done.set)

    future.add_done_callback(wake)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(done.wait(), max(0.0, timeout))


async def _send(scope: Scope, send: Send, reply: _Reply) -> None:
    headers = [*reply.headers, (b"content-length", str(len(reply.body)).encode())]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    body = b"" if scope["method"] == "HEAD" else reply.body
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["GIF", "CollectorApp"]
