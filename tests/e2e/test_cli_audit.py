"""The auditor commands as a user runs them: verify, checkpoint, events, reconcile, roles."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from ledger.events import EventType, NewEvent, StoredEvent, format_time
from ledger.store import EventStore
from tests.audit_support import Attacker, build_log, rewrite_chain
from tests.e2e.conftest import RunLedger
from tests.factories import request

KEY = {"LEDGER_CHECKPOINT_KEY": "an-auditors-secret-key-0123456789"}
HEADER = "idempotency_key,amount,currency,settled_at\n"
#: completed jobs of build_log(store, 6): key, amount, currency
SETTLED = [
    ("key-0", 1000, "KRW"),
    ("key-1", 1001, "USD"),
    ("key-4", 1004, "USD"),
    ("key-5", 1005, "JPY"),
]


@pytest.fixture
def log(store: EventStore) -> list[StoredEvent]:
    build_log(store, 6)
    return list(store.read_all())


def one_line_error(result: object, code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)  # type: ignore[attr-defined]
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1
    return stderr


def test_verify_ok_prints_one_line_with_count_and_head(
    run_ledger: RunLedger, log: list[StoredEvent]
) -> None:
    result = run_ledger("verify")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    assert f"{len(log)} events checked" in lines[0] and log[-1].hash in lines[0]
    record = orjson.loads(run_ledger("verify", "--json", "--from-position", "10").stdout)
    assert record["ok"] is True and record["checked"] == len(log) - 9


def test_verify_names_the_first_bad_position(
    run_ledger: RunLedger, engine: Engine, log: list[StoredEvent]
) -> None:
    attacker = Attacker(engine)
    attacker.disable_triggers()
    attacker.execute("DELETE FROM events WHERE position = 8")
    result = run_ledger("verify")
    assert result.returncode == 1
    assert result.stdout.startswith("FAILED at position 8: missing")
    assert "Traceback" not in result.stderr
    record = orjson.loads(run_ledger("verify", "--json").stdout)
    assert record["problem"]["position"] == 8 and record["problem"]["kind"] == "missing"
    assert record["findings"][0] == record["problem"] and record["verdict"] == "failed"


def test_verify_lists_every_finding_up_to_the_limit(
    run_ledger: RunLedger, engine: Engine, log: list[StoredEvent]
) -> None:
    attacker = Attacker(engine)
    attacker.disable_triggers()
    for position in (3, 9, 15):
        attacker.execute("UPDATE events SET actor = 'x' WHERE position = :p", p=position)
    text = run_ledger("verify")
    assert text.returncode == 1
    lines = text.stdout.strip().splitlines()
    assert lines[0].startswith("FAILED at position 3: modified")
    assert lines[1].startswith("  also at position 9: modified")
    assert lines[2].startswith("  also at position 15: modified")
    record = orjson.loads(run_ledger("verify", "--json").stdout)
    assert [(f["kind"], f["position"]) for f in record["findings"]] == [
        ("modified", 3),
        ("modified", 9),
        ("modified", 15),
    ]
    assert record["ok"] is False and record["truncated"] is False
    limited = orjson.loads(run_ledger("verify", "--json", "--max-findings", "2").stdout)
    assert [f["position"] for f in limited["findings"]] == [3, 9] and limited["truncated"]


def test_verify_past_the_head_checks_nothing_and_fails(
    run_ledger: RunLedger, log: list[StoredEvent]
) -> None:
    result = run_ledger("verify", "--from-position", "2000")
    assert result.returncode == 1
    assert result.stdout.startswith("NOTHING CHECKED: --from-position 2000 is past")
    record = orjson.loads(run_ledger("verify", "--json", "--from-position", "2000").stdout)
    assert (record["ok"], record["verdict"], record["checked"]) == (False, "nothing checked", 0)


def test_checkpoint_then_verify_catches_a_rewritten_chain(
    run_ledger: RunLedger, engine: Engine, log: list[StoredEvent], tmp_path: Path
) -> None:
    path = tmp_path / "head.json"
    made = run_ledger("checkpoint", "--output", str(path), env=KEY)
    assert made.returncode == 0, made.stderr
    document = orjson.loads(path.read_text())
    assert (document["position"], document["hash"]) == (len(log), log[-1].hash)
    printed = run_ledger("checkpoint", env=KEY)
    assert orjson.loads(printed.stdout)["hash"] == log[-1].hash
    ok = run_ledger("verify", "--checkpoint", str(path), env=KEY)
    assert ok.returncode == 0 and f"checkpoint at position {len(log)} matches" in ok.stdout

    attacker = Attacker(engine)
    attacker.disable_triggers()
    rows = attacker.rows()
    rows[0]["actor"] = "rewritten"
    attacker.wipe()
    for row in rewrite_chain(rows):
        attacker.insert(row)
    caught = run_ledger("verify", "--checkpoint", str(path), env=KEY)
    assert caught.returncode == 1
    assert caught.stdout.startswith(f"FAILED at position {len(log)}: rewritten")
    assert "matches" not in caught.stdout
    record = orjson.loads(run_ledger("verify", "--json", "--checkpoint", str(path), env=KEY).stdout)
    assert record["verdict"] == "failed" and record["findings"][0]["kind"] == "rewritten"
    assert record["checkpoints"] == [
        {"position": len(log), "status": "differs", "recomputedFrom": None}
    ]


def test_a_checkpoint_before_from_position_is_not_checked(
    run_ledger: RunLedger, engine: Engine, log: list[StoredEvent], tmp_path: Path
) -> None:
    path = tmp_path / "head.json"
    run_ledger("checkpoint", "--output", str(path), env=KEY)
    EventStore(engine).enqueue(request(idempotency_key="later"), max_attempts=1)
    attacker = Attacker(engine)
    attacker.disable_triggers()
    attacker.execute("UPDATE events SET actor = 'x' WHERE position = 2")  # hashes left alone
    start = str(len(log) + 1)
    late = run_ledger("verify", "--checkpoint", str(path), "--from-position", start, env=KEY)
    assert late.returncode == 0, late.stdout
    assert f"checkpoint at position {len(log)} not checked" in late.stdout
    assert "matches" not in late.stdout


def test_checkpoint_needs_the_key(
    run_ledger: RunLedger, log: list[StoredEvent], tmp_path: Path
) -> None:
    assert "LEDGER_CHECKPOINT_KEY" in one_line_error(run_ledger("checkpoint"), 2)
    path = tmp_path / "head.json"
    run_ledger("checkpoint", "--output", str(path), env=KEY)
    other = {"LEDGER_CHECKPOINT_KEY": "another-key-entirely-0123456789"}
    assert "signature" in one_line_error(
        run_ledger("verify", "--checkpoint", str(path), env=other), 2
    )


def test_events_csv_and_jsonl_round_trip(run_ledger: RunLedger, log: list[StoredEvent]) -> None:
    jsonl = run_ledger("events", "--format", "jsonl")
    assert jsonl.returncode == 0, jsonl.stderr
    records = [orjson.loads(line) for line in jsonl.stdout.splitlines()]
    assert [r["position"] for r in records] == [e.position for e in log]
    assert [r["data"] for r in records] == [e.data for e in log]
    assert [r["occurred_at"] for r in records] == [format_time(e.occurred_at) for e in log]
    assert records[0]["data"]["request"]["metadata"]["qr_token"] == "토큰-0 ✓"
    rows = list(csv.DictReader(io.StringIO(run_ledger("events", "--format", "csv").stdout)))
    assert [orjson.loads(r["data"]) for r in rows] == [e.data for e in log]
    assert [int(r["amount"]) for r in rows] == [r["amount"] for r in records]
    assert [r["hash"] for r in rows] == [e.hash for e in log]


def test_events_filters(run_ledger: RunLedger, log: list[StoredEvent]) -> None:
    result = run_ledger(
        "events", "--format", "jsonl", "--user-id", "user-1", "--type", "completed", "--after", "2"
    )
    records = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert records and {(r["user_id"], r["type"]) for r in records} == {("user-1", "completed")}
    assert all(r["position"] > 2 for r in records)
    table = run_ledger("events", "--limit", "3")
    assert table.returncode == 0 and log[0].job_id in table.stdout
    assert "invalid --from" in one_line_error(run_ledger("events", "--from", "yesterday"), 2)
    assert run_ledger("events", "--type", "paid").returncode == 2


def write_statement(tmp_path: Path, lines: list[tuple[str, int, str]], at: datetime | str) -> Path:
    """A statement whose every line settled at ``at`` (the log's own time, in these tests)."""
    path = tmp_path / "statement.csv"
    when = at if isinstance(at, str) else format_time(at)
    body = "".join(f"{k},{a},{c},{when}\n" for k, a, c in lines)
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_reconcile_a_matching_statement(
    run_ledger: RunLedger, log: list[StoredEvent], tmp_path: Path
) -> None:
    path = write_statement(tmp_path, SETTLED, log[-1].occurred_at)
    result = run_ledger("reconcile", "--statement", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "statement: ok" in result.stdout


def test_reconcile_reports_each_difference_once(
    run_ledger: RunLedger, log: list[StoredEvent], tmp_path: Path
) -> None:
    lines = [
        ("key-0", 1000, "KRW"),
        ("key-1", 1002, "USD"),  # amount mismatch
        ("key-5", 1005, "JPY"),
        ("key-5", 1005, "JPY"),  # duplicate
        ("key-9", 50, "KRW"),  # extra; key-4 is missing
    ]
    path = write_statement(tmp_path, lines, log[-1].occurred_at)
    day = log[-1].occurred_at.date().isoformat()  # the log's one day is the period
    result = run_ledger("reconcile", "--statement", str(path), "--json", "--from", day, "--to", day)
    assert result.returncode == 1
    checks = {check["name"]: check for check in orjson.loads(result.stdout)["checks"]}
    assert checks["projections"]["ok"] and checks["conservation"]["ok"]
    details = checks["statement"]["details"]
    assert [m["idempotencyKey"] for m in details["missingFromStatement"]] == ["key-4"]
    assert [m["idempotencyKey"] for m in details["extraInStatement"]] == ["key-9"]
    assert [m["idempotencyKey"] for m in details["mismatches"]] == ["key-1"]
    assert [(m["idempotencyKey"], m["line"]) for m in details["duplicatesInStatement"]] == [
        ("key-5", 5)
    ]
    assert details["duplicatesInLedger"] == []
    assert details["totals"] == {
        "ledger": {"JPY": 1005, "KRW": 1000, "USD": 2005},
        "statement": {"JPY": 2010, "KRW": 1050, "USD": 1002},
    }
    text = run_ledger("reconcile", "--statement", str(path))
    assert text.returncode == 1
    assert "statement: DIFFERS" in text.stdout
    assert text.stdout.count("key-4") == 1 and text.stdout.count("key-9") == 1


def test_reconcile_refuses_a_malformed_statement(
    run_ledger: RunLedger, log: list[StoredEvent], tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(HEADER + "key-0,1000,KRW,2026-11-26\nkey-1,10.01,USD,2026-11-26\n")
    assert "statement line 3: amount '10.01'" in one_line_error(
        run_ledger("reconcile", "--statement", str(path)), 2
    )
    missing = run_ledger("reconcile", "--statement", str(tmp_path / "nope.csv"))
    assert "cannot read statement" in one_line_error(missing, 2)


def test_reconcile_without_a_statement_checks_the_projections(
    run_ledger: RunLedger, log: list[StoredEvent]
) -> None:
    result = run_ledger("reconcile", "--json")
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["ok"] is True
    assert [check["name"] for check in report["checks"]] == ["projections", "conservation"]
    # nothing caught the live projections up, and a read does not: it says how far behind
    assert report["checks"][0]["details"]["behind"] == len(log)
    conserved = report["checks"][1]["details"]["replayed"]
    assert {item["currency"] for item in conserved} == {"JPY", "KRW", "USD"}
    assert run_ledger("project").returncode == 0
    report = orjson.loads(run_ledger("reconcile", "--json").stdout)
    assert report["ok"] is True and report["checks"][0]["details"]["behind"] == 0
    conserved = report["checks"][1]["details"]["live"]
    assert {item["currency"] for item in conserved} == {"JPY", "KRW", "USD"}


def test_roles_prints_the_script(run_ledger: RunLedger) -> None:
    result = run_ledger("roles", "--print-sql", "--app-role", "payouts_app")
    assert result.returncode == 0
    assert "GRANT SELECT, INSERT ON public.events TO payouts_app;" in result.stdout
    assert "pass exactly one" in one_line_error(run_ledger("roles"), 2)
    assert "invalid app role" in one_line_error(
        run_ledger("roles", "--print-sql", "--app-role", "x;y"), 2
    )


def test_roles_apply(run_ledger: RunLedger, db_backend: str, db_url: str, engine: Engine) -> None:
    if db_backend == "sqlite":
        assert "PostgreSQL only" in one_line_error(run_ledger("roles", "--apply"), 2)
        return
    schema = str(make_url(db_url).query["options"]).removeprefix("-csearch_path=")
    suffix = uuid.uuid4().hex[:10]
    owner, app = f"ledger_owner_{suffix}", f"ledger_app_{suffix}"
    auditor = f"ledger_auditor_{suffix}"
    args = ["roles", "--apply", "--owner-role", owner, "--app-role", app, "--schema", schema]
    args += ["--auditor-role", auditor]
    try:
        result = run_ledger(*args)
        assert result.returncode == 0, result.stderr
        assert f"owner {owner}, app {app}, auditor {auditor}" in result.stdout
        with engine.connect() as conn:
            privileges = conn.execute(
                sa.text(
                    "SELECT privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = :app AND table_schema = :schema AND table_name = 'events'"
                ),
                {"app": app, "schema": schema},
            ).scalars()
            assert sorted(privileges) == ["INSERT", "SELECT"]
    finally:
        with engine.begin() as conn:
            for role in (owner, app, auditor):
                if conn.execute(
                    sa.text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}
                ).first():
                    conn.exec_driver_sql(f"REASSIGN OWNED BY {role} TO CURRENT_USER")
                    conn.exec_driver_sql(f"DROP OWNED BY {role}")
                    conn.exec_driver_sql(f"DROP ROLE {role}")


@pytest.mark.parametrize(
    "args",
    [
        ["reconcile", "--json", "--statement", "no-such-statement.csv"],
        ["verify", "--json", "--max-findings", "0"],
        ["verify", "--json", "--no-such-option"],
        ["stats", "--json", "--as-of", "not a time"],
        ["dlq", "list", "--json", "--as-of", "not a time"],
    ],
)
def test_json_mode_is_json_on_every_path(
    run_ledger: RunLedger, log: list[StoredEvent], args: list[str]
) -> None:
    result = run_ledger(*args)
    assert result.returncode == 2
    record = orjson.loads(result.stdout)
    assert record["ok"] is False and record["error"]["exitCode"] == 2
    assert record["error"]["message"] and "Traceback" not in result.stderr


def test_reconcile_by_period_leaves_other_periods_alone(
    run_ledger: RunLedger, engine: Engine, tmp_path: Path
) -> None:
    """A March statement against a log of February to April, closed in Seoul's time."""
    seoul = {"LEDGER_BUSINESS_TIMEZONE": "Asia/Seoul"}
    moments = {
        "feb": datetime(2026, 2, 27, 3, tzinfo=UTC),
        # 2026-03-01 08:00 in Seoul: March there, February in UTC
        "edge": datetime(2026, 2, 28, 23, tzinfo=UTC),
        "mar": datetime(2026, 3, 10, 3, tzinfo=UTC),
        "mar-late": datetime(2026, 3, 20, 3, tzinfo=UTC),
        "apr": datetime(2026, 4, 10, 3, tzinfo=UTC),
    }
    now = [moments["feb"]]
    store = EventStore(engine, clock=lambda: now[0])
    for key, moment in moments.items():
        now[0] = moment
        job = store.enqueue(
            request(idempotency_key=key, amount=151037, currency="USD"), max_attempts=1
        )
        store.append(job.job_id, 1, [NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "w")])
        store.append(job.job_id, 2, [NewEvent(EventType.COMPLETED, {"attempt": 1}, "w")])
    lines = [("edge", 151037, "USD"), ("mar", 151037, "USD")]
    path = write_statement(tmp_path, lines, "2026-03-10T04:00:00Z")
    # "edge" settled_at is off by more than the tolerance: a settled_at mismatch
    run = run_ledger(
        "reconcile", "--statement", str(path), "--from", "2026-03-01", "--to", "2026-03-31",
        "--json", env=seoul,
    )  # fmt: skip
    assert run.returncode == 1, run.stderr
    details = {c["name"]: c for c in orjson.loads(run.stdout)["checks"]}["statement"]["details"]
    assert [m["idempotencyKey"] for m in details["missingFromStatement"]] == ["mar-late"]
    assert [m["idempotencyKey"] for m in details["settledAtMismatches"]] == ["edge"]
    assert details["extraInStatement"] == [] and details["notInPeriod"] == 2
    assert details["period"] == {
        "from": "2026-02-28T15:00:00.000000Z",
        "to": "2026-03-31T14:59:59.999999Z",
    }
    # in UTC the same days leave "edge" in February: just outside the period, not missing
    utc = run_ledger(
        "reconcile", "--statement", str(path), "--from", "2026-03-01", "--to", "2026-03-31",
        "--tolerance", str(timedelta(days=20).total_seconds()), "--json",
    )  # fmt: skip
    details = {c["name"]: c for c in orjson.loads(utc.stdout)["checks"]}["statement"]["details"]
    assert [m["idempotencyKey"] for m in details["missingFromStatement"]] == ["mar-late"]
    assert details["settledAtMismatches"] == [] and details["extraInStatement"] == []
    # text: amounts as a person reads them (151037 USD is $1,510.37)
    text = run_ledger("reconcile", "--statement", str(path), "--from", "2026-03-01", env=seoul)
    assert "1,510.37 USD" in text.stdout and "151037 USD" not in text.stdout
    assert "--from and --to" in one_line_error(run_ledger("reconcile", "--from", "2026-03-01"), 2)


def test_the_events_table_formats_amounts_by_the_currency_exponent(
    run_ledger: RunLedger, log: list[StoredEvent]
) -> None:
    table = run_ledger("events", "--type", "enqueued")
    assert table.returncode == 0, table.stderr
    assert "10.01 USD" in table.stdout and "1001 USD" not in table.stdout
    assert "1,000 KRW" in table.stdout
    csv_text = run_ledger("events", "--format", "csv", "--type", "enqueued").stdout
    assert "1001" in csv_text  # machine formats keep minor units
