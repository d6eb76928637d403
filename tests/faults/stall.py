"""How long a writer stalls while another, holding the append lock, is stopped (SIGSTOP).

``python -m tests.faults.stall --backend postgres --stop 10``: a helper process
takes the append lock (an append transaction) and is stopped with SIGSTOP for
``--stop`` seconds, as a worker frozen mid-append would be; meanwhile this
process enqueues one settlement after another and reports the longest single
call, and what became of the stopped writer. Uses a database of its own (a
SQLite file, or a PostgreSQL database made and dropped). Only the ledger's
public wiring is used, so it runs against older trees too (``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from ledger import migrate
from ledger.db import create_engine
from ledger.errors import LedgerError
from ledger.request import SettlementRequest
from ledger.service import build_ledger
from ledger.settings import Settings
from tests.backends import postgres_admin_url

HOLDER = """
import sys, time
from ledger.service import build_ledger
from ledger.settings import Settings
ledger = build_ledger(Settings())
try:
    with ledger.store._writing():
        print("holding", flush=True)
        time.sleep(1)  # stopped within this second; resumed, it commits at once
    print("committed", flush=True)
except Exception as error:
    print("refused:", type(error).__name__, str(error).splitlines()[0][:160], flush=True)
"""


def enqueue_loop(url: str, stop: threading.Event, latencies: list[float]) -> None:
    ledger = build_ledger(Settings(database_url=url))
    n = 0
    while not stop.is_set():
        n += 1
        request = SettlementRequest(
            user_id="u",
            place_id="p",
            mission_id="m",
            amount=100,
            currency="KRW",
            idempotency_key=f"stall-{uuid.uuid4()}",
            metadata={},
        )
        started = time.monotonic()
        with contextlib.suppress(LedgerError):
            ledger.enqueue(request)
        latencies.append(time.monotonic() - started)
        time.sleep(0.01)
    ledger.close()


def measure(url: str, stop_seconds: float) -> None:
    env = {**os.environ, "LEDGER_DATABASE_URL": url}
    env.pop("LEDGER_REDIS_URL", None)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER], env=env, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    latencies: list[float] = []
    stop = threading.Event()
    assert holder.stdout.readline().strip() == "holding"
    holder.send_signal(signal.SIGSTOP)
    producer = threading.Thread(target=enqueue_loop, args=(url, stop, latencies))
    producer.start()
    time.sleep(stop_seconds)
    holder.send_signal(signal.SIGCONT)
    fate = holder.stdout.readline().strip()
    time.sleep(2)
    stop.set()
    producer.join()
    holder.kill()
    holder.wait()
    print(
        f"SIGSTOP {stop_seconds:.0f} s of a writer holding the append lock: "
        f"longest enqueue {max(latencies):.2f} s over {len(latencies)} enqueues; "
        f"the stopped writer, resumed: {fate}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--stop", type=float, default=10.0)
    args = parser.parse_args()
    if args.backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / 'ledger.db'}"
            migrate.upgrade(url)
            measure(url, args.stop)
        return
    name = f"ledger_stall_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        postgres_admin_url(), poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    try:
        url = make_url(postgres_admin_url()).set(database=name).render_as_string(False)
        migrate.upgrade(url)
        measure(url, args.stop)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()


if __name__ == "__main__":
    main()
