"""The emitters' argument checks: every bad argument refused at the call, naming it."""

from __future__ import annotations

from . import contracts
from ._delivery import OVERFLOW_POLICIES
from ._redact import redact_url
from .contracts import fail_value
from .retry import RetryPolicy


def check_emitter_args(
    endpoint: object,
    protocol: object,
    port: object,
    method: object,
    buffer_size: object,
    byte_limit: object,
) -> None:
    where = "Emitter()"
    contracts.non_empty_string(where, "endpoint", endpoint)
    contracts.one_of(where, "protocol", protocol, ("http", "https"))
    if port is not None:
        contracts.integer(where, "port", port, minimum=1)
        if isinstance(port, int) and port > 65535:
            fail_value(where, "port", "at most 65535", port)
    contracts.one_of(where, "method", method, ("get", "post"))
    if buffer_size is not None:
        contracts.integer(where, "buffer_size", buffer_size, minimum=1)
    if byte_limit is not None:
        contracts.integer(where, "byte_limit", byte_limit, minimum=1)
    if isinstance(endpoint, str) and any(ch.isspace() for ch in endpoint):
        fail_value(where, "endpoint", "a host name without spaces", endpoint)


def check_netloc(netloc: str, port: object) -> None:
    """The host part of an endpoint (after any scheme) names a host, and a port only once."""
    where = "Emitter()"
    host = netloc.split("/", 1)[0].rsplit("@", 1)[-1]
    if not host or host.startswith(":"):
        fail_value(where, "endpoint", "a URL or host name with a host", redact_url(netloc))
    after_host = host.rsplit("]", 1)[-1] if host.startswith("[") else host
    port_text = after_host.partition(":")[2]
    if ":" in after_host and not port_text.isdigit():  # "http:" is what "http://" leaves
        fail_value(where, "endpoint", "a URL or host[:port] with a port number", redact_url(netloc))
    if ":" in after_host and port is not None:
        fail_value(where, "port", "None when the endpoint has a port already", port)


def check_transport_args(
    request_timeout: object, max_event_bytes: object, block_timeout: object, transport: object
) -> None:
    where = "Emitter()"
    if isinstance(request_timeout, tuple):
        if len(request_timeout) != 2:
            contracts.fail_value(
                where, "request_timeout", "(connect, read) seconds", request_timeout
            )
        for part in request_timeout:
            contracts.positive(where, "request_timeout", part)
    elif request_timeout is not None:
        contracts.positive(where, "request_timeout", request_timeout)
    if max_event_bytes is not None:
        contracts.integer(where, "max_event_bytes", max_event_bytes, minimum=1)
    contracts.number(where, "block_timeout", block_timeout)
    if block_timeout < 0:  # type: ignore[operator]
        contracts.fail_value(where, "block_timeout", "a number >= 0", block_timeout)
    if transport is not None and not callable(getattr(transport, "send", None)):
        contracts.fail_type(where, "transport", "a Transport (with send and close)", transport)


def check_delivery_args(
    retry: object,
    flush_interval: object,
    max_queue_size: object,
    overflow: object,
    exit_timeout: object,
) -> None:
    where = "Emitter()"
    if retry is not None and not isinstance(retry, RetryPolicy):
        contracts.fail_type(where, "retry", "a RetryPolicy", retry)
    contracts.number(where, "flush_interval", flush_interval, optional=True)
    if flush_interval is not None and flush_interval <= 0:  # type: ignore[operator]
        contracts.fail_value(where, "flush_interval", "a number > 0, or None", flush_interval)
    if max_queue_size is not None:
        contracts.integer(where, "max_queue_size", max_queue_size, minimum=1)
    contracts.one_of(where, "overflow", overflow, OVERFLOW_POLICIES)
    contracts.number(where, "exit_timeout", exit_timeout)
