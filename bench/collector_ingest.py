"""Collector ingest throughput with full validation: events/s in tp2 POST batches.

Standalone: ``python bench/collector_ingest.py [--events N] [--batch N] [--store memory|sqlite]
[--mode http|inproc] [--rounds N] [--json]``. In ``http`` mode (default) the collector runs in a
child process pinned to one CPU and a client on the other posts pre-built batches
over one keep-alive connection; every event goes through the whole pipeline
(adapter, atomic fields, Iglu validation of the event and its entities, storage).
``inproc`` measures the validation pipeline alone, without HTTP. With ``--rounds N`` the
same server ingests the events N times (reset in between: the memory the first round
grew is reused, as in a long-running collector at its cap) and the round with the least
server CPU is reported; every round is in the JSON. Prints a summary
and, on its last line, a JSON object (``events``, ``seconds``, ``cpu``: the server's
CPU seconds, ``peak_rss_kb``, ``delivered``...), and exits non-zero if any event was lost or bad.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

PAYLOAD_DATA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
CONTEXTS = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
UNSTRUCT = "iglu:com.snowplowanalytics.snowplow/unstruct_event/jsonschema/1-0-0"
LINK_CLICK = "iglu:com.snowplowanalytics.snowplow/link_click/jsonschema/1-0-1"
WEB_PAGE = "iglu:com.snowplowanalytics.snowplow/web_page/jsonschema/1-0-0"
TP2 = "/com.snowplowanalytics.snowplow/tp2"


def _b64(document: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def make_events(count: int) -> list[dict[str, str]]:
    """A mix like a web/server app's: page views, structured and self-describing events."""
    page = str(uuid.uuid4())
    context = _b64({"schema": CONTEXTS, "data": [{"schema": WEB_PAGE, "data": {"id": page}}]})
    events = []
    now = int(time.time() * 1000)
    for index in range(count):
        event = {
            "eid": str(uuid.uuid4()), "tv": "py-0.6.0", "tna": "bench", "aid": "shop", "p": "srv",
            "dtm": str(now + index), "stm": str(now + index), "uid": "user-42", "cx": context,
        }  # fmt: skip
        kind = index % 3
        if kind == 0:
            event.update(
                e="pv", url=f"http://shop.example/p/{index}", page="Product",
                refr="http://search.example/?q=paint", res="1920x1080", lang="en-GB",
            )  # fmt: skip
        elif kind == 1:
            event.update(e="se", se_ca="basket", se_ac="add", se_la="paint", se_va="7.99")
        else:
            click = {"schema": LINK_CLICK, "data": {"targetUrl": f"http://shop.example/{index}"}}
            event.update(e="ue", ue_px=_b64({"schema": UNSTRUCT, "data": click}))
        events.append(event)
    return events


def make_bodies(events: list[dict[str, str]], batch: int) -> list[bytes]:
    return [
        json.dumps({"schema": PAYLOAD_DATA, "data": events[i : i + batch]}).encode()
        for i in range(0, len(events), batch)
    ]


def _peak_rss_kb() -> int:
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KB on Linux


def _pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and cpu < (os.cpu_count() or 1):
        os.sched_setaffinity(0, {cpu})


def _serve(db: str | None, ready: Any, commands: Any) -> None:
    _pin(0)
    from snowplow_tracker.collector import Collector
    from snowplow_tracker.collector.server import tune_gc_for_serving

    with Collector(db=db, max_events=10_000_000) as collector:
        tune_gc_for_serving()  # as `snowplow-tracker collector` does
        ready.put(collector.port)
        cpu = 0.0
        while (command := commands.get()) != "quit":
            if command == "start":
                cpu = time.process_time()  # every thread of this process: the server's CPU
                ready.put("started")
            else:
                ready.put((time.process_time() - cpu, _peak_rss_kb()))


def _post_all(connection: http.client.HTTPConnection, bodies: list[bytes]) -> float:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    started = time.perf_counter()
    for body in bodies:
        connection.request("POST", TP2, body, headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"collector answered {response.status}")
    return time.perf_counter() - started


