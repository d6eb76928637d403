"""The console's sign-in: an API bearer token exchanged for a signed session cookie.

The cookie holds ``role.expiry.nonce.signature`` (HMAC-SHA256 under a key derived
from the configured tokens, so changing ``LEDGER_API_TOKENS`` signs everyone out,
and every ``serve`` process accepts every other's cookies). It is HttpOnly,
SameSite=Strict, and Secure unless the server is on loopback. Every form that
changes anything carries a CSRF token bound to the session (an HMAC of its
nonce): a page of another site can neither read it nor send the cookie.

With no tokens configured the API is open and ``serve`` binds loopback only: the
console then signs in without a token as ``operator``, still with cookie and CSRF.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from ledger.http.roles import Role, lookup

COOKIE = "ledger_console"
CSRF_FIELD = "csrf"
#: how long a console session lasts
SESSION_SECONDS = 8 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in console user: the role of the token they signed in with."""

    role: Role
    expires: int
    nonce: str

    @property
    def may_act(self) -> bool:
        """Operators see and use the controls; auditors only read."""
        return self.role is Role.OPERATOR


class Sessions:
    """Signs and checks session cookies and CSRF tokens (one per application)."""

    def __init__(self, tokens: list[tuple[str, Role]], *, open_key: str = "") -> None:
        self.tokens = tokens
        material = "\n".join(f"{role.value}:{token}" for token, role in tokens) or open_key
        self._key = hashlib.sha256(b"ledger-console\n" + material.encode()).digest()

    @property
    def open(self) -> bool:
        """No tokens configured: sign-in needs none (the server is on loopback)."""
        return not self.tokens

    def sign_in(self, presented: str, now: float | None = None) -> tuple[Session, str] | None:
        """The session and its cookie value for a token (``None``: unknown, or a service's)."""
        role = Role.OPERATOR if self.open else lookup(self.tokens, presented)
        if role is None or role is Role.SERVICE:
            return None
        expires = int(now if now is not None else time.time()) + SESSION_SECONDS
        session = Session(role, expires, secrets.token_urlsafe(16))
        body = f"{role.value}.{expires}.{session.nonce}"
        return session, f"{body}.{self._sign('session', body)}"

    def session(self, cookie: str | None, now: float | None = None) -> Session | None:
        """The session of a cookie, or ``None`` (missing, forged, expired)."""
        if not cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        if not hmac.compare_digest(signature, self._sign("session", body)):
            return None
        role_text, _, rest = body.partition(".")
        expires_text, _, nonce = rest.partition(".")
        try:
            role, expires = Role(role_text), int(expires_text)
        except ValueError:
            return None
        if expires < (now if now is not None else time.time()):
            return None
        return Session(role, expires, nonce)

    def csrf(self, session: Session) -> str:
        """The CSRF token of ``session``'s forms."""
        return self._sign("csrf", session.nonce)

    def csrf_ok(self, session: Session, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented, self.csrf(session))

    def _sign(self, purpose: str, text: str) -> str:
        return hmac.new(self._key, f"{purpose}\n{text}".encode(), hashlib.sha256).hexdigest()
