"""A loopback HTTP/1.1 sink that answers every request at once with ``200``.

It is the fastest collector stand-in we can write with the standard library,
so the benchmark measures the trackers, not the server. It keeps connections
alive, counts requests and events, and answers ``GET /stats`` with those
counts as JSON. Run it as its own process (``python bench/sink.py``): it prints
``PORT <n>`` once it listens and pins itself to ``--cpu`` when it can.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys

_OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nContent-Type: text/plain\r\n\r\n"
_GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"  # noqa: E501
_GIF_OK = (
    b"HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: "
    + str(len(_GIF)).encode()
    + b"\r\n\r\n"
    + _GIF
)


class Stats:
    def __init__(self) -> None:
        self.requests = 0
        self.events = 0
        self.bytes = 0

    def as_json(self) -> bytes:
        body = json.dumps(
            {"requests": self.requests, "events": self.events, "bytes": self.bytes}
        ).encode()
        head = f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
        return head.encode() + b"\r\n\r\n" + body


class SinkProtocol(asyncio.Protocol):
    """Parses just enough HTTP/1.1 (request line, Content-Length) to answer pipelined requests."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        replies = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end]
            length = _content_length(head)
            total = end + 4 + length
            if len(self.buffer) < total:
                break
            body = self.buffer[end + 4 : total]
            self.buffer = self.buffer[total:]
            replies.append(self._answer(head, body))
        if replies and self.transport is not None:
            self.transport.write(b"".join(replies))

    def _answer(self, head: bytes, body: bytes) -> bytes:
        stats = self.stats
        if head.startswith(b"GET /stats"):
            return stats.as_json()
        stats.requests += 1
        stats.bytes += len(head) + len(body)
        if head.startswith(b"POST"):
            # Every tracker puts exactly one "eid" in each event it sends.
            stats.events += body.count(b'"eid"')
            return _OK
        stats.events += 1
        return _GIF_OK


def _content_length(head: bytes) -> int:
    lower = head.lower()
    start = lower.find(b"\r\ncontent-length:")
    if start < 0:
        return 0
    start += len(b"\r\ncontent-length:")
    stop = lower.find(b"\r\n", start)
    return int(lower[start : stop if stop >= 0 else None].strip())


def pin(cpu: int | None) -> None:
    """Keep to one core, when the platform allows and the core exists."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        return
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {cpu})


async def serve(host: str, port: int) -> None:
    stats = Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SinkProtocol(stats), host, port, backlog=256)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cpu", type=int, default=None, help="core to pin the sink to")
    args = parser.parse_args(argv)
    if not args.host.startswith("127.") and args.host not in ("localhost", "::1"):
        parser.error("the sink only listens on loopback addresses")
    pin(args.cpu)
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
