"""The database stands behind event time: no backdating, canonical SQLite time text.

Revision ID: 0009_event_time_guard
Revises: 0008_idempotency_from_the_log
Create Date: 2026-12-07

An event's ``occurred_at`` must never be earlier than the previous position's
(DESIGN.md, invariant 9), so that "the log as of T" is a prefix of the log. The
appender keeps to that; these triggers make the database refuse a writer that
does not:

* PostgreSQL: ``ledger_events_time_guard``, an ``AFTER INSERT … FOR EACH
  STATEMENT`` trigger with the inserted rows as a transition table (one check per
  statement, ``COPY`` included, instead of one per row). It refuses a statement
  that leaves any inserted row earlier than the row before it (or later than the
  row after it), and, for a role that is not a member of the table's owner,
  rows further than ``TOLERANCE`` from ``clock_timestamp()`` (later than that
  is allowed only up to the previous event's time: the appender never stamps
  below it, so a clock stepped back does not stall the log). The owner is not
  held to the clock: it can switch triggers off anyway, and it is who writes
  historical logs (tests, the bench, imports). ``ledger roles`` makes the
  owner own this function, so the app role cannot replace it.
* SQLite: ``events_time_guard``, ``BEFORE INSERT``: the time text must be the one
  canonical form (``YYYY-MM-DD HH:MM:SS.ffffff``, what SQLAlchemy writes, so
  text order is time order) and not earlier than the latest time in the log
  (for an append, the row before it). SQLite has no roles: whoever can write
  the file can drop the trigger, and ``verify`` is what catches that.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_event_time_guard"
down_revision: str | None = "0008_idempotency_from_the_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: how far from the database's clock a non-owner's event time may be
TOLERANCE = "60 seconds"

BACKWARDS_MESSAGE = "event time runs backwards"
CLOCK_MESSAGE = "event time is far from the database clock"

_D = "[0-9]"
#: the one stored form of a time on SQLite (SQLAlchemy's, zero-padded year)
SQLITE_TIME_GLOB = f"{_D * 4}-{_D * 2}-{_D * 2} {_D * 2}:{_D * 2}:{_D * 2}.{_D * 6}"

_POSTGRES = [
    f"""CREATE FUNCTION ledger_events_time_guard() RETURNS trigger
        LANGUAGE plpgsql AS $$
        DECLARE
            first_position bigint;
            last_position bigint;
            earliest timestamptz;
            latest timestamptz;
            previous timestamptz;
            bad bigint;
            now_ timestamptz := clock_timestamp();
        BEGIN
            SELECT min(position), max(position), min(occurred_at), max(occurred_at)
                INTO first_position, last_position, earliest, latest FROM added;
            IF first_position IS NULL THEN
                RETURN NULL;
            END IF;
            -- the inserted rows and their neighbours, in position order, by the primary key
            SELECT walk.position INTO bad FROM (
                SELECT e.position, e.occurred_at,
                       lag(e.occurred_at) OVER (ORDER BY e.position) AS before
                FROM events e
                WHERE e.position >= coalesce(
                        (SELECT max(p.position) FROM events p WHERE p.position < first_position),
                        first_position)
                  AND e.position <= coalesce(
                        (SELECT min(n.position) FROM events n WHERE n.position > last_position),
                        last_position)
            ) AS walk
            WHERE walk.occurred_at < walk.before
            ORDER BY walk.position LIMIT 1;
            IF bad IS NOT NULL THEN
                RAISE EXCEPTION '{BACKWARDS_MESSAGE}: position % is earlier than its neighbour',
                    bad USING ERRCODE = 'check_violation';
            END IF;
            IF pg_has_role(current_user,
                           (SELECT c.relowner FROM pg_class c WHERE c.oid = TG_RELID),
                           'MEMBER') THEN
                RETURN NULL;
            END IF;
            SELECT p.occurred_at INTO previous FROM events p
                WHERE p.position < first_position ORDER BY p.position DESC LIMIT 1;
            IF earliest < now_ - INTERVAL '{TOLERANCE}'
               OR latest > greatest(now_ + INTERVAL '{TOLERANCE}', previous) THEN
                RAISE EXCEPTION '{CLOCK_MESSAGE}: % .. % is more than {TOLERANCE} from %',
                    earliest, latest, now_ USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$""",
    """CREATE TRIGGER events_time_guard AFTER INSERT ON events
        REFERENCING NEW TABLE AS added
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_events_time_guard()""",
]

# the latest time in the log is one step down the time index (the row before a position
# would be an index step and a table look-up, twice with the row after it): for an append
# at the head, which is every honest write, the two rules are one
_SQLITE = [
    f"""CREATE TRIGGER events_time_guard BEFORE INSERT ON events
        WHEN NEW.occurred_at NOT GLOB '{SQLITE_TIME_GLOB}'
          OR NEW.occurred_at < (SELECT max(e.occurred_at) FROM events e)
        BEGIN
            SELECT RAISE(ABORT, '{BACKWARDS_MESSAGE}, or its text is not the canonical form');
        END""",
]


def upgrade() -> None:
    for statement in _POSTGRES if _postgres() else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TRIGGER events_time_guard" + (" ON events" if _postgres() else ""))
    if _postgres():
        op.execute("DROP FUNCTION ledger_events_time_guard()")


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"
