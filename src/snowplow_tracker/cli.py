"""The ``snowplow-tracker`` command: ``demo``, ``collector`` and ``redis-worker``.

Each subcommand has its own ``_add_<name>`` (arguments) and ``_run_<name>``
(action) function, registered in ``COMMANDS``. A missing extra is reported in one
line naming it, with exit status 2 (a usage error: the install is incomplete).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Optional

from ._distribution import DISTRIBUTION
from ._redis_batch import MAX_EVENT_BYTES
from ._version import __version__
from .exceptions import MissingExtraError

Runner = Callable[[argparse.Namespace], int]


class _Formatter(argparse.HelpFormatter):
    """Wraps help text without breaking words at hyphens (pip lines, redis-worker)."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        text = " ".join(text.split())
        return textwrap.fill(text, width, initial_indent=indent, subsequent_indent=indent,
                             break_on_hyphens=False)  # fmt: skip

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


# -- demo ---------------------------------------------------------------------------------------


def _add_demo(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        formatter_class=_Formatter,
        help="send every event type through every emitter to a local collector "
        "(starting one needs the collector extra)",
        description="Track every event type through each in-process emitter and show what the "
        "collector made of it. Uses a collector already running on 127.0.0.1:9090 if there is "
        "one, else starts one on a free port (that needs the collector extra).",
    )
    demo.add_argument("--collector", metavar="URL", help="use the collector at URL")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    demo.add_argument(
        "--keep", action="store_true", help="keep the demo's own collector running afterwards"
    )
    demo.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(url=args.collector, progress=not args.no_progress, keep=args.keep)


# -- collector ----------------------------------------------------------------------------------


def default_db() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "snowplow-tracker" / "collector.sqlite3"


def _add_collector(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    collector = commands.add_parser(
        "collector",
        formatter_class=_Formatter,
        help="run a local validating collector with a Micro-compatible API and a web UI "
        "(needs the collector extra)",
        description="A local Snowplow collector: validates events against Iglu schemas like the "
        "real pipeline, answers Snowplow Micro's /micro API, and shows events at /micro/ui. "
        f"Needs the collector extra: pip install '{DISTRIBUTION}[collector]'.",
    )
    collector.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    collector.add_argument("--port", type=int, default=9090, help="port (9090, as Micro)")
    collector.add_argument(
        "--schemas", nargs="+", default=[], metavar="DIR", type=Path,
        help="directories of Iglu schemas (vendor/name/jsonschema/version), searched first",
    )  # fmt: skip
    storage = collector.add_mutually_exclusive_group()
    storage.add_argument("--db", type=Path, help=f"SQLite file to keep events in ({default_db()})")
    storage.add_argument("--memory", action="store_true", help="keep events in memory only")
    collector.add_argument("--max-events", type=int, default=100_000, help="events kept (100000)")
    collector.add_argument(
        "--registry", action="append", default=[], metavar="URL",
        help="also fetch schemas from this Iglu registry (opt-in; e.g. http://host/api/schemas)",
    )  # fmt: skip
    collector.add_argument(
        "--registry-timeout", type=float, default=3.0, metavar="SECONDS",
        help="how long an event waits for a registry before its schema is not resolved (3)",
    )  # fmt: skip
    collector.add_argument(
        "--request-timeout", type=float, default=10.0, metavar="SECONDS",
        help="a request (headers and body) must arrive within this, else 408 (10)",
    )  # fmt: skip
    collector.add_argument(
        "--idle-timeout", type=float, default=30.0, metavar="SECONDS",
        help="close a connection idle this long (30)",
    )  # fmt: skip
    collector.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN",
        help="let web pages from ORIGIN (e.g. http://localhost:3000, or *) use the Micro API; "
        "by default only the collector's own UI can",
    )  # fmt: skip
    collector.add_argument(
        "--keep-secrets", action="store_true",
        help="keep Cookie, Authorization and Proxy-Authorization headers in full (default: "
        "their values are redacted in what is stored and shown)",
    )  # fmt: skip
    collector.add_argument("--quiet", action="store_true", help="do not log every event")
    collector.set_defaults(run=_run_collector)


