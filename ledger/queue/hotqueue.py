"""``HotQueue``: the Redis side of the ledger, one method per Lua script.

It knows nothing about SQL: the ``Ledger`` service decides, from the log, what
to push, move or finish, always after the log has committed. Every multi-step
change is one Lua script (atomic); scores are milliseconds, and "now" inside a
script is Redis ``TIME``, the one clock all workers share.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, cast

import redis
from redis.cluster import RedisCluster
from redis.commands.core import Script
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    TryAgainError,
)

from ledger.errors import QueueRefused, QueueUnavailable, UnsafeRedis
from ledger.lifecycle import Job
from ledger.queue.keys import QueueKeys
from ledger.queue.snapshot import decode_job, encode_job

log = logging.getLogger("ledger.queue")

#: one Redis, or a Redis Cluster (every key of a queue shares one hash tag, so one slot)
RedisClient = redis.Redis | RedisCluster
#: the only eviction policy under which Redis never drops a queue key
SAFE_POLICY = "noeviction"
POLICY = "maxmemory-policy"
#: one ``.lua`` file per operation, in ``scripts/``
SCRIPTS = (
    "cache",
    "push",
    "move",
    "restore",
    "claim",
    "renew",
    "finish",
    "reap",
    "depths",
    "control",
)
#: (script name, KEYS, ARGV): one call queued in a pipeline
ScriptCall = tuple[str, list[str], list[Any]]
#: jobs per script call, so one call never blocks Redis for long
CHUNK = 500


@dataclass(frozen=True, slots=True)
class Claim:
    """What ``claim`` took: leased job ids, Redis' clock, and when the next delayed job is due
    (``paused``: the queue is paused, nothing was taken)."""

    now_ms: int
    next_due_ms: int | None
    job_ids: list[str]
    paused: bool = False


@dataclass(frozen=True, slots=True)
class Depths:
    """One consistent snapshot of the queue's sizes (from ``depths.lua``)."""

    now_ms: int
    ready: int
    delayed: int
    due: int
    inflight: int
    expired_leases: int
    oldest_ready_ms: int | None

    @property
    def waiting(self) -> int:
        """Jobs claimable now (ready, or delayed and already due)."""
        return self.ready + self.due

    @property
    def oldest_waiting_seconds(self) -> float | None:
        if self.oldest_ready_ms is None:
            return None
        return max(0.0, (self.now_ms - self.oldest_ready_ms) / 1000)


#: a cluster in the middle of a failover: the slot's primary is down or moving
_FAILING_OVER = (ClusterDownError, TryAgainError, RedisClusterException)

#: Redis answers but refuses writes for now: out of memory under ``noeviction``,
#: a replica after a failover (``READONLY``), a replica cut off from its primary
_REFUSING = (
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.MasterDownError,
)


@contextmanager
def translate_errors() -> Iterator[None]:
    """Every redis-py error becomes a ``QueueUnavailable`` at the queue's edge, by its class.

    Redis being away or refusing writes are passing states the caller waits out
    (the sweep pushes what was refused), never a reason to undo or misreport a
    committed change. Redis' own text (hosts, ports, the script's line) goes to
    the log only.
    """
    try:
        yield
    except (redis.RedisError, RedisClusterException) as exc:
        raise queue_error(exc) from None


