"""Roles and bearer tokens: ``LEDGER_API_TOKENS="auditor:T1,operator:T2,service:T3"``.

The parsed token table is wired into the app once (``ledger.http.deps``); the
gate and the ``require`` dependency in ``ledger.http.auth`` look tokens up here.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from enum import StrEnum

from ledger.errors import LedgerError


class Role(StrEnum):
    AUDITOR = "auditor"
    OPERATOR = "operator"
    SERVICE = "service"


class BadTokenConfig(LedgerError):
    """LEDGER_API_TOKENS is malformed; write it as role:token pairs separated by commas."""

    exit_code = 2


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a role and a short name for logs (never the token)."""

    role: Role | None
    name: str


ANONYMOUS = Principal(role=None, name="anonymous")


def parse_tokens(spec: str | None) -> list[tuple[str, Role]]:
    """``"auditor:T1,operator:T2"`` → ``[("T1", auditor), ("T2", operator)]``."""
    if not spec or not spec.strip():
        return []
    tokens: list[tuple[str, Role]] = []
    for index, item in enumerate(spec.split(","), start=1):
        role_name, sep, token = item.strip().partition(":")
        if not sep or not token:
            raise BadTokenConfig(f"LEDGER_API_TOKENS item {index} is not role:token")
        try:
            role = Role(role_name.strip())
        except ValueError:
            raise BadTokenConfig(
                f"LEDGER_API_TOKENS item {index}: unknown role {role_name!r} "
                f"(use {', '.join(r.value for r in Role)})"
            ) from None
        if len(token) < 16:
            raise BadTokenConfig(f"LEDGER_API_TOKENS item {index}: tokens need 16+ characters")
        if any(token == known for known, _role in tokens):
            raise BadTokenConfig(
                f"LEDGER_API_TOKENS item {index}: this token is already given to another "
                "item; give every role its own token"
            )
        tokens.append((token, role))
    return tokens


def lookup(tokens: list[tuple[str, Role]], presented: str) -> Role | None:
    found: Role | None = None
    for token, role in tokens:
        # compare every token in constant time; no early exit that leaks which matched
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = role
    return found


READERS = (Role.AUDITOR, Role.OPERATOR)
EVERYONE = (Role.AUDITOR, Role.OPERATOR, Role.SERVICE)