def _run_collector(args: argparse.Namespace) -> int:
    from ._redact import RedactingFilter
    from .collector import Collector
    from .collector.server import tune_gc_for_serving

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter())
    db = None if args.memory else (args.db or default_db())
    stop = threading.Event()

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()

    # Ctrl-C and SIGTERM both stop the collector cleanly, whenever they come.
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        collector = Collector(
            args.host, args.port, args.schemas, db=db, max_events=args.max_events,
            registries=args.registry, log_events=not args.quiet,
            registry_timeout=args.registry_timeout, request_timeout=args.request_timeout,
            idle_timeout=args.idle_timeout, allow_origins=args.allow_origin,
            keep_secrets=args.keep_secrets,
        ).start()  # fmt: skip
    except OSError as exc:
        print(f"snowplow-tracker collector: cannot listen on {args.host}:{args.port}: {exc}",
              file=sys.stderr)  # fmt: skip
        return 1
    tune_gc_for_serving()
    try:
        print(f"Collector listening on {collector.url}  (events kept in {db or 'memory'})")
        print(f"  web UI:     {collector.ui_url}")
        print(f"  Micro API:  {collector.url}/micro/all, /micro/good, /micro/bad, /micro/reset")
        print(f"  emitter:    Emitter({collector.endpoint!r})", flush=True)
        stop.wait()
    finally:
        collector.stop()
    return 0


# -- redis-worker ---------------------------------------------------------------------------------


def _add_redis_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "redis-worker",
        formatter_class=_Formatter,
        help="send the events a RedisEmitter stored in Redis to a collector "
        "(needs the redis extra)",
        description="Drain a Redis list into a collector, at least once, until SIGINT/SIGTERM. "
        f"Prints its counts as JSON when it stops. Needs the redis extra: "
        f"pip install '{DISTRIBUTION}[redis]'.",
    )
    worker.add_argument(
        "--redis-url", default=None, help="default: $SNOWPLOW_REDIS_URL or redis://localhost:6379/0"
    )
    worker.add_argument("--key", default="snowplow", help="the Redis list (default: snowplow)")
    worker.add_argument("--endpoint", required=True, help="collector host[:port] or URL")
    worker.add_argument("--protocol", default="http", choices=("http", "https"))
    worker.add_argument("--method", default="get", choices=("get", "post"))
    worker.add_argument("--batch-size", type=int, default=100, help="events per Redis round trip")
    worker.add_argument(
        "--shutdown-timeout", type=float, default=10.0, help="seconds to finish sending at exit"
    )
    worker.add_argument(
        "--heartbeat-ttl", type=float, default=15.0, help="seconds before a silent worker is dead"
    )
    worker.add_argument(
        "--scan-interval",
        type=float,
        default=300.0,
        help="seconds between scans for processing lists of workers in no set",
    )
    worker.add_argument(
        "--backoff-cap", type=float, default=30.0, help="longest wait after failure"
    )
    worker.add_argument(
        "--max-event-bytes",
        type=int,
        default=MAX_EVENT_BYTES,
        help="larger stored values go to {key}:invalid (default: 1 MiB)",
    )
    worker.add_argument(
        "--stop-when-empty", action="store_true", help="exit when the list is empty"
    )
    worker.add_argument("--log-level", default="INFO")
    worker.set_defaults(run=_run_redis_worker)


def _run_redis_worker(args: argparse.Namespace) -> int:
    from ._redis import default_client
    from .emitters import Emitter
    from .redis_worker import RedisWorker

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    buffer_size = args.batch_size if args.method == "post" else 1
    emitter = Emitter(args.endpoint, args.protocol, method=args.method, buffer_size=buffer_size)
    worker = RedisWorker(
        emitter,
        args.key,
        default_client(args.redis_url),
        batch_size=args.batch_size,
        shutdown_timeout=args.shutdown_timeout,
        heartbeat_ttl=args.heartbeat_ttl,
        scan_interval=args.scan_interval,
        backoff_cap=args.backoff_cap,
        max_event_bytes=args.max_event_bytes,
    )
    worker.run(stop_when_empty=args.stop_when_empty)
    print(json.dumps({"worker_id": worker.worker_id, **worker.stats()}), flush=True)
    return 0


COMMANDS = [_add_demo, _add_collector, _add_redis_worker]


def parser() -> argparse.ArgumentParser:
    main_parser = argparse.ArgumentParser(
        prog="snowplow-tracker",
        formatter_class=_Formatter,
        description=f"Tools of {DISTRIBUTION} {__version__}, the Snowplow tracker for Python.",
        epilog="Extras: collector (collector; demo without a running collector), redis "
        f"(redis-worker). Install with pip install '{DISTRIBUTION}[collector,redis]'.",
    )
    main_parser.add_argument("--version", action="version", version=f"{DISTRIBUTION} {__version__}")
    commands = main_parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(commands)
    return main_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    run: Runner = args.run
    try:
        return run(args)
    except MissingExtraError as exc:
        print(
            f"snowplow-tracker {args.command}: needs the {exc.extra!r} extra "
            f"({exc.module} is not installed): pip install '{DISTRIBUTION}[{exc.extra}]'",
            file=sys.stderr,
        )
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
