"""What every framework integration does with a request, whatever the framework.

An integration reads the request its own way and hands the plain values to
:class:`RequestTracking`, which makes the request's subject (client IP, user agent,
language, user id, the browser tracker's and the collector's cookie ids) and, when
asked, tracks a page view. A failure here is logged and the request goes on:
tracking never breaks a request.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ipaddress
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Optional, Union

from .. import contracts
from ..contracts import fail_type, fail_value
from ..subject import Subject
from ..tracker import Tracker

logger = logging.getLogger("snowplow_tracker.integrations")

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

#: The browser tracker's id cookie is ``_sp_id.<hash of the domain>`` by default.
DEFAULT_DOMAIN_COOKIE = "_sp_id."
#: The collector's network user id cookie.
DEFAULT_NETWORK_COOKIE = "sp"
DEFAULT_FLUSH_TIMEOUT = 5.0

#: Ids the trackers make: UUIDs, or at least short runs of URL-safe characters.
_ID = re.compile(r"^[A-Za-z0-9_-]{1,128}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_MAX_USER_AGENT = 1000
_CACHE_SIZE = 4096
_MAX_FIELD = 128


class RequestTracking:
    """The options every integration takes, and what they do with a request.

    * ``tracker``: the app's one :class:`~snowplow_tracker.Tracker`;
    * ``trusted_proxies``: addresses or networks (``"10.0.0.0/8"``) of the proxies in
      front of the app; ``X-Forwarded-For`` is read only from a connection from one
      of them, right to left, the client being the first address that is not one;
    * ``user_id``: ``callable(request) -> str | None``; the default reads the
      framework's authenticated user where there is one;
    * ``page_views``: track a page view (``GET`` only) per request, off by default;
      ``include`` and ``exclude`` are regular expressions matched at the start of the
      path (no ``include``: every path);
    * ``flush_timeout``: the bound, in seconds, of the flush at shutdown where the
      integration flushes itself (the ASGI lifespan);
    * ``domain_cookie``: the browser tracker's id cookie: a name, or a prefix ending
      in ``.`` (the default ``_sp_id.``); ``network_cookie``: the collector's (``sp``).
    """

    def __init__(
        self,
        tracker: Tracker,
        *,
        trusted_proxies: Iterable[str] = (),
        user_id: Optional[Callable[[Any], Optional[str]]] = None,
        page_views: bool = False,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        domain_cookie: str = DEFAULT_DOMAIN_COOKIE,
        network_cookie: str = DEFAULT_NETWORK_COOKIE,
    ) -> None:
        where = "RequestTracking()"
        if not isinstance(tracker, Tracker):
            fail_type(where, "tracker", "a Tracker", tracker)
        contracts.optional_callable(where, "user_id", user_id)
        contracts.number(where, "flush_timeout", flush_timeout)
        contracts.non_empty_string(where, "domain_cookie", domain_cookie)
        contracts.non_empty_string(where, "network_cookie", network_cookie)
        self.tracker = tracker
        self.trusted_proxies = _networks(where, trusted_proxies)
        self._trusted_cache: dict[str, bool] = {}
        self.user_id = user_id
        self.page_views = bool(page_views)
        self.include = _patterns(where, "include", include)
        self.exclude = _patterns(where, "exclude", exclude)
        self.flush_timeout = float(flush_timeout)
        self.domain_cookie = domain_cookie
        self.network_cookie = network_cookie

    # -- the request's subject -----------------------------------------------------------------

    def subject(
        self,
        *,
        remote_addr: str | None,
        forwarded_for: str | None,
        user_agent: str | None,
        accept_language: str | None,
        cookies: Mapping[str, str],
        user_id: str | None,
    ) -> Subject:
        """The subject of one request, from what the framework read of it."""
        subject = Subject()
        pairs = subject.standard_nv_pairs
        del pairs["p"]  # the platform stays the tracker's
        ip = self.client_ip(remote_addr, forwarded_for)
        if ip:
            pairs["ip"] = ip
        if user_agent:
            pairs["ua"] = user_agent[:_MAX_USER_AGENT]
        language = _language(accept_language)
        if language:
            pairs["lang"] = language
        if user_id:
            pairs["uid"] = str(user_id)[:255]
        pairs.update(self._cookie_ids(cookies))
        return subject

    def client_ip(self, remote_addr: str | None, forwarded_for: str | None) -> str | None:
        """The client's address: the connection's, or from ``X-Forwarded-For`` via a trusted
        proxy (the rightmost address that is not a trusted proxy)."""
        peer = _canonical_ip(remote_addr) if remote_addr else None
        if peer is None:
            return None  # not an IP connection (a Unix socket, a test client): none to send
        if not forwarded_for or not self._trusted(peer):
            return peer
        client = peer
        for hop in reversed(forwarded_for.split(",")):
            address = _canonical_ip(hop.strip())
            if address is None:
                break  # garbage: the last trusted hop's word is all there is
            client = address
            if not self._trusted(address):
                break
        return client

    def _trusted(self, address: str) -> bool:
        # Requests come through the same few proxies: each address is judged once.
        trusted = self._trusted_cache.get(address)
        if trusted is None:
            ip = ipaddress.ip_address(address)
            trusted = any(ip in network for network in self.trusted_proxies)
            if len(self._trusted_cache) >= _CACHE_SIZE:
                self._trusted_cache.clear()
            self._trusted_cache[address] = trusted
        return trusted

    def _cookie_ids(self, cookies: Mapping[str, str]) -> dict[str, Any]:
        ids: dict[str, Any] = {}
        value = self._domain_cookie(cookies)
        if value:
            ids.update(parse_sp_id(value))
        network = cookies.get(self.network_cookie)
        if network and _ID.match(network):
            ids["tnuid"] = network
        return ids

    def _domain_cookie(self, cookies: Mapping[str, str]) -> str | None:
        name = self.domain_cookie
        if not name.endswith("."):
            return cookies.get(name)
        return next((v for k, v in cookies.items() if k.startswith(name)), None)

    # -- page views ----------------------------------------------------------------------------

    def wants_page_view(self, method: str, path: str) -> bool:
        if not self.page_views or method != "GET":
            return False
        if self.include and not any(p.match(path) for p in self.include):
            return False
        return not any(p.match(path) for p in self.exclude)

    def track_page_view(self, url: str, referrer: str | None) -> None:
        """A page view of ``url`` in the current scope; a failure is logged, not raised."""
        try:
            self.tracker.track_page_view(url, referrer=referrer or None)
        except Exception:
            logger.exception("tracking the page view of %s failed", url)

    # -- shutdown ------------------------------------------------------------------------------

    async def flush_async(self) -> None:
        """Flush every emitter of the tracker within ``flush_timeout`` s, off the event loop."""
        deadline = time.monotonic() + self.flush_timeout
        for emitter in self.tracker.emitters:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                flush = getattr(emitter, "flush", None)
                if inspect.iscoroutinefunction(flush):  # the AsyncioEmitter
                    await flush(timeout=remaining)
                else:
                    await asyncio.to_thread(flush_emitter, emitter, remaining)
            except Exception:
                logger.exception("flushing %r at shutdown failed", emitter)


def flush_emitter(emitter: Any, timeout: float) -> None:
    """``emitter``'s flush, bounded by ``timeout`` where the emitter takes one."""
    flush = getattr(emitter, "sync_flush", None) or getattr(emitter, "flush", None)
    if not callable(flush):
        return
    try:
        takes_timeout = "timeout" in inspect.signature(flush).parameters
    except (TypeError, ValueError):
        takes_timeout = False
    if takes_timeout:
        flush(timeout=timeout)
    else:
        flush()


