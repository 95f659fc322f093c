"""How an emitter talks to a collector: one small protocol, and the one place a transport is chosen.

A transport sends one :class:`Request` within a timeout (connecting, sending
and reading the whole answer together) and reports a :class:`SendResult`; it
never raises for a network failure. Emitters follow redirects themselves
(:func:`send`, :func:`asend`), the same way over every transport.

The transports:

* the built-in keep-alive client (``_http.BuiltinTransport``): the default,
  and the fastest;
* ``requests`` (``_http.RequestsTransport``): when you pass ``session=``,
  when the URL needs what only ``requests`` does (credentials in the URL, a
  proxy or ``.netrc`` entry for it), or when a test double has replaced part
  of ``requests`` before the emitter was built (see ``_http.choose_transport``,
  the one place that decides);
* httpx (``aio.HttpxTransport``) for :class:`~snowplow_tracker.aio.AsyncioEmitter`;
* :class:`snowplow_tracker.testing.MemoryTransport` for your own tests: any
  emitter takes it as ``transport=``.

.. versionadded:: 0.6.0
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from typing import Callable, Optional, Protocol, Union
from urllib.parse import urlencode, urljoin

#: Redirects followed per request at most (as ``requests`` does, but fewer: 30 there).
MAX_REDIRECTS = 5
#: Statuses whose ``Location`` a GET follows; a POST follows only 307 and 308, which keep
#: the method and the body (``requests`` turns a POST into a body-less GET on 301-303).
GET_REDIRECTS = frozenset({301, 302, 303, 307, 308})
POST_REDIRECTS = frozenset({307, 308})

Timeout = Union[float, tuple[float, float]]


class Request:
    """One request to a collector: a GET with its query parameters, or a POST with its body."""

    __slots__ = ("body", "method", "params", "url")

    def __init__(
        self,
        method: str,
        url: str,
        params: Optional[Mapping[str, str]] = None,
        body: Optional[bytes] = None,
    ) -> None:
        self.method = method  # "GET" or "POST"
        self.url = url
        self.params = params  # GET only; None after a redirect (the Location is the whole URL)
        self.body = body  # POST only

    def __repr__(self) -> str:
        from ._redact import redact_url

        return f"Request({self.method} {redact_url(self.url)})"


class SendResult:
    """The outcome of one request: a status, or the error that stopped it."""

    __slots__ = ("error", "location", "redirects", "retry_after", "status")

    def __init__(
        self,
        status: Optional[int],
        error: Optional[BaseException] = None,
        retry_after: Optional[float] = None,
        location: Optional[str] = None,
    ) -> None:
        self.status = status
        self.error = error
        self.retry_after = retry_after
        self.location = location
        self.redirects = 0  # redirects followed to get this answer

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.status is not None:
            return f"status {self.status}"
        return f"{type(self.error).__name__}: {self.error}"


class Transport(Protocol):
    """What a synchronous emitter needs to send: one request within ``timeout`` seconds."""

    def send(self, request: Request, timeout: float) -> SendResult:
        """Send ``request``; give up when ``timeout`` seconds have passed. Never raises."""

    def close(self) -> None:
        """Close connections; the transport may not be used afterwards."""


class AsyncTransport(Protocol):
    """The same for :class:`~snowplow_tracker.aio.AsyncioEmitter`."""

    async def asend(self, request: Request, timeout: float) -> SendResult:
        """Send ``request``; give up when ``timeout`` seconds have passed. Never raises."""

    async def aclose(self) -> None:
        """Close connections."""


def next_hop(request: Request, result: SendResult) -> Optional[Request]:
    """The request a redirect answer asks for, or None when it is not to be followed."""
    if result.status is None or not result.location:
        return None
    allowed = POST_REDIRECTS if request.method == "POST" else GET_REDIRECTS
    if result.status not in allowed:
        return None
    target = urljoin(_full_url(request), result.location.strip())
    if not target.lower().startswith(("http://", "https://")):
        return None
    return Request(request.method, target, None, request.body)


def _full_url(request: Request) -> str:
    if not request.params:
        return request.url
    sep = "&" if "?" in request.url else "?"
    return request.url + sep + urlencode(request.params)


def send(
    transport: Transport,
    request: Request,
    timeout: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> SendResult:
    """Send ``request``, following up to :data:`MAX_REDIRECTS` redirects, all within ``timeout``."""
    deadline = monotonic() + timeout
    result = _guarded(transport, request, timeout)
    hops = 0
    while (following := next_hop(request, result)) is not None:
        remaining = deadline - monotonic()
        if hops == MAX_REDIRECTS or remaining <= 0:
            break
        hops += 1
        request = following
        result = _guarded(transport, request, remaining)
    result.redirects = hops
    return result


def _guarded(transport: Transport, request: Request, timeout: float) -> SendResult:
    try:
        return transport.send(request, timeout)
    except Exception as exc:  # a transport of the caller's broke the protocol: a failed request
        return SendResult(None, exc)


async def asend(
    transport: AsyncTransport,
    request: Request,
    timeout: float,
    monotonic: Callable[[], float] = time.monotonic,
) -> SendResult:
    """The asyncio twin of :func:`send`."""
    deadline = monotonic() + timeout
    result = await _aguarded(transport, request, timeout)
    hops = 0
    while (following := next_hop(request, result)) is not None:
        remaining = deadline - monotonic()
        if hops == MAX_REDIRECTS or remaining <= 0:
            break
        hops += 1
        request = following
        result = await _aguarded(transport, request, remaining)
    result.redirects = hops
    return result


async def _aguarded(transport: AsyncTransport, request: Request, timeout: float) -> SendResult:
    try:
        return await transport.asend(request, timeout)
    except Exception as exc:  # as in _guarded (asyncio.CancelledError is no Exception)
        return SendResult(None, exc)


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


__all__ = [
    "MAX_REDIRECTS",
    "AsyncTransport",
    "Request",
    "SendResult",
    "Transport",
    "asend",
    "next_hop",
    "parse_retry_after",
    "send",
]
