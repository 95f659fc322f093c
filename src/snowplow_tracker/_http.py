"""The HTTP transport: requests to the collector over pooled keep-alive connections.

Errors stop here: every call returns a :class:`SendResult`, never raises.
Requests go over our own keep-alive pool (``_pool``) when ``requests`` would add
nothing to them, and through a ``requests`` session otherwise (the caller's
session, a proxy, ``.netrc`` credentials). ``requests.get``/``requests.post``
are used when a test suite has patched them, so suites written for the 0.5.0
tracker (which called those functions) keep intercepting our traffic.
"""

from __future__ import annotations

import email.utils
import os
import ssl
import time
from collections.abc import Mapping
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Optional, Union
from urllib.parse import urlencode, urlsplit

import requests
import urllib3.connectionpool

from ._pool import Pool, header_block
from .constants import POST_CONTENT_TYPE

Timeout = Union[float, tuple[float, float]]
_ORIGINAL_GET = requests.get
_ORIGINAL_POST = requests.post
_POST_HEADERS = {"Content-Type": POST_CONTENT_TYPE}


def _requests_stack() -> tuple[object, ...]:
    """What test doubles for ``requests`` replace (responses, requests-mock, vcrpy, mocks)."""
    pool = urllib3.connectionpool.HTTPConnectionPool
    tls_pool = urllib3.connectionpool.HTTPSConnectionPool
    return (
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
    """Whether ``requests`` and ``urllib3`` are as installed, so our own pool may stand in."""
    return _GENUINE_STACK and all(
        now is then for now, then in zip(_requests_stack(), _ORIGINAL_STACK)
    )


class SendResult:
    """The outcome of one request: a status, or the error that stopped it."""

    __slots__ = ("error", "retry_after", "status")

    def __init__(
        self,
        status: Optional[int],
        error: Optional[BaseException] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        self.status = status
        self.error = error
        self.retry_after = retry_after

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def describe(self) -> str:
        if self.status is not None:
            return f"status {self.status}"
        return f"{type(self.error).__name__}: {self.error}"


def new_session() -> requests.Session:
    """A pooled session that never stores cookies.

    A kept ``sp`` cookie would give every user of a server-side tracker the
    same collector network user id, which is why 1.x refused to pool.
    """
    session = requests.Session()
    session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
    return session


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
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


class RequestsTransport:
    """Sends GET and POST requests to a collector.

    Without a ``session`` of the caller's, a request goes over our own
    keep-alive pool whenever ``requests`` would add nothing to it: an http or
    https URL without credentials, no proxy for it in the environment and no
    ``.netrc`` entry. It then carries the same headers as ``requests`` would
    send, a tenth of the cost. Anything else goes through the session, and so
    does everything while a test double has replaced part of ``requests`` or
    ``urllib3`` (``responses``, ``requests-mock``, ``vcrpy``, a mock of
    ``Session.send``), so test suites keep intercepting our traffic.
    """

    def __init__(self, session: requests.Session | None = None, timeout: Timeout = 5.0) -> None:
        self.session = session if session is not None else new_session()
        self.timeout = timeout
        self._own_session = session is None
        self._settings: dict[str, dict[str, Any]] = {}
        self._routes: dict[str, Optional[_Route]] = {}

    def get(self, url: str, params: Mapping[str, str]) -> SendResult:
        if requests.get is not _ORIGINAL_GET:
            return self._call(lambda: requests.get(url, params=params, timeout=self.timeout))
        route = self._route(url) if requests_untouched() else None
        if route is not None:
            return route.get(params)
        request = requests.Request("GET", url, params=params)
        return self._call(lambda: self._send(request))

    def post(self, url: str, body: bytes) -> SendResult:
        if requests.post is not _ORIGINAL_POST:
            return self._call(
                lambda: requests.post(url, data=body, headers=_POST_HEADERS, timeout=self.timeout)
            )
        route = self._route(url) if requests_untouched() else None
        if route is not None:
            return route.post(body)
        request = requests.Request("POST", url, data=body, headers=_POST_HEADERS)
        return self._call(lambda: self._send(request))

    def close(self) -> None:
        for route in self._routes.values():
            if route is not None:
                route.pool.close()
        self.session.close()

    def _route(self, url: str) -> Optional[_Route]:
        """Our own pool for ``url``, or None when ``requests`` must send it."""
        try:
            return self._routes[url]
        except KeyError:
            pass
        route = None
        if self._own_session:
            try:
                route = _Route.for_url(url, self.session, self._env(url), self.timeout)
            except (ValueError, OSError, ssl.SSLError):
                route = None  # requests will report whatever is wrong with the URL
        self._routes[url] = route
        return route

    def _send(self, request: requests.Request) -> requests.Response:
        prepared = self.session.prepare_request(request)
        return self.session.send(
            prepared, timeout=self.timeout, allow_redirects=False, **self._env(request.url)
        )

    def _env(self, url: str) -> dict[str, Any]:
        # Session.request looks up proxies and CA bundles in the environment on every
        # call; doing it once per URL keeps that cost off the hot path.
        settings = self._settings.get(url)
        if settings is None:
            merged = self.session.merge_environment_settings(url, {}, None, None, None)
            settings = self._settings[url] = dict(merged)
        return settings

    @staticmethod
    def _call(send: Any) -> SendResult:
        try:
            response = send()
        except Exception as exc:  # anything the network or a patched client throws
            return SendResult(None, exc)
        try:
            status = int(response.status_code)
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            response.close()  # hands the connection back to the pool
        except Exception as exc:  # a malformed response from a patched client
            return SendResult(None, exc)
        return SendResult(status, None, retry_after)


class _Route:
    """Requests to one collector URL over our own pool, with the headers ``requests`` sends."""

    def __init__(self, pool: Pool, path: str, host: str, headers: Mapping[str, str]) -> None:
        self.pool = pool
        self.path = path
        block = header_block(host, headers)
        self._get_tail = f" HTTP/1.1\r\n{block}\r\n".encode("latin-1")
        post_block = header_block(host, {**headers, "Content-Type": POST_CONTENT_TYPE})
        self._post_head = f"POST {path} HTTP/1.1\r\n{post_block}".encode("latin-1")

    @classmethod
    def for_url(
        cls, url: str, session: requests.Session, env: Mapping[str, Any], timeout: Timeout
    ) -> Optional[_Route]:
        parts = urlsplit(url)
        scheme, host = parts.scheme.lower(), parts.hostname
        if scheme not in ("http", "https") or not host or not host.isascii():
            return None
        if "@" in parts.netloc or env.get("proxies") or env.get("cert"):
            return None
        if session.trust_env and requests.utils.get_netrc_auth(url):
            return None
        port = parts.port or (443 if scheme == "https" else 80)
        tls = _tls_context(env.get("verify", True)) if scheme == "https" else None
        path = requests.utils.requote_uri(parts.path or "/")
        if parts.query:
            path += "?" + parts.query
        headers = {name: str(value) for name, value in session.headers.items()}
        pool = Pool(host, port, tls, timeout)
        return cls(pool, path, parts.netloc, headers)

    def get(self, params: Mapping[str, Any]) -> SendResult:
        values = params.values()
        if None in values:  # requests leaves those out
            params = {name: value for name, value in params.items() if value is not None}
        query = urlencode(params)
        target = self.path if not query else self.path + ("&" if "?" in self.path else "?") + query
        return self._send(b"GET " + target.encode("ascii") + self._get_tail)

    def post(self, body: bytes) -> SendResult:
        return self._send(self._post_head + b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def _send(self, request: bytes) -> SendResult:
        try:
            response = self.pool.request(request)
        except Exception as exc:  # the network, TLS, or a malformed answer
            return SendResult(None, exc)
        return SendResult(response.status, None, parse_retry_after(response.retry_after))


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