def queue_error(error: redis.RedisError | RedisClusterException) -> QueueUnavailable:
    """The ledger error for a redis-py error (``QueueRefused`` when Redis answered "no")."""
    log.info("Redis error %s: %s", type(error).__name__, error)  # INFO: see driver_errors
    name = type(error).__name__
    if isinstance(error, _FAILING_OVER):
        # MasterDownError is a ClusterDownError too: both pass once a replica is promoted
        return QueueUnavailable(
            f"the Redis Cluster is failing over or missing a slot ({name}); it answers again "
            "once a replica is promoted (check `redis-cli cluster info`)"
        )
    if isinstance(error, BusyLoadingError):
        return QueueUnavailable(f"Redis is loading its data set ({name}); try again shortly")
    if isinstance(error, redis.ConnectionError | redis.TimeoutError):
        return QueueUnavailable(
            f"Redis cannot be reached ({name}); check LEDGER_REDIS_URL and that the server is up"
        )
    if isinstance(error, _REFUSING):
        return QueueRefused(
            f"Redis refuses writes for now ({name}: out of memory under noeviction, or a "
            "replica); what it refused is pushed again by the sweep"
        )
    if isinstance(error, redis.ResponseError):
        return QueueRefused(f"Redis refused a command ({name}); its log and ours say why")
    return QueueUnavailable(f"the Redis client failed ({name}); check LEDGER_REDIS_URL")


def _load_scripts(client: RedisClient) -> dict[str, Script]:
    folder = resources.files("ledger.queue") / "scripts"
    prelude = (folder / "prelude.lua").read_text(encoding="utf-8")
    return {
        name: client.register_script(prelude + (folder / f"{name}.lua").read_text(encoding="utf-8"))
        for name in SCRIPTS
    }


