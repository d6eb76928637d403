"""A whole read-model state as plain values, to compare SQL with memory (tests, small logs).

``replay --check`` on large logs diffs in SQL instead (``projections.reconcile``);
a snapshot holds every row in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.db import READ_ONLY
from ledger.events import to_utc
from projections.schema import LIVE, ProjectionTables, checkpoints

Row = tuple[Any, ...]


def _columns(table: sa.Table) -> list[str]:
    return [column.name for column in table.columns]


def _keys(table: sa.Table) -> list[str]:
    return [column.name for column in table.primary_key.columns]


def _value(value: Any) -> Any:
    # SQLite hands back naive UTC datetimes, PostgreSQL aware ones
    return to_utc(value) if isinstance(value, datetime) else value


@dataclass(frozen=True, slots=True)
class Snapshot:
    """``tables[name]`` maps each row's primary key to the row (column order of the table)."""

    position: int
    tables: dict[str, dict[Row, Row]]

    @classmethod
    def of(cls, position: int, **rows: Iterable[Mapping[str, Any]]) -> Snapshot:
        """From row dicts per logical table name (``job_state=[...]``, …)."""
        tables: dict[str, dict[Row, Row]] = {}
        for table in LIVE.all:
            columns, keys = _columns(table), _keys(table)
            tables[table.name] = {
                tuple(_value(row[k]) for k in keys): tuple(_value(row[c]) for c in columns)
                for row in rows.get(table.name, ())
            }
        return cls(position, tables)

    def differences(self, other: Snapshot, limit: int = 20) -> list[str]:
        """Human-readable differences (at most ``limit``), empty when equal."""
        found: list[str] = []
        if self.position != other.position:
            found.append(f"checkpoint: {self.position} != {other.position}")
        for name, rows in self.tables.items():
            theirs = other.tables.get(name, {})
            for key in sorted(rows.keys() | theirs.keys(), key=repr):
                if rows.get(key) != theirs.get(key):
                    found.append(f"{name} {key}: {rows.get(key)} != {theirs.get(key)}")
        return found[:limit]


def read_snapshot(engine: Engine, tables: ProjectionTables = LIVE) -> Snapshot:
    """Every row of one table set and its checkpoint, read in one transaction."""
    with engine.connect() as conn, conn.execution_options(**{READ_ONLY: True}).begin():
        position = conn.execute(
            sa.select(checkpoints.c.position).where(checkpoints.c.name == tables.name)
        ).scalar_one()
        rows = {
            logical.name: [dict(row._mapping) for row in conn.execute(sa.select(table))]
            for logical, table in zip(LIVE.all, tables.all, strict=True)
        }
    return Snapshot.of(int(position), **rows)
