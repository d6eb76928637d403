"""Bearer tokens and roles: ``LEDGER_API_TOKENS="auditor:T1,operator:T2,service:T3"``.

* ``auditor`` reads everything and writes nothing;
* ``operator`` reads the queue and requeues from the dead-letter queue;
* ``service`` enqueues settlements and reads its jobs' state.

Missing or unknown token: 401. Known token, wrong role: 403. With no tokens
configured the API is open, and ``ledger serve`` refuses to bind anything but
loopback.

``TokenGate`` (pure ASGI, outermost) answers 401 under ``/api/`` and
``/metrics`` before anything else runs, so a body from a caller without a known
token is never read; the per-route ``require`` dependency then checks the role.
``/api/webhooks/`` is exempt: a provider cannot send our token, its signature
over the (capped, strictly parsed) body is the authentication.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.errors import LedgerError
from ledger.http.problems import problem_response


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


_bearer = HTTPBearer(auto_error=False)


def _lookup(tokens: list[tuple[str, Role]], presented: str) -> Role | None:
    found: Role | None = None
    for token, role in tokens:
        # compare every token in constant time; no early exit that leaks which matched
        if hmac.compare_digest(token.encode(), presented.encode()):
            found = role
    return found


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency that admits only ``roles`` (everyone when no tokens are configured)."""

    def dependency(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),  # noqa: B008
    ) -> Principal:
        tokens: list[tuple[str, Role]] = request.app.state.tokens
        if not tokens:
            return ANONYMOUS
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        role = _lookup(tokens, credentials.credentials)
        if role is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "unknown bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if role not in roles:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {role} role may not do this")
        return Principal(role=role, name=role.value)

    return dependency


#: the paths whose every request needs a known bearer token (when tokens are set)
PROTECTED_PREFIXES = ("/api/", "/metrics")
#: ...except these, which authenticate otherwise (a provider's webhook signs its body)
EXEMPT_PREFIXES = ("/api/webhooks/",)


class TokenGate:
    """401 for a missing or unknown token under ``prefixes``, before the body is read."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        tokens: list[tuple[str, Role]],
        prefixes: tuple[str, ...] = PROTECTED_PREFIXES,
        exempt: tuple[str, ...] = EXEMPT_PREFIXES,
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.prefixes = prefixes
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self._gated(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not presented:
            reason = "missing bearer token"
        elif _lookup(self.tokens, presented) is None:
            reason = "unknown bearer token"
        else:
            await self.app(scope, receive, send)
            return
        answer_headers = {"WWW-Authenticate": "Bearer"}
        if headers.get("content-length", "0") != "0" or "transfer-encoding" in headers:
            answer_headers["Connection"] = "close"  # the body is not wanted: stop it coming
        response = problem_response(status.HTTP_401_UNAUTHORIZED, reason, headers=answer_headers)
        await response(scope, receive, send)

    def _gated(self, path: str) -> bool:
        return bool(self.tokens) and _under(path, self.prefixes) and not _under(path, self.exempt)


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path.startswith(prefix) or path == prefix.rstrip("/") for prefix in prefixes)


READERS = (Role.AUDITOR, Role.OPERATOR)
EVERYONE = (Role.AUDITOR, Role.OPERATOR, Role.SERVICE)
