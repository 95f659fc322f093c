"""The two synchronous transports: the built-in keep-alive client, and ``requests``.

Errors stop here: ``send`` returns a :class:`~snowplow_tracker.transport.SendResult`,
never raises. Which one an emitter uses is decided once, when it is built, by
:func:`choose_transport` at the end of this module, and nowhere else.
"""

from __future__ import annotations

import math
import os
import queue
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Optional
from urllib.parse import urlencode, urlsplit

import requests
import urllib3.connectionpool

from ._pool import Pool, header_block
from ._redact import redact_url
from .constants import POST_CONTENT_TYPE
from .transport import Request, SendResult, Timeout, Transport, parse_retry_after

_POST_HEADERS = {"Content-Type": POST_CONTENT_TYPE}


def _requests_stack() -> tuple[object, ...]:
    """What test doubles for ``requests`` replace (responses, requests-mock, vcrpy, mocks)."""
    pool = urllib3.connectionpool.HTTPConnectionPool
    tls_pool = urllib3.connectionpool.HTTPSConnectionPool
    return (
        requests.get,
        requests.post,
        requests.Session.send,
        requests.Session.request,
        requests.Session.get_adapter,
        requests.adapters.HTTPAdapter.send,
        pool.urlopen,
        pool.ConnectionCls,
        tls_pool.ConnectionCls,
    )


_ORIGINAL_STACK = _requests_stack()
# Already replaced when we were imported (a double active at import time)? Then never bypass.
_GENUINE_STACK = all(
    getattr(part, "__module__", "").startswith(("requests.", "urllib3."))
    for part in _ORIGINAL_STACK
)


def requests_untouched() -> bool:
    """Whether ``requests`` and ``urllib3`` are as installed, so our own client may stand in."""
    # Tuple equality compares identical items without calling __eq__: identity, in C.
    return _GENUINE_STACK and _requests_stack() == _ORIGINAL_STACK


def new_session() -> requests.Session:
    """A pooled session that never stores cookies.

    A kept ``sp`` cookie would give every user of a server-side tracker the
    same collector network user id, which is why 1.x refused to pool.
    """
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


def total_seconds(timeout: Optional[Timeout]) -> float:
    """The whole-request bound a ``request_timeout`` means: connect plus read for a pair."""
    if timeout is None:
        return math.inf
    if isinstance(timeout, tuple):
        return float(timeout[0]) + float(timeout[1])
    return float(timeout)


class RequestsTransport:
    """Sends through ``requests``: with ``session``, or through ``requests.get`` and
    ``requests.post`` (as 0.5.0 did) when ``session`` is None.

    ``requests`` bounds each socket operation, not the whole request: a
    collector that answers a byte at a time could make one request last
    longer than its timeout. So a session's requests run on a helper thread
    (:class:`_Runner`) and ``send`` returns at the deadline whatever they do.
    Calls through ``requests.get``/``requests.post`` (test doubles) run in the
    calling thread.
    """

    def __init__(self, session: requests.Session | None, timeout: Optional[Timeout]) -> None:
        self.session = session
        self.timeout = timeout
        self._settings: dict[str, dict[str, Any]] = {}
        self._runner = _Runner()

    def __repr__(self) -> str:
        kind = "session" if self.session is not None else "requests.get/post"
        return f"RequestsTransport({kind})"

    def send(self, request: Request, timeout: float) -> SendResult:
        per_call = self._per_call(timeout)
        session = self.session
        if session is None:
            if request.method == "POST":
                return _call(
                    lambda: requests.post(
                        request.url, data=request.body, headers=_POST_HEADERS, timeout=per_call
                    )
                )
            return _call(lambda: requests.get(request.url, params=request.params, timeout=per_call))
        headers = _POST_HEADERS if request.method == "POST" else None
        prepared = requests.Request(
            request.method, request.url, params=request.params, data=request.body, headers=headers
        )

        def call() -> requests.Response:
            ready = session.prepare_request(prepared)
            return session.send(
                ready, timeout=per_call, allow_redirects=False, **self._env(request.url)
            )

        return self._runner.run(lambda: _call(call), timeout)

    def close(self) -> None:
        self._runner.close()
        if self.session is not None:
            self.session.close()

    def _per_call(self, timeout: float) -> Any:
        configured = self.timeout
        if isinstance(configured, tuple):
            return (_bounded(configured[0], timeout), _bounded(configured[1], timeout))
        return _bounded(configured, timeout)

    def _env(self, url: str) -> dict[str, Any]:
        # Session.request looks up proxies and CA bundles in the environment on every
        # call; doing it once per URL keeps that cost off the hot path.
        assert self.session is not None
        settings = self._settings.get(url)
        if settings is None:
            merged = self.session.merge_environment_settings(url, {}, None, None, None)
            settings = self._settings[url] = dict(merged)
        return settings


