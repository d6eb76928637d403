"""Queue fixtures: a Redis client parametrised over fakeredis, a real Redis and a real
local Redis Cluster (``tests/redis_cluster.py``), a unique queue per test (never a flush
of the shared server), and a wired ``Ledger``.

Import the fixtures into a test module (``from tests.queue_fixtures import *``-style
names are listed in ``__all__``) or through ``tests/conftest.py``.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import fakeredis
import pytest
import redis
from sqlalchemy.engine import Engine

from ledger.events import EventType
from ledger.lifecycle import Job, JobStatus, fold
from ledger.ports import WorkQueue
from ledger.queue import HotQueue, QueueKeys
from ledger.queue.hotqueue import RedisClient
from ledger.retry import RetryPolicy
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store import EventStore
from tests.backends import REDIS_URL, unavailable
from tests.memory import MemoryQueue
from tests.redis_cluster import LocalCluster

REDIS_BACKENDS = ["fakeredis", "redis", "cluster"]


def unique_queue() -> str:
    return f"t{uuid.uuid4().hex[:10]}"


def delete_queue_keys(client: RedisClient, queue: str) -> None:
    """Remove one test queue's keys (SCAN on its own hash tag; never FLUSHDB)."""
    keys = list(client.scan_iter(match=f"ledger:{{{queue}}}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture(params=REDIS_BACKENDS)
def redis_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def queue_name() -> str:
    return unique_queue()


@contextmanager
def redis_client_on(
    redis_backend: str, queue_name: str, request: pytest.FixtureRequest
) -> Iterator[RedisClient]:
    """A client of a fresh fakeredis server, of the shared Redis, or of the local Redis
    Cluster (the queue's keys deleted afterwards, never a flush)."""
    if redis_backend == "fakeredis":
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        yield client
        client.close()
        return
    if redis_backend == "cluster":
        cluster: LocalCluster = request.getfixturevalue("redis_cluster")
        cluster_client = cluster.client()
        yield cluster_client
        delete_queue_keys(cluster_client, queue_name)
        cluster_client.close()
        return
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        client.ping()
    except redis.ConnectionError as exc:
        unavailable("Redis", exc)
    yield client
    delete_queue_keys(client, queue_name)
    client.close()


@pytest.fixture
def redis_client(
    redis_backend: str, queue_name: str, request: pytest.FixtureRequest
) -> Iterator[RedisClient]:
    with redis_client_on(redis_backend, queue_name, request) as client:
        yield client


_SETS = ("ready", "delayed", "inflight")


def holds(queue: HotQueue | MemoryQueue | WorkQueue, job_id: str) -> str | None:
    """Which set holds the job (``ready``, ``delayed``, ``inflight``) or ``None``: what a
    test reads with ZSCORE (the service never needs to ask)."""
    if isinstance(queue, MemoryQueue):
        return queue.holds(job_id)
    assert isinstance(queue, HotQueue)
    pipe = queue.client.pipeline(transaction=False)
    for name in _SETS:
        pipe.zscore(getattr(queue.keys, name), job_id)
    for label, found_score in zip(_SETS, pipe.execute(), strict=True):
        if found_score is not None:
            return label
    return None


def score(queue: HotQueue | MemoryQueue | WorkQueue, job_id: str, where: str) -> int | None:
    """The job's score in ``ready``/``delayed``/``inflight`` (ms), if held there."""
    if isinstance(queue, MemoryQueue):
        return queue.score(job_id, where)
    assert isinstance(queue, HotQueue)
    value: object = queue.client.zscore(getattr(queue.keys, where), job_id)
    return None if value is None else int(cast(float, value))


@pytest.fixture
def hot_queue(redis_client: RedisClient, redis_backend: str, queue_name: str) -> HotQueue:
    return HotQueue(redis_client, QueueKeys(queue_name), embedded=redis_backend == "fakeredis")


@pytest.fixture
def ledger(db_url: str, engine: Engine, hot_queue: HotQueue) -> Ledger:
    """A ledger on this test's database and queue; fast retries, no relay grace."""
    settings = Settings(
        database_url=db_url,
        queue_name=hot_queue.keys.queue,
        retry_base_seconds=0.01,
        retry_cap_seconds=0.05,
        relay_grace_seconds=0.0,
        default_max_attempts=3,
    )
    return Ledger(
        settings=settings,
        engine=engine,
        store=EventStore(engine),
        queue=hot_queue,
        policy=RetryPolicy(0.01, 0.05),
    )


@dataclass
class LogSummary:
    """What the log says, counted the way the fault tests assert it."""

    jobs: dict[str, Job] = field(default_factory=dict)
    completions: Counter[str] = field(default_factory=Counter)

    @property
    def lost(self) -> list[str]:
        """Jobs that are not completed (every fault test ends with all of them done)."""
        return [j for j, job in self.jobs.items() if job.status is not JobStatus.COMPLETED]

    @property
    def duplicated(self) -> dict[str, int]:
        return {j: n for j, n in self.completions.items() if n != 1}


def summarise(store: EventStore) -> LogSummary:
    """Fold every stream (``fold`` raises on any illegal history) and count completions."""
    streams: dict[str, list] = {}  # type: ignore[type-arg]
    summary = LogSummary()
    for event in store.read_all():
        streams.setdefault(event.job_id, []).append(event)
        if event.type is EventType.COMPLETED:
            summary.completions[event.job_id] += 1
    for job_id, events in streams.items():
        job = fold(events)
        assert job is not None
        summary.jobs[job_id] = job
    return summary


def wait_until(predicate: object, timeout: float, what: str, every: float = 0.05) -> None:
    """Poll ``predicate`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(every)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class OwnRedis:
    """A private redis-server for tests that flush or restart it."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True)


def start_redis(port: int, *extra: str) -> OwnRedis:
    binary = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(binary).exists():
        unavailable("redis-server", "binary not found")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--bind",
            "127.0.0.1",
            *extra,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = OwnRedis(port, process)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            server.client().ping()
            return server
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    unavailable("redis-server", f"did not start on port {port}")
    raise AssertionError("unreachable")


@pytest.fixture
def own_redis() -> Iterator[OwnRedis]:
    server = start_redis(free_port())
    yield server
    server.process.kill()
    server.process.wait(timeout=10)


__all__ = [
    "LogSummary",
    "OwnRedis",
    "delete_queue_keys",
    "free_port",
    "hot_queue",
    "ledger",
    "own_redis",
    "queue_name",
    "redis_backend",
    "redis_client",
    "start_redis",
    "summarise",
    "unique_queue",
    "wait_until",
]


def on_stacks(stacks: list[tuple[str, str]]) -> pytest.MarkDecorator:
    """Run a module's tests on each (database, Redis) pair, e.g. ("sqlite", "fakeredis")."""
    return pytest.mark.parametrize(
        ("db_backend", "redis_backend"), stacks, ids=["-".join(stack) for stack in stacks]
    )
