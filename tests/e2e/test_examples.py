"""The example scripts under examples/, run as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.events import EventType, NewEvent, StoredEvent
from ledger.store import EventStore
from tests.audit_support import build_log

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"


def run_example(name: str, db_url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env["LEDGER_DATABASE_URL"] = db_url
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
        check=False,
    )


@pytest.fixture
def log(store: EventStore) -> list[StoredEvent]:
    build_log(store, 12)
    return list(store.read_all())


def settled(log: list[StoredEvent]) -> list[tuple[str, int, str, str]]:
    """(key, amount, currency, completed at) of each completed job, in log order."""
    requests = {e.job_id: e.data["request"] for e in log if e.type is EventType.ENQUEUED}
    return [
        (
            requests[e.job_id]["idempotency_key"],
            requests[e.job_id]["amount"],
            requests[e.job_id]["currency"],
            e.occurred_at.isoformat(),
        )
        for e in log
        if e.type is EventType.COMPLETED
    ]


def test_month_end_reconcile_writes_each_difference_and_totals_per_currency(
    db_url: str, log: list[StoredEvent], tmp_path: Path
) -> None:
    paid = settled(log)
    lines = list(paid)
    missing = lines.pop(1)
    key, amount, currency, at = lines[2]
    lines[2] = (key, amount + 7, currency, at)
    lines.append(("not-ours", 500, "KRW", paid[-1][3]))
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "idempotency_key,amount,currency,settled_at\n"
        + "".join(f"{k},{a},{c},{t}\n" for k, a, c, t in lines),
        encoding="utf-8",
    )
    out = tmp_path / "differences.csv"
    result = run_example(
        "month_end_reconcile.py", db_url, "--statement", str(statement), "--out", str(out),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert "3 difference(s)" in result.stdout
    with out.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    kinds = {row["kind"]: row for row in rows if row["kind"] != "total"}
    assert set(kinds) == {"missing_from_statement", "amount_mismatch", "extra_in_statement"}
    assert kinds["missing_from_statement"]["idempotency_key"] == missing[0]
    assert kinds["amount_mismatch"]["difference"] == "-7"
    assert kinds["extra_in_statement"]["idempotency_key"] == "not-ours"
    totals = {row["currency"]: row for row in rows if row["kind"] == "total"}
    for cur in {c for _, _, c, _ in paid} | {"KRW"}:
        ledger = sum(a for _, a, c, _ in paid if c == cur)
        listed = sum(a for _, a, c, _ in lines if c == cur)
        assert (int(totals[cur]["ledger_amount"]), int(totals[cur]["statement_amount"])) == (
            ledger,
            listed,
        )
        assert int(totals[cur]["difference"]) == ledger - listed


def test_month_end_reconcile_agrees_with_a_faithful_statement_and_refuses_bad_input(
    db_url: str, log: list[StoredEvent], tmp_path: Path
) -> None:
    statement = tmp_path / "statement.csv"
    statement.write_text(
        "idempotency_key,amount,currency,settled_at\n"
        + "".join(f"{k},{a},{c},{t}\n" for k, a, c, t in settled(log)),
        encoding="utf-8",
    )
    out = tmp_path / "differences.csv"
    month = log[0].occurred_at.strftime("%Y-%m")
    ok = run_example(
        "month_end_reconcile.py", db_url, "--statement", str(statement), "--out", str(out),
        "--month", month, cwd=tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    with out.open(encoding="utf-8", newline="") as handle:
        assert all(row["kind"] == "total" for row in csv.DictReader(handle))
    bad = run_example(
        "month_end_reconcile.py", db_url, "--statement", str(tmp_path / "nope.csv"),
        "--out", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert bad.returncode == 2 and "cannot read statement" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_the_accounting_follower_copies_each_settlement_once(
    db_url: str, store: EventStore, log: list[StoredEvent], tmp_path: Path
) -> None:
    completed = [e for e in log if e.type is EventType.COMPLETED]
    for done, kind, amount in (
        (completed[0], EventType.REFUNDED, 3),
        (completed[1], EventType.REVERSED, 5),
    ):
        version = max(e.version for e in log if e.job_id == done.job_id)
        store.append(
            done.job_id, version, [NewEvent(kind, {"amount": amount, "reason": "r"}, "ops")]
        )
    log = list(store.read_all())
    accounting = tmp_path / "accounting.db"
    args = ("--accounting", str(accounting), "--until-head", "--page-size", "5")
    first = run_example("accounting_follower.py", db_url, *args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    again = run_example("accounting_follower.py", db_url, *args, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(accounting) as db:
        rows = db.execute(
            "SELECT idempotency_key, amount, currency, occurred_at FROM entries ORDER BY position"
        ).fetchall()
        (position,) = db.execute("SELECT position FROM tracking").fetchone()
    requests = {e.job_id: e.data["request"] for e in log if e.type is EventType.ENQUEUED}
    back = {
        e.position: (
            requests[e.job_id]["idempotency_key"],
            e.data["amount"],
            requests[e.job_id]["currency"],
            e.occurred_at.isoformat(),
        )
        for e in log
        if e.type in (EventType.REFUNDED, EventType.REVERSED)
    }
    paid = dict(
        zip([e.position for e in log if e.type is EventType.COMPLETED], settled(log), strict=True)
    )
    assert rows == [row for _, row in sorted({**paid, **back}.items())]
    assert len(back) == 2
    assert position == log[-1].position
