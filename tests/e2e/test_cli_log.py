from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.e2e.conftest import RunLedger

ARGS = ["--user-id", "u1", "--place-id", "p1", "--mission-id", "m1"]


def count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())


def test_help_lists_the_verbs(run_ledger: RunLedger) -> None:
    result = run_ledger("--help")
    assert result.returncode == 0
    assert "init" in result.stdout and "enqueue" in result.stdout


def test_init_is_idempotent_and_says_where(run_ledger: RunLedger) -> None:
    result = run_ledger("init")
    assert result.returncode == 0, result.stderr
    assert "ledger database ready at" in result.stdout


def test_enqueue_prints_the_job_and_is_idempotent(run_ledger: RunLedger, engine: Engine) -> None:
    args = [*ARGS, "--amount", "10000", "--idempotency-key", "k1", "--json"]
    first = run_ledger("enqueue", *args)
    assert first.returncode == 0, first.stderr
    created = orjson.loads(first.stdout)
    assert created["created"] is True
    again = orjson.loads(run_ledger("enqueue", *args).stdout)
    assert again == {"jobId": created["jobId"], "created": False, "queued": True}
    plain = run_ledger("enqueue", *ARGS, "--amount", "500", "--currency", "USD")
    assert plain.returncode == 0
    assert len(plain.stdout.strip()) == 36
    assert count(engine) == 2


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--amount", "1e3"], "invalid amount"),
        (["--amount", "-5"], "invalid amount"),
        (["--amount", "10.5"], "invalid amount"),
        (["--amount", "0"], "invalid amount"),
        (["--amount", "5", "--currency", "usd"], "invalid currency"),
        (["--amount", "5", "--currency", "XXX"], "invalid currency"),
        (["--amount", "5", "--metadata", "{not json"], "invalid metadata"),
        (["--amount", "5", "--metadata", "[1]"], "invalid metadata"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    run_ledger: RunLedger, engine: Engine, extra: list[str], message: str
) -> None:
    result = run_ledger("enqueue", *ARGS, *extra)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
    assert count(engine) == 0


def test_idempotency_conflict_exits_2(run_ledger: RunLedger, engine: Engine) -> None:
    run_ledger("enqueue", *ARGS, "--amount", "100", "--idempotency-key", "k")
    result = run_ledger("enqueue", *ARGS, "--amount", "101", "--idempotency-key", "k")
    assert result.returncode == 2
    assert "already belongs to job" in result.stderr
    assert "Traceback" not in result.stderr
    assert count(engine) == 1
