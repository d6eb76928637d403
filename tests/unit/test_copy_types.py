"""The binary COPY's value types follow the events table's columns."""

from __future__ import annotations

import sqlalchemy as sa

from ledger.append_sql import COLUMNS, PG_COPY_TYPES
from ledger.schema import events

# PostgreSQL's binary COPY reads each value in its column type's wire form (the first
# match wins: a BigInteger is an Integer too); strings of every kind share text's
WIRE_TYPE = {sa.BigInteger: "int8", sa.Integer: "int4", sa.DateTime: "timestamptz"}


def test_every_column_has_its_wire_type() -> None:
    assert tuple(column.name for column in events.columns) == COLUMNS
    for column, wire in zip(events.columns, PG_COPY_TYPES, strict=True):
        expected = next(
            (name for kind, name in WIRE_TYPE.items() if isinstance(column.type, kind)), "text"
        )
        assert (column.name, wire) == (column.name, expected)