def run_http(
    bodies: list[bytes], db: str | None, rounds: int = 1
) -> tuple[list[tuple[float, float]], int, dict[str, int]]:
    """[(wall seconds, server CPU seconds)] per round, peak RSS, the last round's counts."""
    context = multiprocessing.get_context("spawn")
    ready, commands = context.Queue(), context.Queue()
    server = context.Process(target=_serve, args=(db, ready, commands), daemon=True)
    server.start()
    try:
        port = ready.get(timeout=30)
        _pin(1)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.connect()
        # As urllib3 (requests) does: without it, Nagle + delayed ACK add 40 ms per request.
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        _post_all(connection, bodies[:1])  # warm up (schema compilation, caches)
        measured, rss, summary = [], 0, {}
        for _ in range(rounds):
            connection.request("GET", "/micro/reset")  # each round starts empty
            connection.getresponse().read()
            commands.put("start")
            ready.get(timeout=30)
            elapsed = _post_all(connection, bodies)
            commands.put("stop")
            cpu, rss = ready.get(timeout=30)
            measured.append((elapsed, float(cpu)))
            connection.request("GET", "/micro/all")  # cheap: counts only
            summary = json.loads(connection.getresponse().read())
        connection.close()
        return measured, int(rss), summary
    finally:
        commands.put("quit")
        server.join(10)


def run_inproc(
    bodies: list[bytes], db: str | None, rounds: int = 1
) -> tuple[list[tuple[float, float]], int, dict[str, int]]:
    from snowplow_tracker.collector import Collector
    from snowplow_tracker.collector.validate import CollectorPayload

    collector = Collector(db=db, max_events=10_000_000)  # not started: no HTTP
    headers = [("content-type", "application/json; charset=utf-8")]

    def ingest(body: bytes) -> None:
        payload = CollectorPayload(
            "POST", TP2, "", headers, body, headers[0][1], time.time(), "127.0.0.1", "bench",
            None, str(uuid.uuid4()), "localhost",
        )  # fmt: skip
        collector._ingest(payload, 200)

    ingest(bodies[0])
    measured = []
    for _ in range(rounds):
        collector.clear_events()
        started, cpu = time.perf_counter(), time.process_time()
        for body in bodies:
            ingest(body)
        measured.append((time.perf_counter() - started, time.process_time() - cpu))
    good, bad = collector.store.counts()
    collector.stop()
    return measured, _peak_rss_kb(), {"total": good + bad, "good": good, "bad": bad}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100, help="events per POST")
    parser.add_argument("--store", choices=["memory", "sqlite"], default="memory")
    parser.add_argument("--mode", choices=["http", "inproc"], default="http")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="rounds in the same server (reset between): the best is reported",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    events = make_events(args.events)
    bodies = make_bodies(events, args.batch)
    with tempfile.TemporaryDirectory() as tmp:
        db = str(Path(tmp) / "bench.sqlite3") if args.store == "sqlite" else None
        runner = run_http if args.mode == "http" else run_inproc
        measured, rss, summary = runner(bodies, db, max(1, args.rounds))
    elapsed, cpu = min(measured, key=lambda m: m[1])  # the round with the least server CPU
    rate, cpu_rate = args.events / elapsed, args.events / cpu
    result = {
        "benchmark": "collector_ingest", "mode": args.mode, "store": args.store,
        "events": args.events, "batch": args.batch, "seconds": round(elapsed, 6),
        "events_per_second": round(rate), "cpu": round(cpu, 6),
        "events_per_cpu_second": round(cpu_rate), "peak_rss_kb": rss,
        "rounds": [{"seconds": round(w, 6), "cpu": round(c, 6)} for w, c in measured],
        "delivered": summary["good"], "good": summary["good"], "bad": summary["bad"],
    }  # fmt: skip
    if not args.json:
        best = f"best of {len(measured)} rounds, " if len(measured) > 1 else ""
        print(f"{args.events} events in {len(bodies)} POSTs of {args.batch} ({args.mode}, "
              f"{args.store} store, {best}full validation): {elapsed:.2f} s, {rate:,.0f} "
              f"events/s wall clock; server CPU {cpu:.2f} s, {cpu_rate:,.0f} events per CPU "
              f"second; good {summary['good']}, bad {summary['bad']}")  # fmt: skip
    print(json.dumps(result))  # last line: what bench/run.py reads
    return 0 if summary["good"] == args.events and summary["bad"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
