"""examples/accounting_follower.py killed with SIGKILL again and again: the copy stays exact.

The log grows between kills; each run is killed at a random moment after it
booked something (mid-batch, mid-commit, while polling). A last run catches up,
and the accounting database must hold each settlement of the log exactly once,
with the tracking position at the head. ``LEDGER_TEST_FOLLOWER_KILLS`` sets how
many kills (default 8; the closing note of issue 28 reports a longer run).
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledger.events import EventType, NewEvent
from ledger.store import EventStore
from tests.factories import request
from tests.queue_fixtures import wait_until

ROOT = Path(__file__).resolve().parents[2]
FOLLOWER = ROOT / "examples" / "accounting_follower.py"
KILLS = int(os.environ.get("LEDGER_TEST_FOLLOWER_KILLS", "8"))

pytestmark = pytest.mark.slow


def add_jobs(store: EventStore, count: int, prefix: str) -> None:
    """``count`` jobs: most paid at once, every fourth failed then paid, every fifth left open;
    every third paid one partly refunded, every seventh reversed in full."""
    results = store.enqueue_many(
        [
            request(idempotency_key=f"{prefix}-{i}", amount=100 + i, currency=("KRW", "USD")[i % 2])
            for i in range(count)
        ],
        max_attempts=3,
    )
    for i, result in enumerate(results):
        attempt = NewEvent(EventType.ATTEMPTED, {"attempt": 1, "lease_until": None}, "w")
        if i % 5 == 4:
            store.append(result.job_id, 1, [attempt])
            continue
        events = [attempt]
        if i % 4 == 3:
            failed = {"attempt": 1, "reason": "boom", "retryable": True}
            retry = {"due_at": None, "reason": "retry", "source": "retry"}
            events += [
                NewEvent(EventType.FAILED, failed),
                NewEvent(EventType.REQUEUED, retry),
                NewEvent(EventType.ATTEMPTED, {"attempt": 2, "lease_until": None}, "w"),
            ]
        amount = 100 + i
        done = {"attempt": len(events) // 3 + 1, "amount": amount, "reference": f"po-{i}"}
        events.append(NewEvent(EventType.COMPLETED, done, "w"))
        if i % 3 == 0:
            events.append(NewEvent(EventType.REFUNDED, {"amount": 7, "reason": "correction"}))
        if i % 7 == 0:
            back = amount - (7 if i % 3 == 0 else 0)
            events.append(NewEvent(EventType.REVERSED, {"amount": back, "reason": "bounced"}))
        store.append(result.job_id, 1, events)


def tracked(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(path, timeout=30) as db:
            row = db.execute("SELECT position FROM tracking").fetchone()
    except sqlite3.OperationalError:  # not created yet
        return 0
    return int(row[0]) if row else 0


def start(db_url: str, accounting: Path, *extra: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATABASE_URL"] = db_url
    command = [sys.executable, str(FOLLOWER), "--accounting", str(accounting), *extra]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_sigkill_at_any_moment_leaves_an_exact_copy(
    db_url: str, store: EventStore, tmp_path: Path
) -> None:
    rng = random.Random(28)
    accounting = tmp_path / "accounting.db"
    add_jobs(store, 40, "first")
    killed = 0
    for round_ in range(KILLS):
        add_jobs(store, 15, f"round-{round_}")
        before = tracked(accounting)
        follower = start(db_url, accounting, "--page-size", "7", "--poll", "0.01")
        wait_until(
            lambda: tracked(accounting) > before or follower.poll() is not None,  # noqa: B023
            timeout=120,
            what="the follower to book a batch",
            every=0.005,
        )
        time.sleep(rng.uniform(0, 0.03))
        follower.send_signal(signal.SIGKILL)
        _, stderr = follower.communicate(timeout=60)
        assert follower.returncode == -signal.SIGKILL, stderr
        killed += 1
    last = start(db_url, accounting, "--until-head", "--page-size", "7")
    out, err = last.communicate(timeout=300)
    assert last.returncode == 0, err
    head = store.head().position
    assert f"booked up to log position {head}" in out
    assert tracked(accounting) == head
    assert killed == KILLS
    expected = expected_copy(store)
    with sqlite3.connect(accounting) as db:
        copied = db.execute(
            "SELECT position, job_id, kind, amount, currency FROM entries ORDER BY position"
        ).fetchall()
    assert copied == expected


def expected_copy(store: EventStore) -> list[tuple[int, str, str, int, str]]:
    """What the accounting database must hold: each payment, refund and reversal, at its
    position, in the job's currency."""
    requests: dict[str, dict[str, object]] = {}
    rows: list[tuple[int, str, str, int, str]] = []
    for event in store.read_all():
        if event.type is EventType.ENQUEUED:
            requests[event.job_id] = event.data["request"]
        elif event.type in (EventType.COMPLETED, EventType.REFUNDED, EventType.REVERSED):
            currency = str(requests[event.job_id]["currency"])
            amount = int(event.data["amount"])
            rows.append((event.position, event.job_id, event.type.value, amount, currency))
    return rows
