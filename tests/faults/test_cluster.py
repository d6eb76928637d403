"""The hot queue on a real Redis Cluster (3 masters, 1 replica each) under faults (issue 27).

Worker processes run against PostgreSQL and the cluster (``LEDGER_REDIS_CLUSTER=true``,
``LEDGER_REDIS_URL`` naming one node). Halfway through, the cluster loses its data
(FLUSHALL on every master), fails over by hand (``CLUSTER FAILOVER`` on the queue's
replica), or loses the queue's master to SIGKILL (its replica is promoted). Each test
ends by counting from the log: no job lost, one completion per job, no job stranded.
Workers can also pose as separate hosts (own process group, own UTS namespace).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.events import EventType
from ledger.lifecycle import JobStatus
from ledger.queue import HotQueue, QueueKeys
from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.factories import request
from tests.faults.conftest import (
    WorkerProcess,
    Workers,
    assert_exactly_once,
    count_events,
    worker_env,
)
from tests.queue_fixtures import unique_queue, wait_until
from tests.redis_cluster import LocalCluster

pytestmark = pytest.mark.slow
#: the production pair: PostgreSQL and the cluster
ON_POSTGRES = pytest.mark.parametrize("db_backend", ["postgres"])

HANDLER = "tests.faults.handlers:slow"
#: ``metadata["mode"]`` picks the behaviour (``sleep`` for a job that outlives its lease)
MIXED = "tests.faults.handlers:mixed"
JOBS = 600


class ClusterWorkers(Workers):
    """``ledger worker`` processes on the cluster, each in its own process group.

    With ``host`` set (and ``unshare`` allowed: CI runs as root) a worker also gets
    its own UTS namespace and host name, so its worker id names another host.
    """

    queue: str = ""

    def start_on(
        self, host: str | None = None, *args: str, handler: str = HANDLER
    ) -> WorkerProcess:
        n = len(self.started)
        out, err = self.tmp_path / f"worker{n}.out", self.tmp_path / f"worker{n}.err"
        command = [sys.executable, "-m", "ledger.cli.main", "worker", "--handler", handler]
        if host is not None:
            # unshare and sh exec: the worker keeps the pid Popen knows
            command = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "-"]
            command += [sys.executable, "-m", "ledger.cli.main", "worker", "--handler", handler]
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [*command, "--concurrency", "4", "--lease", "5", *args],
                env=cluster_env(self.db_url, self.redis_url, self.queue),
                cwd=self.tmp_path,
                stdout=stdout,
                stderr=stderr,
                process_group=0,
            )
        worker = WorkerProcess(process, out, err)
        self.started.append(worker)
        return worker


def cluster_env(db_url: str, redis_url: str, queue: str) -> dict[str, str]:
    return worker_env(
        db_url,
        redis_url,
        LEDGER_REDIS_CLUSTER="true",
        LEDGER_QUEUE_NAME=queue,
        LEDGER_TEST_SLEEP="0.005",
    )


@pytest.fixture
def cluster_ledger(db_url: str, redis_cluster: LocalCluster) -> Iterator[Ledger]:
    settings = Settings(
        database_url=db_url,
        redis_url=redis_cluster.url,
        redis_cluster=True,
        queue_name=unique_queue(),
    )
    ledger = build_ledger(settings)
    yield ledger
    ledger.close()


@pytest.fixture
def cluster_workers(
    db_url: str, redis_cluster: LocalCluster, cluster_ledger: Ledger, tmp_path: Path
) -> Iterator[ClusterWorkers]:
    group = ClusterWorkers(db_url, redis_cluster.url, tmp_path)
    group.queue = cluster_ledger.queue.keys.queue
    yield group
    group.kill_all()


def enqueue(ledger: Ledger, n: int) -> set[str]:
    return {ledger.enqueue(request(idempotency_key=f"k{i}")).job_id for i in range(n)}


def completed(ledger: Ledger) -> int:
    return count_events(ledger.engine, "completed")


def finish(ledger: Ledger, running: list[WorkerProcess], ids: set[str]) -> None:
    """Wait for every job and for Redis to hold none of them, stop, count from the log.

    A restore from a recover can race a completion and leave a finished job's
    lease behind; the workers' sweep reaps it once the lease runs out, so the
    queue ends empty: no job stranded.
    """
    wait_until(lambda: completed(ledger) >= len(ids), 240, "every job", every=0.2)
    wait_until(lambda: queue_is_empty(ledger), 60, "an empty queue", every=0.2)
    for worker in running:
        worker.wait_started()
        worker.stop()
    assert_exactly_once(ledger, ids)


def start_two(workers: ClusterWorkers) -> list[WorkerProcess]:
    """Two workers, both past their start-up recover (a fault then hits running workers).

    A small prefetch keeps most jobs in Redis, not in the workers' hands, when the fault hits.
    """
    running = [workers.start_on(None, "--prefetch", "16") for _ in range(2)]
    for worker in running:
        worker.wait_started()
    return running


def queue_is_empty(ledger: Ledger) -> bool:
    depths = ledger.queue.depths()
    return (depths.ready, depths.delayed, depths.inflight) == (0, 0, 0)


def test_the_cluster_passes_the_eviction_check(redis_cluster: LocalCluster) -> None:
    client = redis_cluster.client()
    HotQueue(client, QueueKeys(unique_queue())).check_safe()  # every node runs noeviction
    client.close()


@ON_POSTGRES
def test_flushall_on_every_master_halfway(
    cluster_ledger: Ledger, cluster_workers: ClusterWorkers, redis_cluster: LocalCluster
) -> None:
    ids = enqueue(cluster_ledger, JOBS)
    running = start_two(cluster_workers)
    wait_until(lambda: completed(cluster_ledger) >= JOBS // 3, 240, "a third", every=0.01)
    redis_cluster.flushall()
    finish(cluster_ledger, running, ids)
    assert any("Redis had lost the queue" in w.stderr.read_text() for w in running)


@ON_POSTGRES
def test_manual_failover_of_the_queues_master_halfway(
    cluster_ledger: Ledger, cluster_workers: ClusterWorkers, redis_cluster: LocalCluster
) -> None:
    ready = cluster_ledger.queue.keys.ready
    master = redis_cluster.master_of(ready)
    replica = redis_cluster.replica_of(master)
    ids = enqueue(cluster_ledger, JOBS)
    running = start_two(cluster_workers)
    wait_until(lambda: completed(cluster_ledger) >= JOBS // 3, 240, "a third", every=0.01)
    redis_cluster.failover(replica, master)
    wait_until(lambda: redis_cluster.serving(ready) == replica, 30, "the replica promoted")
    finish(cluster_ledger, running, ids)


@ON_POSTGRES
def test_a_killed_master_is_replaced_by_its_replica(
    cluster_ledger: Ledger, cluster_workers: ClusterWorkers, redis_cluster: LocalCluster
) -> None:
    ready = cluster_ledger.queue.keys.ready
    master = redis_cluster.master_of(ready)
    replica = redis_cluster.replica_of(master)
    ids = enqueue(cluster_ledger, JOBS)
    running = start_two(cluster_workers)
    wait_until(lambda: completed(cluster_ledger) >= JOBS // 3, 240, "a third", every=0.01)
    redis_cluster.kill(master)
    try:
        wait_until(lambda: redis_cluster.serving(ready) == replica, 60, "the replica promoted")
        finish(cluster_ledger, running, ids)
    finally:
        redis_cluster.restart(master)  # back as a replica: the next test has a whole cluster


@ON_POSTGRES
def test_workers_on_two_hosts_complete_each_job_once(
    cluster_ledger: Ledger, cluster_workers: ClusterWorkers
) -> None:
    hosts = ["host-a", "host-b"] if can_unshare() else [None, None]
    ids = enqueue(cluster_ledger, JOBS)
    running = [cluster_workers.start_on(host) for host in hosts for _ in range(2)]
    finish(cluster_ledger, running, ids)
    actors = {
        event.actor.split(":")[0]
        for event in cluster_ledger.store.read_all()
        if event.type is EventType.ATTEMPTED
    }
    if hosts[0] is not None:  # every attempt names the host its worker ran on
        assert actors and actors <= set(hosts), actors


@ON_POSTGRES
def test_a_stalled_host_loses_its_lease_to_another_host(
    cluster_ledger: Ledger, cluster_workers: ClusterWorkers
) -> None:
    """Host A stops (every process of it) past its lease; host B's worker takes the job and
    completes it; A's outcome, when it runs again, is refused by the log's version check."""
    first, second = ("host-a", "host-b") if can_unshare() else (None, None)
    sleepy = request(idempotency_key="stall", metadata={"mode": "sleep", "seconds": 1.5})
    job_id = cluster_ledger.enqueue(sleepy).job_id
    paused = cluster_workers.start_on(first, "--lease", "1", handler=MIXED)
    wait_until(lambda: cluster_ledger.job(job_id).status is JobStatus.PROCESSING, 60, "attempt 1")
    os.killpg(paused.process.pid, signal.SIGSTOP)  # the whole host, as far as it is a group
    try:
        rescuer = cluster_workers.start_on(second, "--burst", "--lease", "10", handler=MIXED)
        assert rescuer.wait()["completed"] == 1
    finally:
        os.killpg(paused.process.pid, signal.SIGCONT)
    late = paused.stop()
    assert late["refused"] == 1 and late["completed"] == 0
    assert_exactly_once(cluster_ledger, {job_id})
    events = cluster_ledger.store.read_stream(job_id)
    attempts = [e.actor for e in events if e.type is EventType.ATTEMPTED]
    (completed,) = [e.actor for e in events if e.type is EventType.COMPLETED]
    assert len(attempts) == 2 and completed == attempts[1] != attempts[0]
    if first is not None:
        assert attempts[0].startswith(f"{first}:") and completed.startswith(f"{second}:")


def can_unshare() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--uts", "true"], capture_output=True, check=False)
    return probe.returncode == 0
