"""Projection tables (created by Alembic migrations, never by create_all at start-up)."""

from __future__ import annotations

import sqlalchemy as sa

from ledger.schema import NAMING_CONVENTION

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
