"""One benchmark case in a fresh process: ``python bench/cases.py IMPL SCENARIO [options]``.

``IMPL`` is ``ours`` (this repository's ``src``), ``upstream`` (snowplow-tracker
1.1.0, run with the interpreter of ``bench/.venv-upstream``), ``reference`` (a
minimal tracker written here with the standard library only) or ``requests``
(only for the ``import`` scenario). The case prints one JSON object on its last
line: ``events``, ``seconds`` (wall), ``cpu`` (client CPU seconds, every thread),
``peak_rss_kb`` and scenario extras. Only the standard library is imported at
module level, so the same file runs under every interpreter.
"""

from __future__ import annotations

import argparse
import base64
import compileall
import http.client
import inspect
import json
import os
import resource
import socket
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "bench"
APP_ID = "bench-app"
#: The event every case tracks: a structured event with every field set.
CATEGORY, ACTION, LABEL, PROPERTY, VALUE = "shop", "add-to-basket", "sku-0042", "basket", 2.5
ENTITY = {"schema": "iglu:com.acme/user/jsonschema/1-0-0", "data": {"type": "tester", "id": 42}}
CONTEXTS_SCHEMA = "iglu:com.snowplowanalytics.snowplow/contexts/jsonschema/1-0-1"
PAYLOAD_SCHEMA = "iglu:com.snowplowanalytics.snowplow/payload_data/jsonschema/1-0-4"
POST_PATH = "/com.snowplowanalytics.snowplow/tp2"
REFERENCE_BATCH = 100
THREADS = 16
WARMUP = 200

Track = Callable[[], None]


# -- the hand-written reference ----------------------------------------------------------------


def _ms() -> str:
    return str(int(time.time() * 1000))


def reference_event(with_context: bool = False) -> dict[str, str]:
    """The 12 fields a tracker builds per event (the 13th, ``stm``, is stamped at send time)."""
    event = {
        "e": "se",
        "se_ca": CATEGORY,
        "se_ac": ACTION,
        "se_la": LABEL,
        "se_pr": PROPERTY,
        "se_va": str(VALUE),
        "eid": str(uuid.uuid4()),
        "dtm": _ms(),
        "tv": "py-reference",
        "tna": NAMESPACE,
        "aid": APP_ID,
        "p": "srv",
    }
    if with_context:
        envelope = json.dumps({"schema": CONTEXTS_SCHEMA, "data": [ENTITY]}, separators=(",", ":"))
        event["cx"] = base64.urlsafe_b64encode(envelope.encode()).decode()
    return event


class Reference:
    """A minimal tracker: ``http.client`` keep-alive, ``json``, batches of 100."""

    def __init__(self, port: int, method: str = "post", with_context: bool = False) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.method = method
        self.with_context = with_context
        self.buffer: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.send_lock = threading.Lock()
        self.failed = 0

    def track(self) -> None:
        event = reference_event(self.with_context)
        if self.method == "get":
            self._get(event)
            return
        with self.lock:
            self.buffer.append(event)
            if len(self.buffer) < REFERENCE_BATCH:
                return
            batch, self.buffer = self.buffer, []
        self._post(batch)

    def flush(self) -> None:
        with self.lock:
            batch, self.buffer = self.buffer, []
        if batch:
            self._post(batch)

    def _post(self, batch: list[dict[str, str]]) -> None:
        stm = _ms()
        for event in batch:
            event["stm"] = stm
        body = json.dumps({"schema": PAYLOAD_SCHEMA, "data": batch}, separators=(",", ":"))
        headers = {"Content-Type": "application/json; charset=utf-8"}
        with self.send_lock:
            self.conn.request("POST", POST_PATH, body.encode(), headers)
            self._answer()

    def _get(self, event: dict[str, str]) -> None:
        event["stm"] = _ms()
        self.conn.request("GET", "/i?" + urlencode(event))
        self._answer()

    def _answer(self) -> None:
        response = self.conn.getresponse()
        response.read()
        if response.status != 200:
            self.failed += 1


# -- the two packages ---------------------------------------------------------------------------


