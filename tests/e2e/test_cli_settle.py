"""``ledger cancel``, ``reverse``, ``refund`` and ``repay`` as an operator runs them."""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.e2e.conftest import RunLedger

ARGS = ["--user-id", "u1", "--place-id", "p1", "--mission-id", "m1", "--amount", "5000"]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def refused(result: object, words: str) -> None:
    """Exit 2 with one clear line on stderr, no traceback."""
    assert result.returncode == 2, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    lines = result.stderr.strip().splitlines()  # type: ignore[attr-defined]
    assert len(lines) == 1 and words in lines[0], lines
    assert "Traceback" not in result.stderr  # type: ignore[attr-defined]


def test_cancel_a_waiting_job(run_ledger: RunLedger, engine: Engine) -> None:
    job_id = run_ledger("enqueue", *ARGS, "--idempotency-key", "c1").stdout.strip()
    done = run_ledger("cancel", job_id, "--actor", "ops", "--reason", "fraud")
    assert done.returncode == 0, done.stderr
    body = orjson.loads(done.stdout)
    assert (body["status"], body["appended"]) == ("cancelled", True)
    again = orjson.loads(run_ledger("cancel", job_id, "--actor", "ops", "--reason", "x").stdout)
    assert again["appended"] is False
    assert count(engine) == 2


def test_bad_input_is_one_line_and_appends_nothing(run_ledger: RunLedger, engine: Engine) -> None:
    job_id = run_ledger("enqueue", *ARGS, "--idempotency-key", "c2").stdout.strip()
    before = count(engine)
    refused(run_ledger("reverse", job_id, "--amount", "5", "--reason", "x"), "completed")
    refused(run_ledger("refund", "no-such-job", "--amount", "5", "--reason", "x"), "no job")
    refused(run_ledger("refund", job_id, "--amount", "0", "--reason", "x"), "amount")
    refused(run_ledger("refund", job_id, "--amount", "1.5", "--reason", "x"), "--amount")
    refused(run_ledger("repay", job_id, "--actor", "ops", "--reason", "x"), "round")
    refused(run_ledger("cancel", job_id, "--actor", "ops", "--reason", "bad\x1b[31m"), "--reason")
    missing = run_ledger("cancel", job_id, "--reason", "x")
    assert missing.returncode == 2 and "--actor" in missing.stderr
    assert count(engine) == before
