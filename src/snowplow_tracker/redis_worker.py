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

import json
import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Callable, Union

from . import contracts
from .payload import dumps
from .retry import RetryPolicy

logger = logging.getLogger("snowplow_tracker.redis_worker")

Raw = Union[bytes, str]
DEFAULT_KEY = "snowplow"
MAX_BATCH = 5000  # events moved by one script call (Lua unpack() has a stack limit)
SCAN_COUNT = 1000  # keys a SCAN call looks at: a scan of N keys takes about N / 1000 calls


def slot_key(key: str, suffix: str) -> str:
    """A key for ``suffix`` in the same Redis Cluster hash slot as ``key``."""
    start = key.find("{")
    if start != -1 and key.find("}", start + 2) != -1:
        return f"{key}:{suffix}"  # key already has a hash tag: reuse it
    if "}" in key:
        return f"{key}:{suffix}"  # no tag can reproduce this key's slot (fine off-cluster)
    return f"{{{key}}}:{suffix}"  # slot of "{key}..." is the slot of "key"


def event_identity(event: Mapping[str, Any]) -> str:
    """What matches an unsent event reported by an emitter to the event the worker gave it."""
    eid = event.get("eid")
    if isinstance(eid, str) and eid:
        return eid
    return dumps({k: str(v) for k, v in sorted(event.items()) if k != "stm"})