class Collect:
    """An emitter that only keeps the last events: what 'build only' hands off to."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def input(self, payload: Any) -> None:
        events = self.events
        events.append(payload)
        if len(events) >= REFERENCE_BATCH:
            events.clear()

    def flush(self) -> None:
        self.events.clear()


class Failures:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self, *args: Any) -> None:
        unsent = args[-1]
        self.count += unsent if isinstance(unsent, int) else len(unsent)


#: Where "ours" is imported from: this checkout, or another one (``--src``: the code before a
#: change, for ``run.py --before``).
SRC = REPO / "src"


def load_package(impl: str) -> Any:
    if impl == "ours":
        sys.path.insert(0, str(SRC))
    import snowplow_tracker

    where = Path(snowplow_tracker.__file__).resolve()
    if (impl == "ours") != (SRC.resolve() in where.parents):
        raise SystemExit(f"{impl}: imported the wrong snowplow_tracker from {where}")
    return snowplow_tracker


def make_tracker(sp: Any, impl: str, emitter: Any) -> Any:
    subject = sp.Subject().set_platform("srv")
    if impl == "upstream":
        return sp.Tracker(namespace=NAMESPACE, emitters=emitter, subject=subject, app_id=APP_ID)
    return sp.Tracker(emitter, subject=subject, namespace=NAMESPACE, app_id=APP_ID)


def track_call(sp: Any, impl: str, tracker: Any, with_context: bool = False) -> Track:
    if impl == "upstream":
        from snowplow_tracker.events import StructuredEvent

        context = (
            [sp.SelfDescribingJson(ENTITY["schema"], ENTITY["data"])] if with_context else None
        )

        def track_upstream() -> None:
            event = StructuredEvent(CATEGORY, ACTION, LABEL, PROPERTY, VALUE, context=context)
            tracker.track(event)

        return track_upstream
    ours_context = [ENTITY] if with_context else None

    def track_ours() -> None:
        tracker.track_struct_event(CATEGORY, ACTION, LABEL, PROPERTY, VALUE, ours_context)

    return track_ours


def make_emitter(sp: Any, impl: str, args: argparse.Namespace, failures: Failures) -> Any:
    is_async = args.scenario == "post-async"
    method = "get" if args.scenario == "get" else "post"
    if impl == "upstream":
        import requests

        cls = sp.AsyncEmitter if is_async else sp.Emitter
        size = 1 if method == "get" else (args.buffer_size or REFERENCE_BATCH)
        return cls(
            "127.0.0.1",
            protocol="http",
            port=args.port,
            method=method,
            batch_size=size,
            on_failure=failures,
            session=requests.Session(),
        )
    cls = sp.AsyncEmitter if is_async else sp.Emitter
    options: dict[str, Any] = {"on_failure": failures}
    if args.buffer_size:
        options["buffer_size"] = args.buffer_size
    if args.max_queue_size:
        options["max_queue_size"] = args.max_queue_size
    return cls(f"127.0.0.1:{args.port}", method=method, **options)


# -- measuring ---------------------------------------------------------------------------------


def sink_events(port: int) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/stats")
    stats = json.loads(conn.getresponse().read())
    conn.close()
    return int(stats["events"])


def timed(run: Callable[[], None]) -> dict[str, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return {"seconds": time.perf_counter() - wall, "cpu": time.process_time() - cpu}


def in_threads(track: Track, total: int, threads: int) -> None:
    per_thread = total // threads
    start = threading.Barrier(threads)

    def produce() -> None:
        start.wait()
        for _ in range(per_thread):
            track()

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


def loop(track: Track, count: int) -> None:
    for _ in range(count):
        track()


def run_delivery(args: argparse.Namespace) -> dict[str, Any]:
    """post, post-async, get, context, threads16, build: track N events, then flush."""
    with_context = args.scenario == "context"
    failures = Failures()
    if args.impl == "reference":
        method = "get" if args.scenario == "get" else "post"
        ref = Reference(args.port, method, with_context)
        flush, track = ref.flush, ref.track
        if args.scenario == "build":
            collect = Collect()
            flush, track = collect.flush, lambda: collect.input(reference_event())
    else:
        sp = load_package(args.impl)
        if args.scenario == "build":
            emitter: Any = Collect()
        else:
            emitter = make_emitter(sp, args.impl, args, failures)
        tracker = make_tracker(sp, args.impl, emitter)
        track = track_call(sp, args.impl, tracker, with_context)

        def flush() -> None:
            sync_flush = getattr(emitter, "sync_flush", None)
            (sync_flush or emitter.flush)()

    networked = args.scenario != "build"
    loop(track, WARMUP)
    flush()
    before = sink_events(args.port) if networked else 0
    if args.scenario == "threads16":
        result = timed(lambda: (in_threads(track, args.events, THREADS), flush()))
        events = args.events // THREADS * THREADS
    else:
        result = timed(lambda: (loop(track, args.events), flush()))
        events = args.events
    delivered = sink_events(args.port) - before if networked else events
    failed = failures.count + (ref.failed if args.impl == "reference" else 0)
    return {"events": events, "delivered": delivered, "failed": failed, **result}


def run_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Python heap held for a backlog of N events while the collector does not answer."""
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(64)  # never accepted: requests hang until their timeout
    port = stalled.getsockname()[1]
    tracemalloc.start()
    failures = Failures()
    if args.impl == "reference":
        backlog = []
        base = tracemalloc.get_traced_memory()[0]
        result = timed(lambda: [backlog.append(reference_event()) for _ in range(args.events)])
    else:
        sp = load_package(args.impl)
        args.scenario, args.port = "post-async", port
        emitter = make_emitter(sp, args.impl, args, failures)
        tracker = make_tracker(sp, args.impl, emitter)
        track = track_call(sp, args.impl, tracker)
        base = tracemalloc.get_traced_memory()[0]
        result = timed(lambda: loop(track, args.events))
    current, peak = tracemalloc.get_traced_memory()
    held = max(current, peak) - base
    # Events dropped by a bounded queue (reported to on_failure) are not part of the backlog:
    # ``kept`` says how many the heap figure holds, and it is still divided by all N events.
    kept = args.events - failures.count
    return {
        "events": args.events,
        "kb_per_event": held / 1024 / args.events,
        "kept": kept,
        "kb_per_kept_event": held / 1024 / kept if kept else 0.0,
        **result,
    }


