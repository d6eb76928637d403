"""The ``ENCRYPTION`` security mode: request and response bodies as compact JWE.

The v2 payouts guide: ``alg=dir``, ``enc=A256GCM``, and two custom protected
headers, ``iat`` (``yyyy-MM-dd'T'HH:mm:ss±hh:mm``) and ``nonce`` (a UUID); the
key is the 64-hex security key decoded to 32 bytes. joserfc does the crypto.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey
from joserfc.registry import HeaderParameter

from ledger.providers.toss.errors import TossProtocolError

#: ``iat`` and ``nonce`` are not registered JWE headers: declare them, required
REGISTRY = jwe.JWERegistry(
    header_registry={
        "iat": HeaderParameter("Time the body was made (ISO 8601 with offset)", "str", True),
        "nonce": HeaderParameter("A value used once (a UUID)", "str", True),
    },
    algorithms=["dir", "A256GCM"],
)


def issued_at(now: datetime) -> str:
    """``now`` as the docs write ``iat``: seconds and a ``±hh:mm`` offset."""
    return now.isoformat(timespec="seconds")


def encrypt(plaintext: bytes, key: bytes, *, now: datetime, nonce: str | None = None) -> str:
    """``plaintext`` as a compact JWE under ``key`` (32 bytes)."""
    header = {
        "alg": "dir",
        "enc": "A256GCM",
        "iat": issued_at(now),
        "nonce": nonce or str(uuid.uuid4()),
    }
    return jwe.encrypt_compact(header, plaintext, OctKey.import_key(key), registry=REGISTRY)


def decrypt(token: str | bytes, key: bytes) -> tuple[dict[str, object], bytes]:
    """The protected header and plaintext of a compact JWE; ``TossProtocolError`` if it is not
    one made with ``key``."""
    try:
        data = jwe.decrypt_compact(token, OctKey.import_key(key), registry=REGISTRY)
    except (JoseError, ValueError) as error:
        raise TossProtocolError(f"a JWE body that does not decrypt: {error}") from None
    if data.plaintext is None:
        raise TossProtocolError("a JWE body without content")
    return dict(data.protected), data.plaintext


def now_here() -> datetime:
    """The current time with the machine's UTC offset (what ``iat`` shows)."""
    return datetime.now().astimezone()
