"""RedisWorker's lists in Redis: every command that moves, acknowledges or recovers events.

The lists in Redis are the truth. A client-level retry (redis-py retries a command whose
reply was lost, and a lost reply is what a restart, a failover or a network blip causes)
must never be able to lose an event, so no command here trusts a reply to say what it moved:

* taking a batch returns the whole processing list, whatever earlier (re-run) moves put
  there, and tops it up to ``batch_size`` only: run twice, it returns the same batch;
* acknowledging is one script that does nothing when the processing list is already empty
  (the first run went through): run twice, it pushes nothing twice;
* moving a list back (at shutdown, after a Redis error, recovering a dead worker) moves
  whatever is there, one ``LMOVE`` or one script at a time: run twice, it moves the rest.

Without scripts (a proxy or an ACL refuses them), plain commands keep the same promises: the
acknowledgement is then a transaction on a watched processing list (redis-py never re-runs a
watched transaction). Only where the client has no transactions either (a cluster client of
redis-py before 6.1) can a re-run acknowledgement push unsent events twice (no loss).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ._redis_batch import Raw

logger = logging.getLogger("snowplow_tracker.redis_worker")

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


class WorkerLists:
    """The Redis commands of one worker (RedisWorker builds on it)."""

    rdb: Any
    key: str
    worker_id: str
    batch_size: int
    poll_interval: float
    heartbeat_ttl: float
    processing_key: str
    workers_key: str
    invalid_key: str
    _registered: bool
    _scan_allowed: bool
    _transactions: bool
    _stats_lock: threading.Lock

    def _init_lists(self) -> None:
        self.processing_key = slot_key(self.key, f"processing:{self.worker_id}")
        self.workers_key = slot_key(self.key, "workers")
        self.invalid_key = slot_key(self.key, "invalid")
        self._move_script: Any = self.rdb.register_script(_MOVE_SCRIPT)
        self._ack_script: Any = self.rdb.register_script(_ACK_SCRIPT)
        self._recover_script: Any = self.rdb.register_script(_RECOVER_SCRIPT)
        self._scan_allowed = True  # until the server refuses SCAN
        self._transactions = True  # until the client refuses them
        self._registered = False  # set by the first beat of a run

    def _count(self, name: str, n: int) -> None:
        raise NotImplementedError

    # -- taking ----------------------------------------------------------------------------------

    def _take(self) -> list[Raw]:
        """The batch to send: the whole processing list, topped up to ``batch_size``.

        Registers first, in the same pipeline: if another worker presumed us dead (paused past
        heartbeat_ttl) and removed us from the set, we are back in it, with a live heartbeat,
        before an event reaches our processing list. The block is shorter than the TTL, so the
        heartbeat is still alive when BLMOVE moves an event. BLMOVE's reply only says whether
        an event came: a re-run BLMOVE may have moved another (or, timing out, hide the one its
        first run moved), so the list's length, read in the same round trip, decides.
        """
        pipe = self.rdb.pipeline(transaction=False)
        self._register(pipe)
        block = min(self.poll_interval, self.heartbeat_ttl / 2)
        pipe.blmove(self.key, self.processing_key, block, src="LEFT", dest="RIGHT")
        pipe.llen(self.processing_key)
        _, added, _, waiting = pipe.execute()
        self._note_membership(added)
        if not waiting:
            return []
        raws = self._fill()
        self._count("taken", len(raws))
        return raws

    def _fill(self) -> list[Raw]:
        """Top the processing list up to ``batch_size`` and return all of it, in one round trip
        (a script; LMOVEs and an LRANGE in one pipeline without one). Both register the worker
        first, as :meth:`_take` does: a pause since the BLMOVE may have made another worker
        recover us meanwhile."""
        heartbeat = self._heartbeat_key(self.worker_id)
        result = self._call_script(
            "_move_script",
            [self.key, self.processing_key, self.workers_key, heartbeat],
            [self.batch_size, self.worker_id, self._ttl_ms()],
        )
        if result is not None:
            added, raws = result
            self._note_membership(added)
            return list(raws)
        pipe = self.rdb.pipeline(transaction=False)
        self._register(pipe)
        for _ in range(self.batch_size - 1):
            pipe.lmove(self.key, self.processing_key, "LEFT", "RIGHT")
        pipe.lrange(self.processing_key, 0, -1)
        replies = pipe.execute()
        self._note_membership(replies[1])
        return list(replies[-1])

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

    # -- acknowledging ---------------------------------------------------------------------------

    def _ack(self, unsent: list[Raw], invalid: list[Raw]) -> None:
        """Forget the batch; put ``unsent`` back at the tail of ``key`` and ``invalid`` in
        ``{key}:invalid``, all at once (nothing, if a first run of this already did it)."""
        args: list[Any] = [len(unsent), *unsent, *invalid]
        keys = [self.processing_key, self.key, self.invalid_key]
        if self._call_script("_ack_script", keys, args) is not None:
            return
        pipe = self._ack_pipeline()
        try:
            if self._transactions:
                # WATCH: redis-py never retries a watched transaction, and an empty list means
                # that the acknowledgement went through already (its reply was lost).
                pipe.watch(self.processing_key)
                if pipe.llen(self.processing_key) == 0:
                    return
                pipe.multi()
            if unsent:
                pipe.rpush(self.key, *unsent)
            if invalid:
                pipe.rpush(self.invalid_key, *invalid)
            pipe.delete(self.processing_key)
            pipe.execute()
        finally:
            pipe.reset()

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
                if is_redis_error(exc) or "transaction" not in str(exc).lower():
                    raise
                logger.info("no transactions on this client (%s); acknowledging in order", exc)
                self._transactions = False
        return self.rdb.pipeline(transaction=False)

    def _move_back(self, processing_key: str) -> int:
        """Move a processing list to the head of ``key``, keeping its order."""
        moved = 0
        while self.rdb.lmove(processing_key, self.key, "RIGHT", "LEFT") is not None:
            moved += 1
        return moved

    # -- membership ------------------------------------------------------------------------------

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

    def _unregister(self) -> None:
        try:
            if self.rdb.llen(self.processing_key) == 0:
                pipe = self.rdb.pipeline(transaction=False)
                pipe.srem(self.workers_key, self.worker_id)
                pipe.delete(self._heartbeat_key(self.worker_id))
                pipe.execute()
        except Exception as exc:
            logger.warning("could not unregister worker %s: %s", self.worker_id, exc)

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


# Register worker ARGV[2] (heartbeat KEYS[4] with a TTL of ARGV[3] ms, then membership of the
# set KEYS[3]), move events from the head of KEYS[1] to the tail of the processing list KEYS[2]
# until it holds ARGV[1], and return {1 if the worker was not in the set, the whole list}.
_MOVE_SCRIPT = """
redis.call('SET', KEYS[4], '1', 'PX', ARGV[3])
local added = redis.call('SADD', KEYS[3], ARGV[2])
local want = tonumber(ARGV[1]) - redis.call('LLEN', KEYS[2])
if want > 0 then
  local items = redis.call('LRANGE', KEYS[1], 0, want - 1)
  if #items > 0 then
    redis.call('LTRIM', KEYS[1], #items, -1)
    redis.call('RPUSH', KEYS[2], unpack(items))
  end
end
return {added, redis.call('LRANGE', KEYS[2], 0, -1)}
"""

# Acknowledge the processing list KEYS[1]: push the first ARGV[1] of the other ARGV (unsent)
# to the tail of KEYS[2], the rest (invalid) to KEYS[3], and delete KEYS[1]. An empty KEYS[1]
# was acknowledged already (a re-run) or recovered by another worker: then do nothing.
_ACK_SCRIPT = """
if redis.call('LLEN', KEYS[1]) == 0 then
  return 0
end
local unsent = tonumber(ARGV[1])
if unsent > 0 then
  redis.call('RPUSH', KEYS[2], unpack(ARGV, 2, unsent + 1))
end
if #ARGV > unsent + 1 then
  redis.call('RPUSH', KEYS[3], unpack(ARGV, unsent + 2, #ARGV))
end
redis.call('DEL', KEYS[1])
return 1
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


def is_redis_error(exc: BaseException) -> bool:
    try:
        import redis
    except ImportError:  # a duck-typed client without redis-py installed
        return isinstance(exc, OSError)
    return isinstance(exc, (redis.exceptions.RedisError, OSError))
