"""uvicorn's HTTP protocol with the two deadlines a server beside a browser needs.

* A request must arrive, headers and body, within ``request_timeout`` seconds of
  its first byte; otherwise it is answered 408 and its connection closed (a slow
  client cannot hold a connection and a task for ever).
* A connection that carries no request is closed after ``timeout_keep_alive``
  seconds: after a response (uvicorn's keep-alive timeout) and, unlike plain
  uvicorn, also from the moment it is opened.

It works over either uvicorn implementation (httptools, or h11 where httptools
is missing) through what both share: ``data_received``, ``cycle`` and the
keep-alive timer.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

logger = logging.getLogger("snowplow_tracker.collector")
REQUEST_TIMEOUT = 10.0
IDLE_TIMEOUT = 30.0
_MESSAGE = b"request not received in time"


class _Deadlines:
    """Mixed in before a uvicorn HTTP protocol class (see ``protocol_class``)."""

    request_timeout: float = REQUEST_TIMEOUT
    # Provided by the uvicorn protocol this is mixed into.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    cycle: Any
    timeout_keep_alive: float
    timeout_keep_alive_task: asyncio.TimerHandle | None

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._request_timer: asyncio.TimerHandle | None = None
        self._before: Any = None  # the cycle that was current when this request began
        # Idle from the start: a connection that never sends a byte is closed too.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive,
            self.timeout_keep_alive_handler,  # type: ignore[attr-defined]
        )

    def data_received(self, data: bytes) -> None:
        if self._request_timer is None:  # the first bytes of a request
            self._before = self.cycle
            self._request_timer = self.loop.call_later(self.request_timeout, self._timed_out)
        super().data_received(data)  # type: ignore[misc]
        cycle = self.cycle
        if self._request_timer is not None and cycle is not self._before and not cycle.more_body:
            self._request_timer.cancel()  # it has all arrived
            self._request_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._request_timer is not None:
            self._request_timer.cancel()
            self._request_timer = None
        super().connection_lost(exc)  # type: ignore[misc]

    def _timed_out(self) -> None:
        self._request_timer = None
        if self.transport.is_closing():
            return
        before = self._before
        arrived = self.cycle if self.cycle is not before else None  # its headers, at least
        earlier_busy = before is not None and not before.response_complete  # pipelined
        if earlier_busy or (arrived is not None and arrived.response_started):
            self.transport.close()  # a response is on the wire: no room for a 408
            return
        if arrived is not None:  # the app waits for the rest of the body: it gets a disconnect
            arrived.disconnected = True
            arrived.message_event.set()
        logger.info("408: a request from %s did not arrive within %g s", _peer(self.transport),
                    self.request_timeout)  # fmt: skip
        self.transport.write(
            b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(_MESSAGE), _MESSAGE)
        )
        self.transport.close()


def _peer(transport: asyncio.Transport) -> str:
    peer = transport.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else "a client"


def protocol_class(request_timeout: float, parser: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol with the deadlines above: httptools where it is installed (the
    fastest), else h11; ``parser`` picks one (``"httptools"`` or ``"h11"``)."""
    base: Any
    if parser != "h11":
        try:
            from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
        except ImportError:  # pragma: no cover - httptools is in the collector extra (CPython)
            if parser == "httptools":
                raise
            parser = "h11"
    if parser == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    timed: type[asyncio.Protocol] = type(
        "TimedHttpProtocol", (_Deadlines, base), {"request_timeout": request_timeout}
    )
    return timed