def parse_sp_id(value: str) -> dict[str, Any]:
    """``duid``, ``vid`` and ``sid`` from the browser tracker's ``_sp_id.*`` cookie.

    Its value is ``domainUserId.createdTs.visitCount.nowTs.lastVisitTs.sessionId...``:
    the visit count is the session index. A field that is not what the tracker
    writes is left out (the cookie is the client's to forge).
    """
    parts = value.split(".")
    ids: dict[str, Any] = {}
    if parts[0] and _ID.match(parts[0]):
        ids["duid"] = parts[0]
    if len(parts) > 2 and parts[2].isdigit() and 0 < int(parts[2]) < 2**31:
        ids["vid"] = int(parts[2])
    if len(parts) > 5 and _UUID.match(parts[5]):
        ids["sid"] = parts[5]
    return ids


def parse_cookie_header(header: str | None) -> dict[str, str]:
    """The cookies of a ``Cookie`` header, leniently (first of a repeated name wins)."""
    cookies: dict[str, str] = {}
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in cookies:
            cookies[name] = value.strip().strip('"')
    return cookies


def _language(header: str | None) -> str | None:
    """The first language of ``Accept-Language`` (``en-GB,en;q=0.8`` -> ``en-GB``)."""
    if not header:
        return None
    first = header.split(",", 1)[0].split(";", 1)[0].strip()
    return first[:_MAX_FIELD] if first and first != "*" else None


@functools.lru_cache(maxsize=_CACHE_SIZE)
def _canonical_ip(text: str) -> str | None:
    """``text`` as an IP address in canonical form (a port dropped), or None if it is not one.

    Cached: parsing with :mod:`ipaddress` is most of what reading the client IP costs, and a
    server sees the same proxies and clients again and again.
    """
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else text
    elif text.count(":") == 1:  # v4:port
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _networks(where: str, values: Iterable[str]) -> tuple[IPNetwork, ...]:
    if isinstance(values, str):
        values = [values]
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except (TypeError, ValueError):
            fail_value(where, "trusted_proxies", "IP addresses or networks", value)
    return tuple(networks)


def _patterns(where: str, name: str, values: Sequence[str]) -> tuple[re.Pattern[str], ...]:
    if isinstance(values, str):
        values = [values]
    patterns = []
    for value in values:
        try:
            patterns.append(re.compile(value))
        except (TypeError, re.error):
            fail_value(where, name, "regular expressions", value)
    return tuple(patterns)
