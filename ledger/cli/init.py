"""``ledger init``: create or upgrade the tables (its own module: only it needs Alembic)."""

from __future__ import annotations

from ledger.cli.app import app, console, load_settings, safe_url
from ledger.migrate import upgrade


@app.command()
def init() -> None:
    """Create or upgrade the ledger's tables (alembic upgrade head) in LEDGER_DATABASE_URL."""
    settings = load_settings()
    upgrade(settings.database_url)
    console.print(f"ledger database ready at {safe_url(settings.database_url)}", markup=False)


__all__ = ["init"]