@dataclass
class _Reports:
    """What an emitter reported for the batch in flight (callbacks may come from any thread)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    reported: int = 0
    unsent: list[Mapping[str, Any]] = field(default_factory=list)

    def success(self, count: int) -> None:
        with self.lock:
            self.reported += count

    def failure(self, count: int, unsent: Sequence[Mapping[str, Any]]) -> None:
        with self.lock:
            self.reported += count + len(unsent)
            self.unsent.extend(unsent)


@dataclass
class _Batch:
    raws: list[Raw]  # the valid ones, in the order of ``events``
    events: list[dict[str, Any]]
    invalid: list[Raw]
    reports: _Reports = field(default_factory=_Reports)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


class RedisWorker:
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
      entirely, doubling from base up to cap with full jitter (0.5 s, 30 s).
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
    ) -> None:
        if key is not None and not isinstance(key, str) and hasattr(key, "pipeline"):
            # The 0.5.0 code's order was RedisWorker(emitter, rdb, key).
            key, dbr = (dbr if isinstance(dbr, str) else None), key
        dbr = dbr if dbr is not None else rdb
        key = DEFAULT_KEY if key is None else key
        if contracts._enabled:
            _check_worker_args(_consumer, key, batch_size, poll_interval, heartbeat_ttl)
            contracts.positive("RedisWorker()", "scan_interval", scan_interval)
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
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.processing_key = slot_key(key, f"processing:{self.worker_id}")
        self.workers_key = slot_key(key, "workers")
        self.invalid_key = slot_key(key, "invalid")
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
                "recovered",
                "returned",
                "invalid",
                "redis_errors",
                "presumed_dead",
            ),
            0,
        )
        self._current: _Batch | None = None
        self._move_script: Any = self.rdb.register_script(_MOVE_SCRIPT)
        self._recover_script: Any = self.rdb.register_script(_RECOVER_SCRIPT)
        self._scan_allowed = True  # until the server refuses SCAN
        self._registered = False  # set by the first beat of a run
        self._next_recovery = 0.0
        self._next_scan = 0.0
        self._failures = 0
        self._transactions = True  # until the client refuses them

    # -- public ----------------------------------------------------------------------------------

    def request_shutdown(self) -> None:
        """Stop taking events; :meth:`run` finishes the batch in flight (bounded) and returns."""
        self._stop.set()

    def stats(self) -> dict[str, int]:
        """Counts of events ``taken`` from Redis, ``sent``, ``requeued`` after a failed send,
        ``recovered`` from dead workers, ``returned`` at shutdown, moved to ``{key}:invalid``
        because they were not JSON objects, of Redis errors, and of the times this worker found
        it had been ``presumed_dead`` (removed from the workers set by another worker)."""
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
                    self._count("requeued", self._move_back(self.processing_key))
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
                if not _is_redis_error(exc):
                    raise
                dirty = True
                self._count("redis_errors", 1)
                logger.warning("RedisWorker: Redis error: %s", exc)
                self._backoff()

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

    def _take(self) -> list[Raw]:
        # Register in the same pipeline, before the move: if another worker presumed us dead
        # (paused past heartbeat_ttl) and removed us from the set, we are back in it, with a
        # live heartbeat, before an event reaches our processing list. The block is shorter
        # than the TTL, so the heartbeat is still alive when BLMOVE moves an event.
        pipe = self.rdb.pipeline(transaction=False)
        self._register(pipe)
        block = min(self.poll_interval, self.heartbeat_ttl / 2)
        pipe.blmove(self.key, self.processing_key, block, src="LEFT", dest="RIGHT")
        _, added, first = pipe.execute()
        self._note_membership(added)
        if first is None:
            return []
        raws: list[Raw] = [first]
        if self.batch_size > 1:
            raws.extend(self._take_more(self.batch_size - 1))
        self._count("taken", len(raws))
        return raws

    def _take_more(self, count: int) -> list[Raw]:
        """Up to ``count`` more events, moved in one round trip (a script; LMOVEs without one).

        Both register the worker first, as :meth:`_take` does: a pause between the BLMOVE and
        this call may have made another worker recover us meanwhile."""
        heartbeat = self._heartbeat_key(self.worker_id)
        result = self._call_script(
            "_move_script",
            [self.key, self.processing_key, self.workers_key, heartbeat],
            [count, self.worker_id, self._ttl_ms()],
        )
        if result is not None:
            added, raws = result
            self._note_membership(added)
            return list(raws)
        pipe = self.rdb.pipeline(transaction=False)
        self._register(pipe)
        for _ in range(count):
            pipe.lmove(self.key, self.processing_key, "LEFT", "RIGHT")
        _, added, *raws = pipe.execute()
        self._note_membership(added)
        return [raw for raw in raws if raw is not None]

    def _call_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run the registered script ``self.<name>``; None (and never again) where the server
        refuses scripts: the caller then does the same with plain commands."""
        script = getattr(self, name)
        if script is None:
            return None
        try:
            return script(keys=keys, args=args)
        except Exception as exc:
            if not _is_script_unavailable(exc):
                raise
            logger.info("Lua scripts unavailable (%s); using plain commands", exc)
            setattr(self, name, None)
            return None

    def _send(self, raws: list[Raw]) -> bool:
        """Deliver one batch and acknowledge it; False if it was abandoned at shutdown."""
        batch = _decode(raws)
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
        sent, unsent = self._outcome(batch)
        self._ack(unsent, batch.invalid)
        self._count("sent", len(sent))
        self._count("requeued", len(unsent))
        self._count("invalid", len(batch.invalid))
        if unsent and not sent:
            self._backoff()
        else:
            self._failures = 0
        return True

    def _deliver(self, batch: _Batch) -> None:
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

    def _wait(self, batch: _Batch) -> bool:
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

    def _outcome(self, batch: _Batch) -> tuple[list[Raw], list[Raw]]:
        """Split the batch into acknowledged and unsent events."""
        if batch.error is not None:
            logger.warning(
                "the emitter raised; %d event(s) stay queued: %r", len(batch.raws), batch.error
            )
            return [], batch.raws
        if not _reports_outcomes(self.emitter):
            return batch.raws, []
        with batch.reports.lock:
            reported = batch.reports.reported
            failed = Counter(event_identity(e) for e in batch.reports.unsent)
        sent: list[Raw] = []
        unsent: list[Raw] = []
        for raw, event in zip(batch.raws, batch.events):
            identity = event_identity(event)
            if failed[identity] > 0:
                failed[identity] -= 1
                unsent.append(raw)
            else:
                sent.append(raw)
        if reported < len(batch.events):
            logger.warning(
                "the emitter reported %d of %d event(s); the rest are sent again later",
                reported,
                len(batch.events),
            )
            return [], batch.raws
        return sent, unsent

    def _ack(self, unsent: list[Raw], invalid: list[Raw]) -> None:
        """Forget the batch; put ``unsent`` back at the tail of ``key`` in the same transaction."""
        pipe = self._ack_pipeline()
        if unsent:
            pipe.rpush(self.key, *unsent)
        if invalid:
            pipe.rpush(self.invalid_key, *invalid)
        pipe.delete(self.processing_key)
        pipe.execute()
        self._current = None

    def _ack_pipeline(self) -> Any:
        """A MULTI/EXEC pipeline, or an ordered one where the client has no transactions.

        redis-py before 6.1 refuses ``transaction=True`` on a ``RedisCluster``. A plain
        pipeline sends the same commands, in order, to the one node owning the slot of
        ``key``: the pushes come before the delete, so a crash between them can only
        send events twice, never lose them.
        """
        if self._transactions:
            try:
                return self.rdb.pipeline(transaction=True)
            except Exception as exc:
                if _is_redis_error(exc) or "transaction" not in str(exc).lower():
                    raise
                logger.info("no transactions on this client (%s); acknowledging in order", exc)
                self._transactions = False
        return self.rdb.pipeline(transaction=False)

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

    def _move_back(self, processing_key: str) -> int:
        """Move a processing list to the head of ``key``, keeping its order."""
        moved = 0
        while self.rdb.lmove(processing_key, self.key, "RIGHT", "LEFT") is not None:
            moved += 1
        return moved

    def _heartbeat_key(self, worker_id: str) -> str:
        return slot_key(self.key, f"alive:{worker_id}")

    def _ttl_ms(self) -> int:
        return int(self.heartbeat_ttl * 1000)

    def _beat(self) -> None:
        pipe = self.rdb.pipeline(transaction=False)
        self._register(pipe)
        _, added = pipe.execute()
        self._note_membership(added)

    def _register(self, pipe: Any) -> None:
        """Queue the heartbeat and the membership (in this order: a worker in the set never
        looks dead while starting)."""
        pipe.set(self._heartbeat_key(self.worker_id), "1", px=self._ttl_ms())
        pipe.sadd(self.workers_key, self.worker_id)

    def _note_membership(self, added: Any) -> None:
        """SADD added us after our first beat: we were not in the workers set. Another worker
        found our heartbeat expired, presumed us dead and removed us, after moving our
        processing list back to ``key`` (or the set itself was lost). The batch in flight, if
        any, may then be sent twice; nothing is lost."""
        with self._stats_lock:
            first, self._registered = not self._registered, True
        if added and not first:
            self._count("presumed_dead", 1)
            logger.warning(
                "RedisWorker %s was not in the workers set: presumed dead (paused longer than "
                "heartbeat_ttl %.1f s?), its processing list may have been recovered by another "
                "worker; events in flight may be sent twice",
                self.worker_id,
                self.heartbeat_ttl,
            )

    # -- recovery --------------------------------------------------------------------------------

    def _members(self) -> set[str]:
        return {_text(member) for member in self.rdb.smembers(self.workers_key)}

    def _scanned_workers(self) -> set[str]:
        """Ids of the workers with a processing list of ``key``, in or out of the workers set.

        SCAN with MATCH (never KEYS, which blocks the server); a cluster client scans every
        primary. Where SCAN is refused (an ACL, a proxy) recovery keeps to the workers set.
        """
        prefix = slot_key(self.key, "processing:")
        pattern = _glob_escape(prefix) + "*"
        try:
            return {
                _text(name)[len(prefix) :]
                for name in self.rdb.scan_iter(match=pattern, count=SCAN_COUNT, _type="LIST")
            }
        except Exception as exc:
            if not _is_refusal(exc):
                raise
            logger.warning(
                "SCAN refused (%s): only workers in %s are recovered", exc, self.workers_key
            )
            self._scan_allowed = False
            return set()

    def _recover_worker(self, other: str) -> int:
        """Move the processing list of ``other`` back to ``key`` if its heartbeat is gone."""
        heartbeat = self._heartbeat_key(other)
        processing = slot_key(self.key, f"processing:{other}")
        keys = [heartbeat, processing, self.key, self.workers_key]
        moved = self._call_script("_recover_script", keys, [other])
        if moved is None:
            moved = self._recover_without_script(heartbeat, processing, other)
        moved = int(moved)
        if moved > 0:
            logger.warning("recovered %d event(s) from dead worker %s", moved, other)
        return max(moved, 0)

    def _recover_without_script(self, heartbeat: str, processing: str, other: str) -> int:
        """The recovery script in plain commands. Not atomic: events a worker takes between
        the check and the moves (it resumed just then) go back to ``key`` while it sends them,
        so they are sent twice, never lost (its acknowledgement deletes only what is left of
        its own batch)."""
        if self.rdb.exists(heartbeat):
            return -1
        moved = self._move_back(processing)
        self.rdb.srem(self.workers_key, other)
        return moved

    def _unregister(self) -> None:
        try:
            if self.rdb.llen(self.processing_key) == 0:
                pipe = self.rdb.pipeline(transaction=False)
                pipe.srem(self.workers_key, self.worker_id)
                pipe.delete(self._heartbeat_key(self.worker_id))
                pipe.execute()
        except Exception as exc:
            logger.warning("could not unregister worker %s: %s", self.worker_id, exc)

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


