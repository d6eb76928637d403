"""The chaos run's own services and processes: Redis, the database, the supervised workers."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ledger import migrate
from ledger.db import create_engine
from tests.backends import postgres_admin_url

ROOT = Path(__file__).resolve().parents[2]
LEDGER = [sys.executable, "-m", "ledger.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class OwnRedis:
    """A redis-server of the run's own on a free loopback port; kill and restart it empty."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()  # one Redis fault at a time
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, decode_responses=True, socket_timeout=5)

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--maxmemory-policy", "noeviction"]
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(
            [binary, *args, "--dir", str(self.directory)], stdout=log, stderr=log
        )
        for _ in range(200):
            try:
                self.client().ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def set_maxmemory(self, value: int) -> None:
        with self.client() as client:
            client.config_set("maxmemory", value)


class OwnDatabase:
    """The run's own database: a SQLite file, or a PostgreSQL database made and dropped."""

    def __init__(self, backend: str, directory: Path, seed: int) -> None:
        self.backend = backend
        self.name = f"ledger_chaos_{seed}_{uuid.uuid4().hex[:6]}"
        self.admin: Engine | None = None
        if backend == "sqlite":
            self.url = f"sqlite:///{directory / 'ledger.db'}"
        else:
            admin_url = postgres_admin_url()
            self.admin = create_engine(
                admin_url, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
            )
            self._admin(f"CREATE DATABASE {self.name}")
            self.url = make_url(admin_url).set(database=self.name).render_as_string(False)
        migrate.upgrade(self.url)

    def _admin(self, statement: str, **params: object) -> None:
        assert self.admin is not None
        with self.admin.connect() as conn:
            conn.execute(sa.text(statement), params)

    def terminate(self) -> None:
        """``pg_terminate_backend`` on every session of the run's database."""
        self._admin(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = :name AND pid <> pg_backend_pid()",
            name=self.name,
        )

    def refuse(self, refusing: bool) -> None:
        """Refuse (or allow again) new connections; refusing also ends the open ones."""
        self._admin(f"ALTER DATABASE {self.name} ALLOW_CONNECTIONS {str(not refusing).lower()}")
        if refusing:
            self.terminate()

    def drop(self) -> None:
        if self.admin is not None:
            self._admin(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            self.admin.dispose()


@dataclass
class Slot:
    """One supervised worker: the process in it now and how many it has had."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    spawned: int = 0
    #: pid the harness killed on purpose (its exit is expected)
    killed: set[int] = field(default_factory=set)


class Supervisor:
    """Keeps K ``ledger worker`` processes running, respawning any that exits."""

    def __init__(self, count: int, env: dict[str, str], directory: Path) -> None:
        self.env = env
        self.directory = directory
        self.slots = [Slot(n) for n in range(count)]
        self.unexpected: list[str] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        for slot in self.slots:
            self._spawn(slot)
        self._thread = threading.Thread(target=self._watch, name="chaos-supervisor", daemon=True)
        self._thread.start()

    def _spawn(self, slot: Slot) -> None:
        slot.spawned += 1
        stem = self.directory / f"worker{slot.index}-{slot.spawned}"
        args = ["worker", "--handler", "tests.faults.chaos_provider:pay", "--concurrency", "4"]
        with Path(f"{stem}.out").open("wb") as out, Path(f"{stem}.err").open("wb") as err:
            slot.process = subprocess.Popen(
                [*LEDGER, *args], env=self.env, cwd=ROOT, stdout=out, stderr=err
            )

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            with self.lock:
                for slot in self.slots:
                    self._check(slot)

    def _check(self, slot: Slot) -> None:
        process = slot.process
        if process is None or process.poll() is None:
            return
        if process.pid not in slot.killed:
            err = self.directory / f"worker{slot.index}-{slot.spawned}.err"
            tail = err.read_text(errors="replace")[-600:] if err.exists() else ""
            self.unexpected.append(f"worker {process.pid} exited {process.returncode}: {tail}")
        self._spawn(slot)

    def signal(self, index: int, signum: int) -> int | None:
        """Send ``signum`` to the worker in slot ``index``; its pid (None if none runs)."""
        with self.lock:
            process = self.slots[index].process
            if process is None or process.poll() is not None:
                return None
            if signum == signal.SIGKILL:
                self.slots[index].killed.add(process.pid)
            process.send_signal(signum)
            return process.pid

    def all_started(self) -> bool:
        """Whether the worker in every slot has said it started (its recovery is done)."""
        with self.lock:
            return all(
                " started: " in self._stderr(slot).read_text(errors="replace")
                for slot in self.slots
            )

    def _stderr(self, slot: Slot) -> Path:
        return self.directory / f"worker{slot.index}-{slot.spawned}.err"

    def stop(self) -> None:
        """SIGTERM every worker (graceful), then SIGKILL whatever did not exit."""
        self._stop.set()
        self._thread.join()
        for slot in self.slots:
            if slot.process is not None and slot.process.poll() is None:
                slot.process.send_signal(signal.SIGCONT)
                slot.process.send_signal(signal.SIGTERM)
        for slot in self.slots:
            if slot.process is None:
                continue
            try:
                slot.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                slot.process.kill()
                slot.process.wait(timeout=10)


def start_follower(env: dict[str, str], directory: Path) -> subprocess.Popen[bytes]:
    """``ledger project --follow``: the live projections the check compares with a replay."""
    with (
        (directory / "follower.out").open("wb") as out,
        (directory / "follower.err").open("wb") as err,
    ):
        return subprocess.Popen(
            [*LEDGER, "project", "--follow", "--poll", "0.5"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=err,
        )


def worker_environment(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEDGER_", "CHAOS_"))}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env
