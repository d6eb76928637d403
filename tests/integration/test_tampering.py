"""The tampering table: each kind of damage, on each backend, against verify and a checkpoint.

Every case builds a real log (48 events), signs a checkpoint of its head, tampers
with the rows as someone with the owner's rights would (triggers off), then runs
``verify`` without and with the checkpoint. The test asserts what each case must
give; run as a script it prints the table for the closing note:

    python -m tests.integration.test_tampering
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from ledger import migrate
from ledger.audit import checkpoint as cp
from ledger.audit.verify import ProblemKind, VerifyResult, verify_log
from ledger.db import create_engine
from ledger.events import to_utc
from ledger.store import EventStore
from tests.audit_support import Attacker, build_log, forged_payout, reseal, rewrite_chain
from tests.backends import postgres_schema

JOBS = 12  # 48 events


@dataclass(frozen=True)
class Case:
    """A way to tamper; ``expected``: the first position verify must name (None: not caught)."""

    name: str
    tamper: Callable[[Attacker], None]
    expected: int | None
    #: the checkpoint must catch it too (whole-log rewrites, lost tails)
    checkpoint_needed: bool = False
    backends: tuple[str, ...] = ("sqlite", "postgres")


def _edit(column: str, value: object, position: int) -> Callable[[Attacker], None]:
    def tamper(attacker: Attacker) -> None:
        attacker.execute(
            f"UPDATE events SET {column} = :v WHERE position = :p", v=value, p=position
        )

    return tamper


def _edit_data(attacker: Attacker) -> None:
    row = attacker.rows()[9]
    data = str(row["data"]).replace('"amount":', '"amount":9')
    attacker.execute("UPDATE events SET data = :d WHERE position = 10", d=data)


def _edit_and_reseal(attacker: Attacker) -> None:
    rows = attacker.rows()
    row = {**rows[19], "actor": "someone-else"}
    sealed = reseal(row, str(rows[18]["hash"]))
    attacker.execute(
        "UPDATE events SET actor = :a, hash = :h WHERE position = 20",
        a="someone-else",
        h=sealed["hash"],
    )


def _delete(attacker: Attacker) -> None:
    attacker.execute("DELETE FROM events WHERE position = 17")


def _insert_made_up(attacker: Attacker) -> None:
    rows = attacker.rows()
    attacker.execute("DELETE FROM events WHERE position >= 30")
    forged = {**rows[29], "job_id": "f" * 36, "hash": "e" * 64}
    attacker.insert(forged)
    for row in rows[29:]:
        attacker.insert({**row, "position": int(row["position"]) + 1})


def _swap(attacker: Attacker) -> None:
    rows = attacker.rows()
    a, b = rows[24], rows[25]
    attacker.execute("DELETE FROM events WHERE position IN (25, 26)")
    attacker.insert({**b, "position": 25})
    attacker.insert({**a, "position": 26})


def _rewrite_all(attacker: Attacker) -> None:
    rows = attacker.rows()
    rows[4] = {**rows[4], "actor": "rewritten"}
    attacker.wipe()
    for row in rewrite_chain(rows):
        attacker.insert(row)


def _truncate_tail(attacker: Attacker) -> None:
    attacker.execute("DELETE FROM events WHERE position > 40")


def _append_now(attacker: Attacker) -> None:
    """A forged, chained, legal payout at the current time: what verify cannot tell."""
    rows = attacker.rows()
    later = max(datetime.now(UTC), to_utc(rows[-1]["occurred_at"])) + timedelta(seconds=1)
    for row in forged_payout(rows[-1], later):
        attacker.insert(row)


def _backdate_append(attacker: Attacker) -> None:
    rows = attacker.rows()
    for row in forged_payout(rows[-1], rows[0]["occurred_at"] - timedelta(days=6)):
        attacker.insert(row)


def _backdate_in_place(attacker: Attacker) -> None:
    """One event's time moved earlier than its predecessor's, its hash recomputed."""
    rows = attacker.rows()
    row = {**rows[35], "occurred_at": rows[0]["occurred_at"] - timedelta(days=1)}
    sealed = reseal(row, str(rows[34]["hash"]))
    attacker.execute("DELETE FROM events WHERE position >= 36")
    chain = rewrite_chain([*rows[:35], sealed, *rows[36:]])
    for fixed in chain[35:]:
        attacker.insert(fixed)


def _respell_time(attacker: Attacker) -> None:
    with attacker.engine.begin() as conn:
        (text,) = conn.exec_driver_sql("SELECT occurred_at FROM events WHERE position = 12").one()
        conn.exec_driver_sql(
            "UPDATE events SET occurred_at = ? WHERE position = 12", (str(text).replace(" ", "T"),)
        )


CASES = [
    Case("in-place edit (data, hash left)", _edit_data, 10),
    Case("in-place edit (actor, hash left)", _edit("actor", "x", 33), 33),
    Case("edit with its own hash recomputed", _edit_and_reseal, 20),
    Case("deletion", _delete, 17),
    Case("insertion (made-up hash, later rows moved)", _insert_made_up, 30),
    Case("swap of two events", _swap, 25),
    Case("time edit (hash left)", _edit("occurred_at", datetime(2030, 1, 1), 8), 8),
    Case("whole-log rewrite (every hash recomputed)", _rewrite_all, 48, checkpoint_needed=True),
    Case("tail truncated", _truncate_tail, 41, checkpoint_needed=True),
    Case("backdated append (chained, legal)", _backdate_append, 49),
    Case("backdated in place (chain rewritten after it)", _backdate_in_place, 36),
    Case("time re-spelled (same instant)", _respell_time, 12, backends=("sqlite",)),
    Case("append at the current time (chained, legal)", _append_now, None),
]


@dataclass(frozen=True)
class Outcome:
    plain: VerifyResult
    checked: VerifyResult


def run_case(engine: Engine, case: Case) -> Outcome:
    store = EventStore(engine)
    build_log(store, JOBS)
    checkpoint = cp.take_checkpoint(engine, datetime.now(UTC))
    attacker = Attacker(engine)
    attacker.disable_triggers()
    case.tamper(attacker)
    return Outcome(
        plain=verify_log(engine, workers=2, page_size=7),
        checked=verify_log(engine, anchors=cp.anchors(checkpoint)),
    )


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_each_kind_of_tampering(db_backend: str, engine: Engine, case: Case) -> None:
    if db_backend not in case.backends:
        pytest.skip(f"{case.name}: not possible on {db_backend}")
    outcome = run_case(engine, case)
    with_checkpoint = outcome.checked.problem
    if case.expected is None:
        assert outcome.plain.ok and outcome.checked.ok  # the documented limit
        return
    assert with_checkpoint is not None and with_checkpoint.position <= case.expected
    if case.checkpoint_needed:
        assert outcome.plain.ok or outcome.plain.problem is not None
        if case.name.startswith("whole-log"):
            assert outcome.plain.ok and with_checkpoint.kind is ProblemKind.REWRITTEN
        return
    assert outcome.plain.problem is not None
    assert outcome.plain.problem.position == case.expected, outcome.plain.findings


def _table() -> str:
    lines = [
        "| kind | backend | caught by verify | caught with a checkpoint | first position right |",
        "|---|---|---|---|---|",
    ]
    for backend in ("sqlite", "postgres"):
        for case in CASES:
            if backend not in case.backends:
                lines.append(f"| {case.name} | {backend} | n/a (timestamptz has one form) | | |")
                continue
            outcome = _run_on(backend, case)
            plain, checked = outcome.plain.problem, outcome.checked.problem
            first = checked or plain
            right = (
                "—"
                if case.expected is None
                else ("yes" if first is not None and first.position == case.expected else "no")
                + f" ({first.position if first else '-'} {first.kind if first else ''}, "
                f"expected {case.expected})"
            )
            lines.append(
                f"| {case.name} | {backend} | {_said(plain)} | {_said(checked)} | {right} |"
            )
    return "\n".join(lines)


def _said(problem: object) -> str:
    return "no" if problem is None else f"yes: {getattr(problem, 'kind', '')}"


def _run_on(backend: str, case: Case) -> Outcome:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{Path(directory) / 'ledger.db'}"
            migrate.upgrade(url)
            engine = create_engine(url)
            try:
                return run_case(engine, case)
            finally:
                engine.dispose()
    with postgres_schema() as url:
        migrate.upgrade(url)
        engine = create_engine(url)
        try:
            return run_case(engine, case)
        finally:
            engine.dispose()


if __name__ == "__main__":
    sys.stdout.write(_table() + "\n")
