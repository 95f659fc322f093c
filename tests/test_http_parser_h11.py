"""The built-in client's response parser against h11 on generated responses: the same
status, framing and keep-alive, or both reject the response."""

from __future__ import annotations

import http.client
import socket
import time
from typing import Any, Union

import h11
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snowplow_tracker._pool import (
    _HEAD_END,
    Connection,
    ResponseError,
    _parse_head,
    read_response,
)

Verdict = Union[str, tuple[int, str, bool]]

OWS = st.sampled_from([b"", b" ", b"\t", b"  "])
EOL = st.sampled_from([b"\r\n"] * 6 + [b"\n"])


def framing_of(status: int, headers: dict[bytes, bytes]) -> str:
    if status in (204, 304):
        return "none"
    if b"transfer-encoding" in headers:
        return "chunked"
    if b"content-length" in headers:
        return "length"
    return "close"


def with_h11(data: bytes) -> Verdict:
    conn = h11.Connection(h11.CLIENT)
    conn.send(
        h11.Request(method="POST", target="/", headers=[("Host", "c"), ("Content-Length", "0")])
    )
    conn.send(h11.EndOfMessage())
    conn.receive_data(data)
    conn.receive_data(b"")
    final: Any = None
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Response):
                final = event
            elif isinstance(event, h11.EndOfMessage):
                break
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return "reject"
    except h11.RemoteProtocolError:
        return "reject"
    headers = {name.lower(): value for name, value in final.headers}
    framing = framing_of(final.status_code, headers)
    # A body read to the end of the connection leaves no connection to keep.
    keep = conn.their_state is h11.DONE and not conn.trailing_data[0] and framing != "close"
    return final.status_code, framing, keep


def with_ours(data: bytes) -> Verdict:
    server, client = socket.socketpair()
    try:
        server.sendall(data)
        server.shutdown(socket.SHUT_WR)
        conn = Connection(client, None)
        try:
            response = read_response(conn, time.monotonic() + 5)
        except (http.client.HTTPException, OSError):
            return "reject"
    finally:
        server.close()
        client.close()
    head = _final_head(data)
    framing = framing_of(response.status, _framing_headers(head))
    return response.status, framing, response.keep_alive


def _final_head(data: bytes) -> bytes:
    """The head of the last (non-1xx) response in ``data``, as our reader split it."""
    rest = data
    while True:
        match = _HEAD_END.search(rest)
        assert match is not None
        head, rest = rest[: match.start()], rest[match.end() :]
        if _parse_head(head).status >= 200:
            return head


def _framing_headers(head: bytes) -> dict[bytes, bytes]:
    parsed = _parse_head(head)
    found: dict[bytes, bytes] = {}
    if parsed.chunked:
        found[b"transfer-encoding"] = b"chunked"
    if parsed.length is not None:
        found[b"content-length"] = parsed.length
    return found


@st.composite
def chunked_body(draw: st.DrawFn) -> bytes:
    body = b""
    for chunk in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=4)):
        size = draw(st.sampled_from([f"{len(chunk):x}", f"{len(chunk):X}", f"0{len(chunk):x}"]))
        ext = draw(st.sampled_from([b"", b";x=y", b";n"]))
        footer = draw(st.sampled_from([b"\r\n"] * 18 + [b"\n", b"xx"]))
        body += size.encode() + ext + b"\r\n" + chunk + footer
    body += draw(st.sampled_from([b"0\r\n"] * 4 + [b"0;z\r\n", b"00\r\n", b"g\r\n"]))
    trailers = draw(st.sampled_from([b""] * 3 + [b"T: 1\r\n", b"Bad Trailer\r\n"]))
    return body + trailers + b"\r\n"


@st.composite
def response(draw: st.DrawFn) -> bytes:
    eol = draw(EOL)
    out = b""
    for _ in range(draw(st.integers(0, 2))):  # interim answers first
        interim = draw(st.sampled_from([b"HTTP/1.1 100 Continue", b"HTTP/1.1 103 Early Hints"]))
        out += interim + eol + draw(st.sampled_from([b"", b"Link: </a>" + eol])) + eol
    version = draw(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]))
    status = draw(st.sampled_from([200, 201, 204, 301, 304, 307, 400, 413, 429, 500, 503]))
    reason = draw(st.sampled_from([b" OK", b"", b" ", b" Service Unavailable"]))
    status_line = version + b" " + str(status).encode() + reason
    status_line = draw(
        st.sampled_from(
            [status_line] * 12
            + [b"HTTP/1.1 20 OK", b"HTTP/1.1  200 OK", b"HTTP/11 200 OK", b"http/1.1 200 OK"]
            + [b"HTTP/1.1 200OK", b"HTTP/1.1 2000 OK", b"", b"ICY 200 OK"]
        )
    )
    body = draw(st.binary(max_size=30))
    lines: list[bytes] = []
    framing = draw(st.sampled_from(["length", "chunked", "close", "both"]))
    if framing in ("length", "both"):
        length = str(len(body)).encode()
        lines.append(
            b"Content-Length:"
            + draw(OWS)
            + draw(
                st.sampled_from(
                    [length] * 8
                    + [length + b", " + length, b"abc", b"-1", length + b", 99", b"1" * 21]
                )
            )
            + draw(OWS)
        )
        if draw(st.booleans()):  # repeated, maybe with a different value
            lines.append(b"content-length: " + draw(st.sampled_from([length, b"7"])))
    if framing in ("chunked", "both"):
        coding = draw(st.sampled_from([b"chunked"] * 6 + [b"Chunked", b"gzip", b"gzip, chunked"]))
        lines.append(b"Transfer-Encoding: " + coding)
        if draw(st.integers(0, 9)) == 0:
            lines.append(b"Transfer-Encoding: chunked")
        body = draw(chunked_body())
    lines.extend(
        draw(
            st.lists(
                st.sampled_from(
                    [
                        b"Connection: close",
                        b"Connection: keep-alive",
                        b"connection:Keep-Alive, CLOSE",
                        b"Connection: upgrade",
                        b"Retry-After: 5",
                        b"Location: /elsewhere",
                        b"Content-Type: image/gif",
                        b"X-Junk: a b\tc",
                        b"X-Empty:",
                        b" folded continuation",
                        b"Bad Header: x",
                        b"NoColon",
                        b"X-Nul: a\x00b",
                    ]
                ),
                max_size=4,
            )
        )
    )
    lines = draw(st.permutations(lines))
    head = status_line + eol + b"".join(line + eol for line in lines) + eol
    return out + head + body


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(response())
def test_our_parser_agrees_with_h11(data: bytes) -> None:
    ours = with_ours(data)
    assert ours == with_h11(data), data


def test_a_response_h11_accepts_is_read_by_ours_too() -> None:
    """The generator above does produce valid responses, not only rejections."""
    data = b"HTTP/1.1 503 Busy\r\nRetry-After: 5\r\nContent-Length: 4\r\n\r\nbusy"
    assert with_ours(data) == with_h11(data) == (503, "length", True)
    try:
        _parse_head(b"HTTP/1.1 200 OK\r\nBad Header: x")
    except ResponseError:
        pass
    else:
        raise AssertionError("a header name with a space was accepted")
