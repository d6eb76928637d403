"""``ledger worker --handler ledger.providers.toss:payout`` and ``ledger cancel`` against the stub,
configured from LEDGER_TOSS_* only; the keys never appear in any output."""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.providers.toss.stub_server import StubServer
from tests.e2e.conftest import RunLedger
from tests.toss_support import SECRET, SECURITY, SELLER

HANDLER = "ledger.providers.toss:payout"
ARGS = ["--user-id", "u1", "--place-id", "p1", "--mission-id", "m1", "--amount", "5000"]


def states(engine: Engine) -> dict[str, str]:
    """Each job's last event type."""
    query = sa.text(
        "SELECT job_id, type FROM events e WHERE version = "
        "(SELECT max(version) FROM events WHERE job_id = e.job_id)"
    )
    with engine.connect() as conn:
        return {row.job_id: row.type for row in conn.execute(query)}


def test_the_worker_pays_and_cancel_goes_through_toss(
    run_ledger: RunLedger, engine: Engine, toss: StubServer
) -> None:
    env = {
        "LEDGER_TOSS_API_URL": toss.url,
        "LEDGER_TOSS_SECRET_KEY": SECRET,
        "LEDGER_TOSS_SECURITY_KEY": SECURITY,
    }
    metadata = orjson.dumps({"tossSellerId": SELLER}).decode()
    jobs = [
        run_ledger(
            "enqueue", *ARGS, "--idempotency-key", key, "--metadata", metadata
        ).stdout.strip()
        for key in ("t1", "t2")
    ]
    worked = run_ledger("worker", "--handler", HANDLER, "--burst", env=env)
    assert worked.returncode == 0, worked.stderr
    assert set(states(engine).values()) == {"submitted"}
    cancel = ["cancel", jobs[1], "--actor", "ops", "--reason", "hold", "--handler", HANDLER]
    done = run_ledger(*cancel, env=env)
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["status"] == "cancelled"
    statuses = sorted(str(p["status"]) for p in toss.stub.payouts.values())
    assert statuses == ["CANCELED", "REQUESTED"]
    for result in (worked, done):
        assert SECRET not in result.stdout + result.stderr
        assert SECURITY not in result.stdout + result.stderr
