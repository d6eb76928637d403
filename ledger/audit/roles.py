"""The PostgreSQL role set-up shipped with the package (``ledger roles``)."""

from __future__ import annotations

import re
from importlib import resources

from ledger.errors import InvalidRequest

#: role and schema names are plain lower-case identifiers: nothing to quote, nothing to inject
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

DEFAULT_OWNER = "ledger_owner"
DEFAULT_APP = "ledger_app"
DEFAULT_SCHEMA = "public"


def roles_sql(
    *, owner: str = DEFAULT_OWNER, app: str = DEFAULT_APP, schema: str = DEFAULT_SCHEMA
) -> str:
    """The role script (``ledger/sql/postgres_roles.sql``) for these names."""
    for what, name in (("owner role", owner), ("app role", app), ("schema", schema)):
        if not _IDENTIFIER.fullmatch(name):
            raise InvalidRequest(
                f"invalid {what} {name!r}: use lower-case letters, digits and _ "
                "(at most 63, not starting with a digit)"
            )
    if owner == app:
        raise InvalidRequest("the owner and app roles must differ")
    template = resources.files("ledger").joinpath("sql/postgres_roles.sql").read_text("utf-8")
    return template.format(owner=owner, app=app, schema=schema)