def run_redis(args: argparse.Namespace) -> dict[str, Any]:
    """redis-enqueue: track into a RedisEmitter; redis-drain: a RedisWorker POSTs them out."""
    sp = load_package("ours")
    import redis

    rdb = redis.Redis(host="127.0.0.1", port=6379)
    key = f"snowplow-bench-{os.getpid()}-{uuid.uuid4().hex}"
    try:
        tracker = make_tracker(sp, "ours", sp.RedisEmitter(rdb=rdb, key=key))
        track = track_call(sp, "ours", tracker)
        if args.scenario == "redis-enqueue":
            result = timed(lambda: loop(track, args.events))
            return {"events": args.events, "delivered": rdb.llen(key), "failed": 0, **result}
        loop(track, args.events)
        return drain(sp, args, rdb, key)
    finally:
        for name in rdb.scan_iter(match=f"*{key}*"):  # the list and any worker bookkeeping
            rdb.delete(name)


def drain(sp: Any, args: argparse.Namespace, rdb: Any, key: str) -> dict[str, Any]:
    from snowplow_tracker.redis_worker import RedisWorker

    failures = Failures()
    args.scenario = "post"
    emitter = make_emitter(sp, "ours", args, failures)
    before = sink_events(args.port)
    worker = RedisWorker(emitter, rdb=rdb, key=key)
    if "stop_when_empty" in inspect.signature(worker.run).parameters:
        result = timed(lambda: worker.run(install_signal_handlers=False, stop_when_empty=True))
        delivered = sink_events(args.port) - before
        return {"events": args.events, "delivered": delivered, "failed": failures.count, **result}
    # The 0.5.0 form: run() until asked to stop, from another thread.
    thread = threading.Thread(target=worker.run, daemon=True)

    def run() -> None:
        thread.start()
        deadline = time.monotonic() + 120
        while rdb.llen(key) and time.monotonic() < deadline:
            time.sleep(0.002)
        worker.request_shutdown()
        thread.join(30)
        emitter.flush()

    result = timed(run)
    delivered = sink_events(args.port) - before
    return {"events": args.events, "delivered": delivered, "failed": failures.count, **result}


def run_import(args: argparse.Namespace) -> dict[str, Any]:
    """The best of a few cold ``import`` timings, each in a fresh interpreter."""
    module = "requests" if args.impl == "requests" else "snowplow_tracker"
    path = str(SRC) if args.impl == "ours" else ""
    code = (
        "import sys,time\n"
        f"if {path!r}: sys.path.insert(0, {path!r})\n"
        f"t=time.perf_counter()\nimport {module}\nprint(time.perf_counter()-t)"
    )
    if args.impl == "ours":
        # pip compiles an installed package's modules; an editable src may have no .pyc yet.
        compileall.compile_dir(path, quiet=1)
    times = []
    for _ in range(args.repeat):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        times.append(float(out.stdout.strip()))
    best = min(times)
    return {"events": 1, "seconds": best, "cpu": best, "import_ms": best * 1000}


def peak_rss_kb() -> int:
    """This process's peak resident set, in KiB.

    ``getrusage`` would report the parent's peak too: Linux keeps ``ru_maxrss``
    across ``execve``. ``VmHWM`` belongs to this process image alone.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("impl", choices=["ours", "upstream", "reference", "requests"])
    parser.add_argument("scenario")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--buffer-size", type=int, default=None)
    parser.add_argument("--max-queue-size", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cpu", type=int, default=None)
    parser.add_argument("--src", type=Path, default=None, help="import ours from this src/")
    args = parser.parse_args(argv)
    if args.src is not None:
        global SRC
        SRC = args.src
    if args.cpu is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {args.cpu})
    if args.scenario == "memory":
        result = run_memory(args)
    elif args.scenario.startswith("redis-"):
        result = run_redis(args)
    elif args.scenario == "import":
        result = run_import(args)
    else:
        result = run_delivery(args)
    result["peak_rss_kb"] = peak_rss_kb()
    print(json.dumps(result), flush=True)
    # Skip interpreter teardown: a stalled AsyncEmitter would wait out its exit timeout.
    os._exit(0)


if __name__ == "__main__":
    main()
