"""RedisWorker: sends the events a RedisEmitter stored in Redis, at least once.

Importing this module never imports redis; constructing a worker does (the
``redis`` extra). Any number of workers, on one machine or many, may drain
one key at once::

    from snowplow_tracker import Emitter
    from snowplow_tracker.redis_worker import RedisWorker

    e = Emitter("collector.example.com", method="post")
    RedisWorker(e, key="snowplow_redis_key").run()

How no event is lost (needs Redis >= 6.2 for ``BLMOVE``; every key below shares
the hash slot of ``key``, as a Redis Cluster requires):

* A worker moves up to ``batch_size`` events atomically from ``key`` to its
  own processing list ``{key}:processing:<worker id>`` (``BLMOVE``/``LMOVE``)
  and gives them to the emitter. An event leaves Redis only once the emitter
  has reported it sent; events the emitter reports unsent go back to the tail
  of ``key`` and the worker backs off before taking more.
* The lists in Redis are the truth, whatever replies are lost and whatever the
  client retries (see ``_redis_lists``): a batch is the whole processing list,
  the acknowledgement does nothing when it ran already, and after a Redis error
  the processing list goes back to the head of ``key`` (``requeued``; events
  sent whose acknowledgement was lost go out again, counted as ``resent``).
* Values that are not events (too large, too deep to parse, not a flat JSON
  object) go to ``{key}:invalid``, counted and logged once each.
* While it runs, a worker refreshes a heartbeat key with a TTL. A worker that
  died (``kill -9``, power loss) stops refreshing it; the others (and every
  worker that starts) move its processing list back to ``key``. Those events
  may have reached the collector already: they are the only duplicates, and
  :meth:`RedisWorker.stats` counts them as ``recovered``.
* A worker is dead when its heartbeat key is gone, and only then: the check
  and the move are one Lua script, so a worker whose heartbeat is back is never
  taken from. Recovery looks at the members of the workers set every
  ``heartbeat_ttl``, and at every processing list of ``key`` in the keyspace
  (``SCAN``) when a worker starts and every ``scan_interval`` seconds: a list
  whose worker is in no set (its membership lost with an evicted or deleted set,
  a failover, or a worker of an older version) is recovered too.
* A worker refreshes its heartbeat and its membership in the same pipeline (or
  script) that moves events into its processing list, so a worker paused past
  ``heartbeat_ttl`` and recovered by another one registers again before it takes
  anything. It notices (``presumed_dead`` in :meth:`RedisWorker.stats`, and a
  warning): the batch it was sending was recovered and may be sent twice.
* On SIGINT/SIGTERM (handlers installed by :meth:`RedisWorker.run` in the main
  thread only) or :meth:`RedisWorker.request_shutdown`, the worker stops
  taking events, lets the batch in flight finish for up to
  ``shutdown_timeout`` seconds, and returns whatever is still unacknowledged
  to the head of ``key``.

What the worker needs from the emitter, to know what was sent:

* An emitter with the 0.5.0 callback attributes ``on_success(count)`` and
  ``on_failure(count_sent, unsent_events)`` (``Emitter``, ``AsyncEmitter``,
  ``CeleryEmitter`` or a custom one) must report, through exactly one of them
  per flush, every event given to it before ``sync_flush()`` returns (or
  ``flush()``, if it has no ``sync_flush``). The worker chains its own
  callbacks in front of yours while it runs, so give it an emitter of its own.
  Events it did not hear about are treated as unsent and sent again later.
* An emitter without those attributes (only ``input``, as 0.4.0 allowed) is
  trusted: its events are acknowledged when ``input`` and the flush returned
  without raising, so the guarantee is then the emitter's own.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from types import FrameType
from typing import Any, Callable

from . import contracts
from ._redis_batch import MAX_EVENT_BYTES, Batch, Raw, decode, event_identity, outcome
from ._redis_lists import MAX_BATCH, WorkerLists, is_redis_error, slot_key
from .retry import RetryPolicy

logger = logging.getLogger("snowplow_tracker.redis_worker")

DEFAULT_KEY = "snowplow"
__all__ = ["DEFAULT_KEY", "MAX_EVENT_BYTES", "RedisWorker", "event_identity", "slot_key"]


class RedisWorker(WorkerLists):
    """Drains the Redis list ``key`` (default ``"snowplow"``) into the emitter ``_consumer``.

    ``dbr`` is a redis-py client (default: ``$SNOWPLOW_REDIS_URL``, else
    ``redis://localhost:6379/0``). Keyword options:

    * ``batch_size`` events taken per round trip (default 100);
    * ``poll_interval`` seconds a worker blocks waiting for events; it bounds
      how long a shutdown request waits when idle (default 0.5);
    * ``shutdown_timeout`` seconds the batch in flight may take to finish
      after shutdown was requested (default 10);
    * ``heartbeat_ttl`` seconds after which a silent worker counts as dead
      (default 15);
    * ``scan_interval`` seconds between scans of the keyspace for processing
      lists whose worker is in no set; one at start, then at this interval
      (default 300: a scan is O(keys in the database));
    * ``backoff_base``/``backoff_cap``: the wait after a batch failed
      entirely, doubling from base up to cap with full jitter (0.5 s, 30 s);
    * ``max_event_bytes``: a stored value larger than this is set aside in
      ``{key}:invalid`` (default 1 MiB).
    """

    def __init__(
        self,
        _consumer: Any,
        key: str | None = None,
        dbr: Any = None,
        *,
        rdb: Any = None,
        batch_size: int = 100,
        poll_interval: float = 0.5,
        shutdown_timeout: float = 10.0,
        heartbeat_ttl: float = 15.0,
        scan_interval: float = 300.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        worker_id: str | None = None,
        max_event_bytes: int = MAX_EVENT_BYTES,
    ) -> None:
        if key is not None and not isinstance(key, str) and hasattr(key, "pipeline"):
            # The 0.5.0 code's order was RedisWorker(emitter, rdb, key).
            key, dbr = (dbr if isinstance(dbr, str) else None), key
        dbr = dbr if dbr is not None else rdb
        key = DEFAULT_KEY if key is None else key
        if contracts._enabled:
            _check_worker_args(_consumer, key, batch_size, poll_interval, heartbeat_ttl)
            contracts.positive("RedisWorker()", "scan_interval", scan_interval)
            contracts.integer("RedisWorker()", "max_event_bytes", max_event_bytes, minimum=1)
        if dbr is None:
            from ._redis import default_client

            dbr = default_client()
        self.emitter = _consumer
        self.key = key
        self.rdb = dbr
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.shutdown_timeout = shutdown_timeout
        self.heartbeat_ttl = heartbeat_ttl
        self.scan_interval = scan_interval
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.max_event_bytes = max_event_bytes
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._init_lists()
        if contracts._enabled:
            _check_one_slot(self.rdb, key, [self.processing_key, self.workers_key])
        self._stop = threading.Event()
        self._abandon = threading.Event()
        self._stats_lock = threading.Lock()
        self._stats = dict.fromkeys(
            (
                "taken",
                "sent",
                "requeued",
                "resent",
                "recovered",
                "returned",
                "invalid",
                "redis_errors",
                "presumed_dead",
            ),
            0,
        )
        self._current: Batch | None = None
        self._next_recovery = 0.0
        self._next_scan = 0.0
        self._failures = 0
        self._unconfirmed = (0, 0, 0)  # sent, unsent, invalid of an acknowledgement that raised

    # -- public ----------------------------------------------------------------------------------

    def request_shutdown(self) -> None:
        """Stop taking events; :meth:`run` finishes the batch in flight (bounded) and returns."""
        self._stop.set()

    def stats(self) -> dict[str, int]:
        """Counts of events ``taken`` from Redis, ``sent``, ``requeued`` after a failed send
        or a Redis error, ``resent`` (sent, but their acknowledgement never reached Redis, so
        they go out again: duplicates), ``recovered`` from dead workers (possible duplicates),
        ``returned`` at shutdown, moved to ``{key}:invalid`` (not events: see
        ``max_event_bytes``), of Redis errors, and of the times this worker found it had been
        ``presumed_dead`` (removed from the workers set by another worker)."""
        with self._stats_lock:
            return dict(self._stats)

    def run(self, install_signal_handlers: bool = True, *, stop_when_empty: bool = False) -> None:
        """Send events until :meth:`request_shutdown`, SIGINT or SIGTERM (or, with
        ``stop_when_empty``, until ``key`` is empty).

        Signal handlers are installed only when called from the main thread and
        ``install_signal_handlers`` is true; the previous handlers come back on return.
        A second signal abandons the batch in flight at once (it goes back to Redis).
        """
        previous = self._install_signals() if install_signal_handlers else {}
        restore_callbacks = self._chain_callbacks()
        self._registered = False
        self._next_recovery = self._next_scan = 0.0  # both at start
        heartbeat = _Heartbeat(self)
        logger.info("RedisWorker %s started on list %r", self.worker_id, self.key)
        try:
            heartbeat.start()
            self._loop(stop_when_empty)
        finally:
            heartbeat.stop()
            self._return_unacked()
            self._unregister()
            restore_callbacks()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            logger.info("RedisWorker %s stopped: %s", self.worker_id, self.stats())

    def recover(self, *, scan: bool = False) -> int:
        """Move the processing lists of dead workers back to ``key``; return the event count.

        A worker is dead when its heartbeat key is gone. The members of the workers set are
        checked; with ``scan``, so is every processing list of ``key`` that SCAN finds, which
        catches lists whose worker is in no set (the scan is O(keys in the database)).
        """
        others = self._members()
        if scan and self._scan_allowed:
            others |= self._scanned_workers()
        others.discard(self.worker_id)
        moved = sum(self._recover_worker(other) for other in sorted(others))
        self._count("recovered", moved)
        return moved

    # -- the loop --------------------------------------------------------------------------------

    def _loop(self, stop_when_empty: bool) -> None:
        registered = False
        dirty = False  # a Redis error may have left a batch in our processing list
        while not self._stop.is_set():
            try:
                if not registered:
                    self._beat()  # never take an event before others can see us (and recover it)
                    registered = True
                if dirty:
                    self._reconcile()
                    dirty = False
                self._recover_when_due()
                raws = self._take()
                if not raws:
                    if stop_when_empty:
                        return
                    continue
                if not self._send(raws):
                    return  # abandoned at shutdown: the finally block returns it to Redis
            except Exception as exc:
                if not is_redis_error(exc):
                    raise
                dirty = True
                self._count("redis_errors", 1)
                logger.warning("RedisWorker: Redis error: %s", exc)
                self._backoff()

    def _reconcile(self) -> None:
        """After a Redis error, the processing list says what is unacknowledged (whatever
        replies were lost): return it to the head of ``key``, to be sent again."""
        moved = self._move_back(self.processing_key)
        self._count("requeued", moved)
        (sent, unsent, invalid), self._unconfirmed = self._unconfirmed, (0, 0, 0)
        if not moved:  # the acknowledgement went through; only its reply was lost
            self._count("sent", sent)
            self._count("requeued", unsent)
            self._count("invalid", invalid)
        elif sent:  # it did not (all or nothing): the batch goes out again
            self._count("resent", sent)
            logger.warning("%d sent event(s) were not acknowledged: sent again", sent)

    def _recover_when_due(self) -> None:
        """Recover from the workers set every ``heartbeat_ttl``; scan the keyspace too at
        start and every ``scan_interval`` (a scan is O(keyspace): not on every pass)."""
        now = time.monotonic()
        scan = now >= self._next_scan
        if not scan and now < self._next_recovery:
            return
        self.recover(scan=scan)
        now = time.monotonic()
        self._next_recovery = now + self.heartbeat_ttl
        if scan:
            self._next_scan = now + self.scan_interval

    def _send(self, raws: list[Raw]) -> bool:
        """Deliver one batch and acknowledge it; False if it was abandoned at shutdown."""
        batch = decode(raws, self.max_event_bytes)
        if batch.events:
            self._current = batch
            threading.Thread(
                target=self._deliver, args=(batch,), name="snowplow-redis-send", daemon=True
            ).start()
            if not self._wait(batch):
                logger.warning(
                    "shutdown: %d event(s) still in flight after %.1f s go back to Redis",
                    len(batch.events),
                    self.shutdown_timeout,
                )
                return False
        else:
            batch.done.set()
        sent, unsent = outcome(batch, not _reports_outcomes(self.emitter))
        self._current = None
        self._unconfirmed = (len(sent), len(unsent), len(batch.invalid))
        self._ack(unsent, batch.invalid)
        self._unconfirmed = (0, 0, 0)
        self._count("sent", len(sent))
        self._count("requeued", len(unsent))
        self._count("invalid", len(batch.invalid))
        if unsent and not sent:
            self._backoff()
        else:
            self._failures = 0
        return True

    def _deliver(self, batch: Batch) -> None:
        try:
            for event in batch.events:
                self.emitter.input(event)
            flush = getattr(self.emitter, "sync_flush", None) or getattr(
                self.emitter, "flush", None
            )
            if flush is not None:
                flush()
        except BaseException as exc:  # reported back to the loop, which keeps the events
            batch.error = exc
        finally:
            batch.done.set()

    def _wait(self, batch: Batch) -> bool:
        deadline: float | None = None
        while not batch.done.wait(0.05):
            if self._abandon.is_set():
                return False
            if self._stop.is_set():
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.shutdown_timeout
                if now >= deadline:
                    return False
        return True

    def _backoff(self) -> None:
        self._failures += 1
        policy = RetryPolicy(backoff_base=self.backoff_base, backoff_max=self.backoff_cap)
        self._stop.wait(policy.backoff(self._failures))  # full jitter; a shutdown cuts it short

    # -- helpers ---------------------------------------------------------------------------------

    def _chain_callbacks(self) -> Callable[[], None]:
        """Put the worker's report collectors in front of the emitter's callbacks."""
        emitter = self.emitter
        if not _reports_outcomes(emitter):
            return lambda: None
        user_success, user_failure = emitter.on_success, emitter.on_failure

        def on_success(count: int) -> None:
            batch = self._current
            if batch is not None:
                batch.reports.success(count)
            if user_success is not None:
                user_success(count)

        def on_failure(count: int, unsent: list[dict[str, str]]) -> None:
            batch = self._current
            if batch is not None:
                batch.reports.failure(count, unsent)
            if user_failure is not None:
                user_failure(count, unsent)

        emitter.on_success, emitter.on_failure = on_success, on_failure

        def restore() -> None:
            emitter.on_success, emitter.on_failure = user_success, user_failure

        return restore

    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous: dict[int, Any] = {}
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._stop.is_set():
            self._abandon.set()  # a second signal: do not wait for the batch in flight
        logger.info("RedisWorker: signal %d, shutting down", signum)
        self._stop.set()

    def _return_unacked(self) -> None:
        try:
            count = self._move_back(self.processing_key)
        except Exception as exc:
            # It stays in this worker's processing list, recovered when the heartbeat expires.
            logger.warning("could not return unacknowledged events to Redis: %s", exc)
            return
        self._count("returned", count)

    def _count(self, name: str, n: int) -> None:
        if n:
            with self._stats_lock:
                self._stats[name] += n


class _Heartbeat:
    """Refreshes the worker's heartbeat key from its own thread, so a slow send never
    makes a live worker look dead."""

    def __init__(self, worker: RedisWorker) -> None:
        self.worker = worker
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="snowplow-redis-heartbeat", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopped.wait(self.worker.heartbeat_ttl / 3):
            try:
                self.worker._beat()
            except Exception as exc:
                logger.warning("RedisWorker heartbeat failed: %s", exc)


def _reports_outcomes(emitter: Any) -> bool:
    return hasattr(emitter, "on_success") and hasattr(emitter, "on_failure")


def _check_worker_args(
    consumer: Any, key: object, batch_size: object, poll_interval: object, heartbeat_ttl: object
) -> None:
    where = "RedisWorker()"
    if not callable(getattr(consumer, "input", None)):
        contracts.fail_type(where, "_consumer", "an emitter (an object with input())", consumer)
    contracts.non_empty_string(where, "key", key)
    contracts.integer(where, "batch_size", batch_size, minimum=1)
    if isinstance(batch_size, int) and batch_size > MAX_BATCH:
        contracts.fail_value(where, "batch_size", f"at most {MAX_BATCH}", batch_size)
    # Durations: BLMOVE with a timeout of 0 would block for ever (shutdown never seen), and a
    # heartbeat that lives 0 s makes every worker look dead.
    contracts.positive(where, "poll_interval", poll_interval)
    contracts.positive(where, "heartbeat_ttl", heartbeat_ttl)


def _check_one_slot(rdb: Any, key: str, derived: list[str]) -> None:
    """On a cluster client, every key of a worker must hash to one slot (else CROSSSLOT)."""
    keyslot = getattr(rdb, "keyslot", None)  # only cluster clients have it; computed locally
    if callable(keyslot) and any(keyslot(name) != keyslot(key) for name in derived):
        contracts.fail_value(
            "RedisWorker()",
            "key",
            "a key whose derived keys can share its cluster hash slot (no '}' outside a {tag})",
            key,
        )
