"""Credentials out of what is logged or shown: ``user:password@`` in URLs, secret headers.

One helper for every log line that may carry a URL a user gave us (an emitter's
endpoint, a collector's ``--registry``, the demo's ``--collector``).
"""

from __future__ import annotations

import base64
import logging
import re
import urllib.parse

__all__ = ["REDACTED", "RedactingFilter", "basic_auth", "redact_header", "redact_url"]

REDACTED = "<redacted>"
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})

# scheme://userinfo@ anywhere in a text; the userinfo is everything up to the last "@" before
# the host part ends (a password may itself contain "@" or ":").
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*@)")
# An endpoint given without a scheme (``user:secret@host``): a single token.
_BARE = re.compile(r"^[^/?#\s]*@")


def redact_url(text: str) -> str:
    """``text`` with the user and password of every URL in it replaced.

    ``https://user:secret@host/path`` becomes ``https://<redacted>@host/path``, and an
    endpoint without a scheme, ``user:secret@host``, ``<redacted>@host``; a URL without
    credentials, or any other text, is returned unchanged.
    """
    if "@" not in text:
        return text
    redacted = _USERINFO.sub(lambda m: f"{m['scheme']}{REDACTED}@", text)
    if redacted == text and "://" not in text:
        return _BARE.sub(f"{REDACTED}@", text, count=1)
    return redacted


def basic_auth(url: str) -> tuple[str, str | None]:
    """``url`` without its ``user:password@``, and the Basic ``Authorization`` value for it.

    For clients (urllib) that would otherwise take the credentials for part of the host.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, None
    user, password = (urllib.parse.unquote(v or "") for v in (parts.username, parts.password))
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])), (
        f"Basic {token}"
    )


def redact_header(name: str, value: str) -> str:
    """A header value fit to show: credentials and cookie values replaced, their shape kept.

    ``Authorization: Basic dXNlcjpwdw==`` shows as ``Basic <redacted>``; ``Cookie:
    sp=abc; session=xyz`` as ``sp=<redacted>; session=<redacted>``.
    """
    lowered = name.lower()
    if lowered not in SECRET_HEADERS:
        return value
    if lowered == "cookie":
        names = (part.strip().partition("=")[0] for part in value.split(";") if part.strip())
        return "; ".join(f"{cookie}={REDACTED}" for cookie in names)
    scheme, _, credentials = value.strip().partition(" ")
    return f"{scheme} {REDACTED}" if credentials else REDACTED


class RedactingFilter(logging.Filter):
    """A handler filter that takes URL credentials out of every record it passes.

    For handlers the ``snowplow-tracker`` command installs itself: it covers lines
    logged by the libraries it runs (uvicorn) as well as ours.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_url(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
