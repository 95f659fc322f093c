"""The HTTP transport: one prepared request at a time over a pooled session.

Errors from ``requests`` stop here: every call returns a :class:`SendResult`,
never raises. ``requests.get``/``requests.post`` are used instead of the pooled
session when a test suite has patched them, so suites written for the 0.5.0
tracker (which called those functions) keep intercepting our traffic.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.cookiejar import DefaultCookiePolicy
from typing import Any, Optional, Union

import requests

from .constants import POST_CONTENT_TYPE

Timeout = Union[float, tuple[float, float]]
_ORIGINAL_GET = requests.get
_ORIGINAL_POST = requests.post
_POST_HEADERS = {"Content-Type": POST_CONTENT_TYPE}


@dataclass(frozen=True)
class SendResult:
    """The outcome of one request: a status, or the error that stopped it."""

    status: Optional[int]
    error: Optional[BaseException] = None
    retry_after: Optional[float] = None

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
    """Sends GET and POST requests to a collector with ``requests``."""

    def __init__(self, session: requests.Session | None = None, timeout: Timeout = 5.0) -> None:
        self.session = session if session is not None else new_session()
        self.timeout = timeout
        self._settings: dict[str, dict[str, Any]] = {}

    def get(self, url: str, params: Mapping[str, str]) -> SendResult:
        if requests.get is not _ORIGINAL_GET:
            return self._call(lambda: requests.get(url, params=params, timeout=self.timeout))
        request = requests.Request("GET", url, params=params)
        return self._call(lambda: self._send(request))

    def post(self, url: str, body: bytes) -> SendResult:
        if requests.post is not _ORIGINAL_POST:
            return self._call(
                lambda: requests.post(url, data=body, headers=_POST_HEADERS, timeout=self.timeout)
            )
        request = requests.Request("POST", url, data=body, headers=_POST_HEADERS)
        return self._call(lambda: self._send(request))

    def close(self) -> None:
        self.session.close()

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