# Register worker ARGV[2] (heartbeat KEYS[4] with a TTL of ARGV[3] ms, then membership of the
# set KEYS[3]), then atomically move up to ARGV[1] events from the head of KEYS[1] to the tail
# of KEYS[2]. Returns {1 if the worker was not in the set, the events}.
_MOVE_SCRIPT = """
redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
local added = redis.call('SADD', KEYS[3], ARGV[2])
local items = redis.call('LRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)
if #items > 0 then
  redis.call('LTRIM', KEYS[1], #items, -1)
  redis.call('RPUSH', KEYS[2], unpack(items))
end
return {added, items}
"""

# If the heartbeat KEYS[1] of worker ARGV[1] is gone, move its processing list KEYS[2] to the
# head of KEYS[3] in order and remove it from the set KEYS[4]; return the count, or -1 if it
# is alive. One script, so a worker that beats again is never taken from. A processing list
# holds at most one batch (MAX_BATCH), so the loop is short.
_RECOVER_SCRIPT = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return -1
end
local moved = 0
while redis.call('LMOVE', KEYS[2], KEYS[3], 'RIGHT', 'LEFT') do
  moved = moved + 1
end
redis.call('SREM', KEYS[4], ARGV[1])
return moved
"""


def _text(value: Raw) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _glob_escape(text: str) -> str:
    """``text`` as a literal in a Redis MATCH pattern (a key may hold ``*``, ``?`` or ``[``)."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


def _is_refusal(exc: BaseException) -> bool:
    """The server (an ACL, a proxy) or a duck-typed client does not do SCAN."""
    if isinstance(exc, AttributeError):
        return True
    try:
        import redis
    except ImportError:  # a duck-typed client without redis-py installed
        return False
    return isinstance(exc, redis.exceptions.ResponseError)


def _is_script_unavailable(exc: BaseException) -> bool:
    text = str(exc).lower()
    return "unknown command" in text or "noscript" in text or "not allowed" in text


def _decode(raws: list[Raw]) -> _Batch:
    valid: list[Raw] = []
    events: list[dict[str, Any]] = []
    invalid: list[Raw] = []
    for raw in raws:
        try:
            event = json.loads(raw)
        except ValueError:
            event = None
        if isinstance(event, dict):
            valid.append(raw)
            events.append(event)
        else:
            invalid.append(raw)
    if invalid:
        logger.error("%d stored event(s) are not JSON objects; moved aside", len(invalid))
    return _Batch(valid, events, invalid)


def _reports_outcomes(emitter: Any) -> bool:
    return hasattr(emitter, "on_success") and hasattr(emitter, "on_failure")


def _is_redis_error(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # a duck-typed client without redis-py installed
        return isinstance(exc, OSError)
    return isinstance(exc, (redis.exceptions.RedisError, OSError))


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
