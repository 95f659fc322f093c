"""Credentials never reach a log line or a ``repr()``: :func:`redact_url` hides them."""

from __future__ import annotations

import re

# scheme://userinfo@host...: the userinfo is everything between "//" and the last "@" before
# the path (a password may itself contain "@" or ":").
_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
_BARE = re.compile(r"^(?P<userinfo>[^/?#]*)@")


def redact_url(url: str) -> str:
    """``url`` with any user name and password replaced by ``***``.

    ``https://user:secret@c.example.com/i`` becomes ``https://***@c.example.com/i``;
    an endpoint without a scheme (``user:secret@host``) is redacted too.
    """
    if "@" not in url:
        return url
    match = _USERINFO.match(url)
    if match is not None:
        return f"{match['scheme']}***@{url[match.end() :]}"
    match = _BARE.match(url)
    if match is not None:
        return f"***@{url[match.end() :]}"
    return url
