"""The ``snowplow-tracker`` command."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="snowplow-tracker")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="send the release-note examples to a local collector")
    _add_redis_worker(commands)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        return run_demo()
    if args.command == "redis-worker":
        return _run_redis_worker(args)
    return 2  # pragma: no cover - argparse rejects unknown commands


def _add_redis_worker(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = commands.add_parser(
        "redis-worker",
        help="send the events a RedisEmitter stored in Redis to a collector",
        description="Drain a Redis list into a collector, at least once, until SIGINT/SIGTERM. "
        "Prints its counts as JSON when it stops.",
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
        "--backoff-cap", type=float, default=30.0, help="longest wait after failure"
    )
    worker.add_argument(
        "--stop-when-empty", action="store_true", help="exit when the list is empty"
    )
    worker.add_argument("--log-level", default="INFO")


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
        backoff_cap=args.backoff_cap,
    )
    worker.run(stop_when_empty=args.stop_when_empty)
    print(json.dumps({"worker_id": worker.worker_id, **worker.stats()}), flush=True)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
