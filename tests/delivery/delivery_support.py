"""Helpers for the delivery suite: callback recording, eid recording, and a harness that
drives Emitter, AsyncEmitter and AsyncioEmitter through the same synchronous calls."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from snowplow_tracker import AsyncEmitter, Emitter, Tracker
from snowplow_tracker.aio import AsyncioEmitter
from snowplow_tracker.collector import Collector

KINDS = ["sync", "thread", "asyncio"]


class Calls:
    """Records callbacks: ("ok", count) and ("fail", count_sent, unsent_events)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: list[tuple[Any, ...]] = []

    def on_success(self, count: int) -> None:
        with self.lock:
            self.log.append(("ok", count))

    def on_failure(self, count: int, unsent: list[dict[str, str]]) -> None:
        with self.lock:
            self.log.append(("fail", count, list(unsent)))

    def failed_eids(self) -> list[str]:
        return [e["eid"] for entry in self.log if entry[0] == "fail" for e in entry[2]]

    def succeeded(self) -> int:
        return sum(entry[1] for entry in self.log)


class Recorder:
    """A second emitter for the tracker: remembers the eid of every event tracked."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.eids: list[str] = []

    def input(self, payload: dict[str, Any]) -> None:
        with self.lock:
            self.eids.append(payload["eid"])


def eids_of(collector: Collector) -> list[str]:
    """The eid of every event the collector accepted, in arrival order."""
    return [event["eid"] for event in collector.events]


class Harness:
    """One emitter of a given kind behind plain synchronous calls.

    The asyncio emitter lives in an event loop on a background thread; every
    call is run there, as an asyncio application would make it.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.calls = Calls()
        self.recorder = Recorder()
        self.emitter: Any = None
        self.tracker: Tracker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def make(self, endpoint: str, **options: Any) -> Any:
        options.setdefault("on_success", self.calls.on_success)
        options.setdefault("on_failure", self.calls.on_failure)
        if self.kind == "sync":
            self.emitter = Emitter(endpoint, **options)
        elif self.kind == "thread":
            self.emitter = AsyncEmitter(endpoint, **options)
        else:
            self._start_loop()
            self.emitter = self._call(lambda: AsyncioEmitter(endpoint, **options))
        self.tracker = Tracker([self.emitter, self.recorder], namespace="t", app_id="delivery")
        return self.emitter

    def track(self, count: int, start: int = 0) -> list[str]:
        """Track ``count`` struct events; return their event ids in order."""

        def run() -> None:
            assert self.tracker is not None
            for n in range(start, start + count):
                self.tracker.track_struct_event("cat", f"action-{n}")

        before = len(self.recorder.eids)
        self._call(run)
        return self.recorder.eids[before:]

    def flush(self, timeout: float | None = None) -> bool:
        if self.kind == "asyncio":
            return bool(self._await(self.emitter.flush(timeout)))
        return bool(self.emitter.flush(timeout))

    def close(self, timeout: float | None = None) -> bool:
        if self.kind == "asyncio":
            return bool(self._await(self.emitter.aclose(timeout)))
        return bool(self.emitter.close(timeout))

    def stats(self) -> Any:
        return self.emitter.stats()

    # -- the loop for the asyncio emitter ------------------------------------------------------

    def _start_loop(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()

    def _call(self, fn: Any) -> Any:
        if self._loop is None:
            return fn()

        async def run() -> Any:
            return fn()

        return self._await(run())

    def _await(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(60)

    def stop(self) -> None:
        if self.emitter is not None and not self.emitter._closed:
            self.close(1.0)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            assert self._thread is not None
            self._thread.join(5)
            self._loop.close()
