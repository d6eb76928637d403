"""Copy settled money from the ledger into a separate SQLite "accounting" database, once.

    python examples/accounting_follower.py --accounting accounting.db [--log URL] [--until-head]

Each completed settlement becomes one ``entries`` row (the amount that payment
paid: a later payment round pays only what a reversal took back), and so does
each ``reversed`` or ``refunded`` event (the amount given back). Exactly once,
whatever happens to the process: the batch's rows and the log position they
come from are written in ONE SQLite
transaction (the ``tracking`` row: eventsourcing's tracking record), and the
follower starts again from the stored position. ``kill -9`` at any moment
loses at most an uncommitted batch, which the log hands over again; an entry
is keyed by its log position, so a second copy could not be inserted anyway.

The follower keeps the amount and currency of every job it saw enqueued
(``requests``): events after ``enqueued`` name the job and the amount they
move, not the currency.
Only the public API is used: ``ledger.scripts.connect`` and ``ledger``'s types.
"""

from __future__ import annotations

import argparse
import signal
import sqlite3
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from ledger import EventType, LedgerError, StoredEvent
from ledger.scripts import connect

#: the tracking row's name: one follower, one position
NAME = "accounting"
DESCRIPTION = "Copy settled money from the ledger into an accounting SQLite database, once."
#: event types that book money: a payment, and money coming back after it
BOOKED = (EventType.COMPLETED, EventType.REVERSED, EventType.REFUNDED)

SCHEMA = """
CREATE TABLE IF NOT EXISTS tracking (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS requests (
    job_id TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    position INTEGER PRIMARY KEY,
    job_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    amount INTEGER NOT NULL,
    currency TEXT NOT NULL,
    occurred_at TEXT NOT NULL
);
"""


def open_accounting(path: Path) -> sqlite3.Connection:
    """The accounting database, its tables created, transactions under our control."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    db.execute("INSERT OR IGNORE INTO tracking (name, position) VALUES (?, 0)", (NAME,))
    return db


def stored_position(db: sqlite3.Connection) -> int:
    (position,) = db.execute("SELECT position FROM tracking WHERE name = ?", (NAME,)).fetchone()
    return int(position)


def book(db: sqlite3.Connection, batch: Sequence[StoredEvent]) -> None:
    """The batch's entries and its last position, in one transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        start = stored_position(db)
        if batch[0].position <= start:
            # handed again after a crash between our commit and the log's next page:
            # only what lies past the stored position is new
            batch = [event for event in batch if event.position > start]
        for event in batch:
            _book_event(db, event)
        if batch:
            db.execute(
                "UPDATE tracking SET position = ? WHERE name = ?", (batch[-1].position, NAME)
            )
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def _book_event(db: sqlite3.Connection, event: StoredEvent) -> None:
    if event.type is EventType.ENQUEUED:
        request = event.data["request"]
        db.execute(
            "INSERT INTO requests (job_id, idempotency_key, amount, currency) VALUES (?, ?, ?, ?)",
            (event.job_id, request["idempotency_key"], request["amount"], request["currency"]),
        )
        return
    if event.type not in BOOKED:
        return
    key, full_amount, currency = db.execute(
        "SELECT idempotency_key, amount, currency FROM requests WHERE job_id = ?",
        (event.job_id,),
    ).fetchone()
    # logs written before payment rounds existed record no amount on `completed`
    amount = event.data.get("amount", full_amount)
    db.execute(
        "INSERT INTO entries (position, job_id, kind, idempotency_key, amount, currency, "
        "occurred_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            event.position,
            event.job_id,
            event.type.value,
            key,
            amount,
            currency,
            event.occurred_at.isoformat(),
        ),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=DESCRIPTION)
    parser.add_argument("--accounting", type=Path, required=True, help="SQLite file to fill.")
    parser.add_argument("--log", help="The ledger's database URL (default LEDGER_DATABASE_URL).")
    parser.add_argument("--page-size", type=int, default=500, help="Events per batch.")
    parser.add_argument("--poll", type=float, default=1.0, help="Seconds between polls.")
    parser.add_argument("--until-head", action="store_true", help="Stop once caught up.")
    args = parser.parse_args(argv)
    stopping: list[int] = []

    def stop_on(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    signal.signal(signal.SIGTERM, stop_on)
    signal.signal(signal.SIGINT, stop_on)
    db = open_accounting(args.accounting)
    try:
        with connect(args.log) as log:
            last = log.follow(
                stored_position(db),
                lambda batch: book(db, batch),
                page_size=args.page_size,
                poll_seconds=args.poll,
                stop=lambda: bool(stopping),
                until_head=args.until_head,
            )
    except LedgerError as error:
        print(f"accounting follower: {error.message}", file=sys.stderr)
        return 2
    finally:
        db.close()
    print(f"accounting follower: booked up to log position {last}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