class _Job:
    __slots__ = ("abandoned", "call", "done", "result")

    def __init__(self, call: Callable[[], SendResult]) -> None:
        self.call = call
        self.done = threading.Event()
        self.result: Optional[SendResult] = None
        self.abandoned = False


class _Runner:
    """Daemon threads that make ``requests`` calls, so that the caller can stop waiting at
    its deadline.

    A call the caller gave up on goes on in its thread until ``requests`` gives up on it
    (its result is dropped); a call still queued when its caller gave up is not made. At
    most :attr:`MAX_THREADS` threads: when a collector holds each of them, new requests
    fail at their deadline. Daemon threads never hold up interpreter exit.
    """

    MAX_THREADS = 4

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._jobs: queue.SimpleQueue[Optional[_Job]] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0
        self._pid = os.getpid()

    def run(self, call: Callable[[], SendResult], timeout: float) -> SendResult:
        job = _Job(call)
        with self._lock:
            if self._pid != os.getpid():  # a forked child has none of its parent's threads
                self._reset()
            if self._idle:  # an idle thread takes it
                self._idle -= 1
            elif self._threads < self.MAX_THREADS:
                self._threads += 1
                threading.Thread(target=self._work, name="snowplow-requests", daemon=True).start()
            self._jobs.put(job)
        if not job.done.wait(None if timeout == math.inf else max(timeout, 0.0)):
            job.abandoned = True
            return SendResult(None, TimeoutError("the request's deadline passed"))
        assert job.result is not None
        return job.result

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if not job.abandoned:
                job.result = job.call()  # _call: never raises
                job.done.set()
            with self._lock:
                self._idle += 1

    def close(self) -> None:
        with self._lock:
            for _ in range(self._threads):
                self._jobs.put(None)
            self._threads = self._idle = 0


def _bounded(configured: Optional[float], timeout: float) -> Optional[float]:
    bound = timeout if configured is None else min(float(configured), timeout)
    return None if bound == math.inf else max(bound, 0.001)


def _call(send: Any) -> SendResult:
    try:
        response = send()
    except Exception as exc:  # anything the network or a patched client throws
        return SendResult(None, exc)
    try:
        status = int(response.status_code)
        headers = response.headers
        retry_after = parse_retry_after(headers.get("Retry-After"))
        location = headers.get("Location")
        response.close()  # hands the connection back to the pool
    except Exception as exc:  # a malformed response from a patched client
        return SendResult(None, exc)
    return SendResult(status, None, retry_after, location)


class BuiltinTransport:
    """Sends over our own keep-alive pools, with the headers ``requests`` would send.

    Used for every URL it can serve as ``requests`` would (see
    :func:`~snowplow_tracker.transport.choose_transport`); a redirect to a URL
    it cannot serve (a proxy for it, say) fails that request.
    """

    def __init__(self, timeout: Optional[Timeout]) -> None:
        self.timeout = timeout
        self.connect_timeout = timeout[0] if isinstance(timeout, tuple) else timeout
        self._session = new_session()  # only its default headers and environment settings
        self._routes: dict[str, Optional[_Route]] = {}
        self._pools: dict[tuple[str, int, bool], Pool] = {}

    @classmethod
    def for_url(cls, url: str, timeout: Optional[Timeout]) -> Optional[BuiltinTransport]:
        """A transport for ``url``, or None when only ``requests`` can send it."""
        transport = cls(timeout)
        if transport._route(url) is None:
            transport.close()
            return None
        return transport

    def __repr__(self) -> str:
        return f"BuiltinTransport({', '.join(map(redact_url, self._routes))})"

    def send(self, request: Request, timeout: float) -> SendResult:
        deadline = time.monotonic() + timeout
        route = self._route(request.url)
        if route is None:
            error = ValueError(f"cannot send to {redact_url(request.url)} without requests")
            return SendResult(None, error)
        if request.method == "POST":
            data = route.post_head + b"Content-Length: %d\r\n\r\n" % len(request.body or b"")
            data += request.body or b""
        else:
            try:
                data = route.get(request.params)
            except (UnicodeEncodeError, ValueError) as exc:
                return SendResult(None, exc)
        try:
            response = route.pool.request(data, deadline)
        except Exception as exc:  # the network, TLS, the deadline, or a malformed answer
            return SendResult(None, exc)
        retry_after = parse_retry_after(response.retry_after)
        return SendResult(response.status, None, retry_after, response.location)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._session.close()

    def _route(self, url: str) -> Optional[_Route]:
        try:
            return self._routes[url]
        except KeyError:
            pass
        try:
            route = self._new_route(url)
        except (ValueError, OSError, ssl.SSLError):
            route = None  # requests will report whatever is wrong with the URL
        if len(self._routes) < 64:  # a collector redirecting everywhere must not grow this
            self._routes[url] = route
        return route

    def _new_route(self, url: str) -> Optional[_Route]:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https") or not host or not host.isascii():
            return None
        session = self._session
        env = session.merge_environment_settings(url, {}, None, None, None)
        if "@" in parts.netloc or env.get("proxies") or env.get("cert"):
            return None
        if session.trust_env and requests.utils.get_netrc_auth(url):
            return None
        port = parts.port or (443 if scheme == "https" else 80)
        key = (host, port, scheme == "https")
        pool = self._pools.get(key)
        if pool is None:
            tls = _tls_context(env.get("verify", True)) if scheme == "https" else None
            connect = None if self.connect_timeout is None else float(self.connect_timeout)
            pool = self._pools[key] = Pool(host, port, tls, connect)
        path = requests.utils.requote_uri(parts.path or "/")
        if parts.query:
            path += "?" + parts.query
        headers = {name: str(value) for name, value in session.headers.items()}
        return _Route(pool, path, parts.netloc, headers)


