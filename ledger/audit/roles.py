"""The PostgreSQL role set-up shipped with the package (``ledger roles``)."""

from __future__ import annotations

import re
from importlib import resources

from ledger.errors import InvalidRequest

#: role and schema names are plain lower-case identifiers: nothing to quote, nothing to inject
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")

DEFAULT_OWNER = "ledger_owner"
DEFAULT_APP = "ledger_app"
DEFAULT_AUDITOR = "ledger_auditor"
DEFAULT_SCHEMA = "public"


def roles_sql(
    *,
    owner: str = DEFAULT_OWNER,
    app: str = DEFAULT_APP,
    auditor: str = DEFAULT_AUDITOR,
    schema: str = DEFAULT_SCHEMA,
) -> str:
    """The role script (``ledger/sql/postgres_roles.sql``) for these names."""
    names = (("owner role", owner), ("app role", app), ("auditor role", auditor))
    for what, name in (*names, ("schema", schema)):
        if not _IDENTIFIER.fullmatch(name):
            raise InvalidRequest(
                f"invalid {what} {name!r}: use lower-case letters, digits and _ "
                "(at most 63, not starting with a digit)"
            )
    if len({owner, app, auditor}) != 3:
        raise InvalidRequest("the owner, app and auditor roles must all differ")
    template = resources.files("ledger").joinpath("sql/postgres_roles.sql").read_text("utf-8")
    return template.format(owner=owner, app=app, auditor=auditor, schema=schema)
