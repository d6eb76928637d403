"""How far a read replica of the log is behind its primary (auditors read there).

A hot standby reports when it last replayed a transaction and how much WAL it has
received but not replayed; with the primary at hand, the distance from the
primary's current WAL position is the whole lag in bytes. On the primary itself,
or on SQLite, there is no lag to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.db import is_sqlite

_STANDBY = sa.text(
    "SELECT pg_is_in_recovery(),"
    " extract(epoch FROM now() - pg_last_xact_replay_timestamp()),"
    " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn()),"
    " pg_last_wal_replay_lsn()::text"
)
_PRIMARY_LSN = sa.text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), CAST(:replayed AS pg_lsn))")


@dataclass(frozen=True, slots=True)
class ReplicaLag:
    """A standby's lag at one instant.

    ``seconds_since_replay``: since the last transaction it replayed (it also grows
    while the primary writes nothing, so read it with ``bytes_behind``);
    ``bytes_unreplayed``: WAL received but not applied yet; ``bytes_behind``: the
    primary's current WAL position minus what the standby replayed (None when the
    primary was not asked). Zero bytes behind means the replica holds every commit.
    """

    seconds_since_replay: float | None
    bytes_unreplayed: int
    bytes_behind: int | None

    def as_api(self) -> dict[str, Any]:
        return {
            "secondsSinceReplay": self.seconds_since_replay,
            "bytesUnreplayed": self.bytes_unreplayed,
            "bytesBehind": self.bytes_behind,
        }

    def describe(self) -> str:
        behind = "?" if self.bytes_behind is None else f"{self.bytes_behind:,}"
        since = (
            "never" if self.seconds_since_replay is None else f"{self.seconds_since_replay:.1f} s"
        )
        return (
            f"read from the audit replica: {behind} bytes of WAL behind the primary, "
            f"last replay {since} ago"
        )


def replica_lag(replica: Engine, primary: Engine | None = None) -> ReplicaLag | None:
    """The lag of ``replica`` (None when it is not a hot standby: a primary, or SQLite)."""
    if is_sqlite(replica):
        return None
    with replica.connect() as conn:
        in_recovery, since, unreplayed, replayed = conn.execute(_STANDBY).one()
    if not in_recovery:
        return None
    behind: int | None = None
    if primary is not None and replayed is not None and not is_sqlite(primary):
        with primary.connect() as conn:
            behind = max(int(conn.execute(_PRIMARY_LSN, {"replayed": replayed}).scalar_one()), 0)
    return ReplicaLag(
        seconds_since_replay=None if since is None else max(float(since), 0.0),
        bytes_unreplayed=int(unreplayed or 0),
        bytes_behind=behind,
    )
