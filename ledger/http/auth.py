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

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, HTTPException, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.http.deps import TokensDep
from ledger.http.problems import problem_response
from ledger.http.roles import (
    ANONYMOUS,
    EVERYONE,
    READERS,
    BadTokenConfig,
    Principal,
    Role,
    lookup,
    parse_tokens,
)

__all__ = [
    "EVERYONE",
    "READERS",
    "BadTokenConfig",
    "Principal",
    "Role",
    "TokenGate",
    "parse_tokens",
    "require",
]


_bearer = HTTPBearer(auto_error=False)


def require(*roles: Role) -> Callable[..., Principal]:
    """A dependency that admits only ``roles`` (everyone when no tokens are configured)."""

    def dependency(
        tokens: TokensDep,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if not tokens:
            return ANONYMOUS
        if credentials is None or credentials.scheme.lower() != "bearer":
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        role = lookup(tokens, credentials.credentials)
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
        elif lookup(self.tokens, presented) is None:
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
