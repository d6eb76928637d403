"""Fault-injection fixtures: a private redis-server, worker processes, log counters.

Every fault test runs real ``ledger worker`` processes against its own
redis-server (so it may flush or kill it) and the test's SQL backend, then counts
from the log: no job lost, exactly one completion per job.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.service import Ledger, build_ledger
from ledger.settings import Settings
from tests.queue_fixtures import OwnRedis, free_port, start_redis, summarise, wait_until

ROOT = Path(__file__).resolve().parents[2]
QUEUE = "faults"


@pytest.fixture
def private_redis() -> Iterator[OwnRedis]:
    server = start_redis(free_port())
    yield server
    server.process.kill()
    server.process.wait(timeout=10)


def worker_env(db_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "LEDGER_DATABASE_URL": db_url,
            "LEDGER_REDIS_URL": redis_url,
            "LEDGER_QUEUE_NAME": QUEUE,
            "LEDGER_SWEEP_SECONDS": "0.2",
            "LEDGER_RELAY_GRACE_SECONDS": "0.5",
            "LEDGER_RETRY_BASE_SECONDS": "0.05",
            "LEDGER_RETRY_CAP_SECONDS": "0.2",
            "LEDGER_DEFAULT_MAX_ATTEMPTS": "10",
        }
    )
    env.update(extra)
    return env


@dataclass
class WorkerProcess:
    """One ``ledger worker`` process; output goes to files (a pipe could fill and block)."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait_started(self, timeout: float = 60) -> None:
        """Until the worker has said it started (its SIGTERM handler is in place by then)."""
        wait_until(
            lambda: " started: " in self.stderr.read_text(), timeout, "the worker's start-up"
        )

    def stop(self, timeout: float = 60) -> dict[str, object]:
        """SIGTERM, wait, and return the worker's stats line (it must exit 0)."""
        self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 120) -> dict[str, object]:
        code = self.process.wait(timeout=timeout)
        assert code == 0, f"worker exited {code}: {self.stderr.read_text()[-3000:]}"
        return orjson.loads(self.stdout.read_text().strip().splitlines()[-1])  # type: ignore[no-any-return]


@dataclass
class Workers:
    db_url: str
    redis_url: str
    tmp_path: Path
    started: list[WorkerProcess] = field(default_factory=list)

    def start(self, *args: str, **env: str) -> WorkerProcess:
        n = len(self.started)
        out, err = self.tmp_path / f"worker{n}.out", self.tmp_path / f"worker{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            process = subprocess.Popen(
                [sys.executable, "-m", "ledger.cli.main", "worker", *args],
                env=worker_env(self.db_url, self.redis_url, **env),
                cwd=self.tmp_path,
                stdout=stdout,
                stderr=stderr,
            )
        worker = WorkerProcess(process, out, err)
        self.started.append(worker)
        return worker

    def kill_all(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGCONT)
                worker.process.kill()
                worker.process.wait(timeout=10)


@pytest.fixture
def workers(db_url: str, private_redis: OwnRedis, tmp_path: Path) -> Iterator[Workers]:
    group = Workers(db_url, private_redis.url, tmp_path)
    yield group
    group.kill_all()


@pytest.fixture
def fault_ledger(db_url: str, private_redis: OwnRedis) -> Iterator[Ledger]:
    """The test's own ledger on the same log and private Redis (to enqueue and inspect)."""
    settings = Settings(database_url=db_url, redis_url=private_redis.url, queue_name=QUEUE)
    ledger = build_ledger(settings)
    yield ledger
    ledger.close()


def count_events(engine: Engine, event_type: str) -> int:
    with engine.connect() as conn:
        query = sa.text("SELECT count(*) FROM events WHERE type = :t")
        return int(conn.execute(query, {"t": event_type}).scalar_one())


def assert_exactly_once(ledger: Ledger, expected: set[str]) -> None:
    """Counted from the log: no job lost, one completion per job, every history legal."""
    summary = summarise(ledger.store)
    assert set(summary.jobs) == expected
    assert summary.lost == []
    assert summary.duplicated == {}
    assert set(summary.completions) == expected


__all__ = ["assert_exactly_once", "count_events", "fault_ledger", "private_redis", "workers"]