def _chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class HotQueue:
    """One queue's keys in one Redis. Build it with a client and pass it in."""

    def __init__(
        self,
        client: RedisClient,
        keys: QueueKeys,
        *,
        payload_ttl_seconds: int = 86_400,
        wake_tokens: int = 16,
        embedded: bool = False,
    ) -> None:
        self.client = client
        self.keys = keys
        self.payload_ttl_seconds = payload_ttl_seconds
        self.wake_tokens = wake_tokens
        #: in-process fakeredis: nothing else can push to it, and it cannot evict
        self.embedded = embedded
        self._scripts = _load_scripts(client)

    @property
    def _sets(self) -> list[str]:
        return [self.keys.ready, self.keys.delayed, self.keys.inflight]

    def _run(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        with translate_errors():
            return self._scripts[name](keys=list(keys), args=list(args))

    def close(self) -> None:
        """Close the client's connections (the queue's keys stay in Redis)."""
        self.client.close()

    # -- safety and liveness ---------------------------------------------------

    def ping(self) -> None:
        with translate_errors():
            self.client.ping()

    def check_safe(self) -> None:
        """Refuse a Redis that may evict keys (a silently dropped job would wait for a sweep)."""
        if self.embedded:
            return
        try:
            with translate_errors():
                policy = self._policy()
        except QueueRefused:
            raise UnsafeRedis(
                "cannot read Redis' maxmemory-policy (CONFIG GET refused); workers need "
                f"`maxmemory-policy {SAFE_POLICY}` and permission to check it"
            ) from None
        if policy != SAFE_POLICY:
            raise UnsafeRedis(
                f"Redis maxmemory-policy is {policy!r}, which can evict queue keys; "
                f"set `maxmemory-policy {SAFE_POLICY}` before starting workers"
            )

    def _policy(self) -> str | None:
        """``maxmemory-policy`` of Redis; on a cluster, of every node (a replica may be promoted).

        One node that may evict makes the answer that node's policy.
        """
        if not isinstance(self.client, RedisCluster):
            return cast(dict[str, str], self.client.config_get(POLICY)).get(POLICY)
        nodes = self.client.get_nodes()  # type: ignore[no-untyped-call]  # untyped in redis-py
        policies = {
            cast(dict[str, str], self.client.config_get(POLICY, target_nodes=node)).get(POLICY)
            for node in nodes
        }
        unsafe = sorted(str(policy) for policy in policies if policy != SAFE_POLICY)
        return unsafe[0] if unsafe else SAFE_POLICY

    def mark_recovered(self) -> None:
        """Write the sentinel that ``looks_flushed`` checks."""
        with translate_errors():
            self.client.set(self.keys.epoch, "1")

    def looks_flushed(self) -> bool:
        """True when the sentinel is gone: Redis lost its keys (flush, restart, failover)."""
        with translate_errors():
            return not self.client.exists(self.keys.epoch)

    # -- pushes and moves (after the log committed) ------------------------------

    def push(self, items: Sequence[tuple[str, int]], snapshots: Sequence[Job] = ()) -> int:
        """Push ``(job id, due ms or 0)`` unless held anywhere; cache ``snapshots`` first."""
        return self._cache_then("push", [*self._sets, self.keys.notify], items, snapshots)

    def move(self, items: Sequence[tuple[str, int]], snapshots: Sequence[Job] = ()) -> int:
        """Put ``(job id, due ms or 0)`` in ready or delayed, wherever it was held before."""
        return self._cache_then("move", [*self._sets, self.keys.notify], items, snapshots)

    def restore(self, items: Sequence[tuple[str, int]]) -> int:
        """Put ``(job id, lease deadline ms)`` back in flight unless held anywhere."""
        restored = 0
        for chunk in _chunks(items):
            args = [value for pair in chunk for value in pair]
            restored += int(self._run("restore", self._sets, args))
        return restored

    def _cache_then(
        self,
        script: str,
        keys: list[str],
        items: Sequence[tuple[str, int]],
        snapshots: Sequence[Job],
    ) -> int:
        """Cache entries first, then the script, in one round trip (a pipeline, in order)."""
        caching = self._cache_calls(snapshots, only_missing=False)
        calls = list(caching)
        for chunk in _chunks(items):
            args: list[Any] = [self.wake_tokens]
            for job_id, score in chunk:
                args += [job_id, score]
            calls.append((script, keys, args))
        results = self._run_pipelined(calls)
        return sum(int(n) for n in results[len(caching) :])

    def _run_pipelined(self, calls: Sequence[ScriptCall]) -> list[Any]:
        """Run script calls in order in one round trip.

        ``EVALSHA`` straight into the pipeline: redis-py's ``Script`` objects in a
        pipeline cost a ``SCRIPT EXISTS`` round trip per execute. If Redis lost
        the scripts (restart, ``SCRIPT FLUSH``) they are loaded and the calls run
        again; every script here is idempotent, so a second run is harmless.
        """
        if not calls:
            return []
        with translate_errors():
            try:
                return self._send(calls)
            except NoScriptError:
                for name in {name for name, _, _ in calls}:
                    script = self._scripts[name]
                    sha: object = self.client.script_load(script.script)  # typed per redis-py
                    script.sha = str(sha)
                return self._send(calls)

    def _send(self, calls: Sequence[ScriptCall]) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        for name, keys, args in calls:
            pipe.evalsha(self._scripts[name].sha, len(keys), *keys, *args)
        return list(pipe.execute())

    def finish(self, job_ids: Sequence[str]) -> int:
        """Drop finished jobs from every set, and their payload cache entries."""
        removed = 0
        for chunk in _chunks(job_ids):
            payloads = [self.keys.payload(job_id) for job_id in chunk]
            removed += int(self._run("finish", [*self._sets, *payloads], chunk))
        return removed

    # -- claiming --------------------------------------------------------------

    def claim(self, limit: int, lease_ms: int, promote: int = 1000) -> Claim:
        """Lease up to ``limit`` ready jobs (promoting due delayed ones first)."""
        result = self._run(
            "claim",
            [*self._sets, self.keys.notify, self.keys.control, self.keys.bucket],
            [max(limit, 0), lease_ms, promote],
        )
        next_due = int(result[1])
        return Claim(
            int(result[0]),
            None if next_due < 0 else next_due,
            list(result[3:]),
            paused=int(result[2]) == 1,
        )

    def set_controls(self, version: int, *, paused: bool, rate: int = 0) -> bool:
        """Store the controls of the operator stream's ``version`` for the claim script,
        unless a later version is stored; True if stored."""
        args = [version, 1 if paused else 0, rate]
        return bool(self._run("control", [self.keys.control], args))

    def wait(self, timeout: float) -> bool:
        """Block until a push wakes us or ``timeout`` seconds pass (no busy polling)."""
        with translate_errors():
            # Redis 6+ takes fractional seconds; redis-py's annotation still says int
            seconds = cast(int, max(timeout, 0.01))
            return self.client.blpop([self.keys.notify], timeout=seconds) is not None

    def renew(self, job_ids: Sequence[str], lease_ms: int) -> list[str]:
        """Extend leases; returns the ids whose lease was already lost."""
        lost: list[str] = []
        for chunk in _chunks(job_ids):
            lost += self._run("renew", [self.keys.inflight], [lease_ms, *chunk])
        return lost

    def reap(self, limit: int, grace_ms: int) -> list[str]:
        """Ids whose lease expired, held for ``grace_ms`` while the caller decides."""
        return list(self._run("reap", [self.keys.inflight], [limit, grace_ms]))

    # -- payload cache -----------------------------------------------------------

    def cache(self, jobs: Sequence[Job], *, only_missing: bool = False) -> None:
        """Write jobs' folded states to the payload cache (with the TTL)."""
        self._run_pipelined(self._cache_calls(jobs, only_missing=only_missing))

    def _cache_calls(self, jobs: Sequence[Job], *, only_missing: bool) -> list[ScriptCall]:
        """``cache.lua`` calls that write these jobs' entries."""
        return [
            (
                "cache",
                [self.keys.payload(job.job_id) for job in chunk],
                [self.payload_ttl_seconds, int(only_missing), *map(encode_job, chunk)],
            )
            for chunk in _chunks(jobs)
        ]

    def cached(self, job_ids: Sequence[str]) -> dict[str, Job]:
        """The cached states of these jobs (missing or unreadable entries left out)."""
        if not job_ids:
            return {}
        with translate_errors():
            keys = [self.keys.payload(job_id) for job_id in job_ids]
            values = cast(list[str | None], self.client.mget(keys))
        found: dict[str, Job] = {}
        for job_id, value in zip(job_ids, values, strict=True):
            job = decode_job(value) if value is not None else None
            if job is not None and job.job_id == job_id:
                found[job_id] = job
        return found

    def clean_payloads(self, batch: int = 500) -> int:
        """Delete cache entries of jobs the queue no longer holds (finished or gone).

        A job that comes back later (a requeue from the dead-letter queue) is
        cached again, or read from the log on a miss.
        """
        deleted = 0
        with translate_errors():
            keys: list[str] = []
            for key in self.client.scan_iter(match=self.keys.payload_pattern, count=batch):
                keys.append(key)
                if len(keys) >= batch:
                    deleted += self._drop_unheld(keys)
                    keys = []
            deleted += self._drop_unheld(keys)
        return deleted

    def _drop_unheld(self, payload_keys: list[str]) -> int:
        if not payload_keys:
            return 0
        ids = [self.keys.job_id_of(key) for key in payload_keys]
        pipe = self.client.pipeline(transaction=False)
        for job_id in ids:
            for name in self._sets:
                pipe.zscore(name, job_id)
        scores = pipe.execute()
        unheld = [
            payload_keys[n]
            for n in range(len(ids))
            if all(score is None for score in scores[3 * n : 3 * n + 3])
        ]
        if unheld:
            self.client.delete(*unheld)
        return len(unheld)

    # -- inspection --------------------------------------------------------------

    def depths(self) -> Depths:
        """Queue sizes, expired leases and the oldest ready job, at one instant."""
        raw = self._run("depths", self._sets, [])
        now, ready, delayed, due, inflight, expired, oldest = (int(v) for v in raw)
        return Depths(now, ready, delayed, due, inflight, expired, None if oldest < 0 else oldest)

    def delayed_due_by(self, deadline_ms: int) -> int:
        """How many delayed jobs are due at or before ``deadline_ms`` (Redis time, ms)."""
        with translate_errors():
            return int(self.client.zcount(self.keys.delayed, "-inf", deadline_ms))