class _Route:
    """Requests to one URL over a pool, with the headers ``requests`` sends."""

    __slots__ = ("_get_tail", "path", "pool", "post_head")

    def __init__(self, pool: Pool, path: str, host: str, headers: Mapping[str, str]) -> None:
        self.pool = pool
        self.path = path
        block = header_block(host, headers)
        self._get_tail = f" HTTP/1.1\r\n{block}\r\n".encode("latin-1")
        post_block = header_block(host, {**headers, "Content-Type": POST_CONTENT_TYPE})
        self.post_head = f"POST {path} HTTP/1.1\r\n{post_block}".encode("latin-1")

    def get(self, params: Optional[Mapping[str, Any]]) -> bytes:
        if not params:
            return b"GET " + self.path.encode("ascii") + self._get_tail
        if None in params.values():  # requests leaves those out
            params = {name: value for name, value in params.items() if value is not None}
        query = urlencode(params)
        target = self.path + ("&" if "?" in self.path else "?") + query
        return b"GET " + target.encode("ascii") + self._get_tail


def _tls_context(verify: Any) -> ssl.SSLContext:
    """Certificate checks as ``requests`` makes them: its CA bundle, or the one configured."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    where = requests.utils.DEFAULT_CA_BUNDLE_PATH if verify is True else str(verify)
    if os.path.isdir(where):
        return ssl.create_default_context(capath=where)
    return ssl.create_default_context(cafile=where)


def choose_transport(url: str, session: Any, timeout: Optional[Timeout]) -> Transport:
    """The transport an emitter sends ``url`` with, decided here, when it is built:
    ``requests`` with ``session`` when one is given, else a :class:`DefaultTransport`."""
    if session is not None:
        return RequestsTransport(session, timeout)
    return DefaultTransport(url, timeout)


class DefaultTransport:
    """What an emitter without ``session=`` sends with; the one place that decides, for each
    request, between the built-in client and ``requests``:

    * While a test double has replaced part of ``requests`` or ``urllib3``
      (``httmock``, ``responses``, ``requests-mock``, ``vcrpy``, a patched
      ``requests.post`` or ``Session.send``), ``requests``, through
      ``requests.get`` and ``requests.post`` as 0.5.0 called them: test suites
      written for 0.5.0 or 1.x keep intercepting the traffic, even when they
      start their double after the emitter was built (module-level emitters).
    * For a URL the built-in client does not serve (credentials in it, a proxy
      or ``.netrc`` entry for it, client certificates), ``requests``.
    * Otherwise the built-in keep-alive client, which sends the same headers
      as ``requests`` would, at a tenth of the cost.

    The check for doubles compares a few attributes of ``requests`` and
    ``urllib3`` with what they were at import: about half a microsecond a request.
    """

    def __init__(self, url: str, timeout: Optional[Timeout]) -> None:
        builtin = BuiltinTransport.for_url(url, timeout)
        self.plain: Transport = builtin or RequestsTransport(new_session(), timeout)
        self.doubled = RequestsTransport(None, timeout)

    def __repr__(self) -> str:
        return f"DefaultTransport({self.plain!r})"

    def send(self, request: Request, timeout: float) -> SendResult:
        transport = self.plain if requests_untouched() else self.doubled
        return transport.send(request, timeout)

    def close(self) -> None:
        self.plain.close()
        self.doubled.close()
