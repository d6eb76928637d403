"""The console's session cookies and CSRF tokens (``ledger.http.console.session``)."""

from __future__ import annotations

from ledger.http.console.session import SESSION_SECONDS, Sessions
from ledger.http.roles import Role

TOKENS = [("operator-token-0123456789", Role.OPERATOR), ("auditor-token-0123456789", Role.AUDITOR),
          ("service-token-0123456789", Role.SERVICE)]  # fmt: skip
NOW = 1_800_000_000.0


def test_operators_and_auditors_sign_in_and_services_do_not() -> None:
    signer = Sessions(TOKENS)
    signed = signer.sign_in("operator-token-0123456789", NOW)
    assert signed is not None
    session, cookie = signed
    assert session.role is Role.OPERATOR and session.may_act
    assert signer.session(cookie, NOW) == session
    auditor = signer.sign_in("auditor-token-0123456789", NOW)
    assert auditor is not None and not auditor[0].may_act
    assert signer.sign_in("service-token-0123456789", NOW) is None
    assert signer.sign_in("nobody-knows-this-token", NOW) is None


def test_a_forged_or_expired_cookie_is_no_session() -> None:
    signer = Sessions(TOKENS)
    signed = signer.sign_in("auditor-token-0123456789", NOW)
    assert signed is not None
    _, cookie = signed
    _role, expires, nonce, signature = cookie.split(".")
    assert signer.session(f"operator.{expires}.{nonce}.{signature}", NOW) is None
    assert signer.session(cookie, NOW + SESSION_SECONDS + 1) is None
    assert Sessions(TOKENS[:1]).session(cookie, NOW) is None  # the tokens changed: signed out
    assert signer.session("", NOW) is None and signer.session("a.b", NOW) is None


def test_csrf_tokens_belong_to_their_session() -> None:
    signer = Sessions(TOKENS)
    first = signer.sign_in("operator-token-0123456789", NOW)
    second = signer.sign_in("operator-token-0123456789", NOW)
    assert first is not None and second is not None
    assert signer.csrf_ok(first[0], signer.csrf(first[0]))
    assert not signer.csrf_ok(first[0], signer.csrf(second[0]))
    assert not signer.csrf_ok(first[0], None)


def test_with_no_tokens_the_console_signs_in_as_operator() -> None:
    signer = Sessions([], open_key="sqlite:///x.db")
    signed = signer.sign_in("", NOW)
    assert signed is not None and signed[0].role is Role.OPERATOR
