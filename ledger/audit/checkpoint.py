"""Signed checkpoints of the chain head, kept outside the database.

A checkpoint is ``{position, hash, time}`` of the log's last event, signed with
HMAC-SHA256 under ``LEDGER_CHECKPOINT_KEY``. Kept somewhere the database's
operators cannot write (a ticket, a mail to the auditors, object storage with a
retention lock), it lets ``verify --checkpoint`` prove that the log still holds
exactly the prefix that existed then: a rewrite of the whole chain with
recomputed hashes changes the hash at the checkpoint's position.

Pure apart from ``take_checkpoint`` (reads the head) and file helpers.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import Engine

from ledger.errors import CheckpointKeyMissing, InvalidCheckpoint
from ledger.events import format_time, to_utc
from ledger.request import canonical_json
from ledger.store import EventStore

ALGORITHM = "hmac-sha256"
MIN_KEY_LENGTH = 16
_HEX64 = frozenset("0123456789abcdef")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """The chain head at ``time``: the event at ``position`` has hash ``hash``."""

    position: int
    hash: str
    time: datetime

    def payload(self) -> dict[str, Any]:
        """The signed fields, in their one text form."""
        return {
            "algorithm": ALGORITHM,
            "position": self.position,
            "hash": self.hash,
            "time": format_time(self.time),
        }


def checkpoint_key(secret: str | None) -> bytes:
    """The key bytes from configuration, or ``CheckpointKeyMissing``."""
    if not secret:
        raise CheckpointKeyMissing()
    if len(secret) < MIN_KEY_LENGTH:
        raise CheckpointKeyMissing(
            f"LEDGER_CHECKPOINT_KEY is too short: use at least {MIN_KEY_LENGTH} characters"
        )
    return secret.encode()


def sign(checkpoint: Checkpoint, key: bytes) -> dict[str, Any]:
    """The checkpoint document: its fields plus the HMAC over their canonical JSON."""
    payload = checkpoint.payload()
    signature = hmac.new(key, canonical_json(payload), hashlib.sha256).hexdigest()
    return {**payload, "signature": signature}


def dumps(document: dict[str, Any]) -> str:
    """One line of JSON (sorted keys), newline-terminated: the checkpoint file's content."""
    return canonical_json(document).decode() + "\n"


def load(text: str | bytes, key: bytes) -> Checkpoint:
    """Parse a checkpoint document and check its signature, or ``InvalidCheckpoint``."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise InvalidCheckpoint(f"the checkpoint is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidCheckpoint("the checkpoint must be a JSON object")
    checkpoint = _fields(document)
    expected = sign(checkpoint, key)["signature"]
    if not hmac.compare_digest(expected, str(document.get("signature", ""))):
        raise InvalidCheckpoint(
            "the checkpoint's signature does not match: it was altered, or signed with "
            "another key (check LEDGER_CHECKPOINT_KEY)"
        )
    return checkpoint


def _fields(document: dict[str, Any]) -> Checkpoint:
    if document.get("algorithm") != ALGORITHM:
        raise InvalidCheckpoint(
            f"unsupported checkpoint algorithm {document.get('algorithm')!r} (want {ALGORITHM})"
        )
    position, digest, time = document.get("position"), document.get("hash"), document.get("time")
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise InvalidCheckpoint("the checkpoint's position must be a non-negative integer")
    if not isinstance(digest, str) or len(digest) != 64 or not set(digest) <= _HEX64:
        raise InvalidCheckpoint("the checkpoint's hash must be 64 lower-case hex digits")
    try:
        moment = datetime.fromisoformat(str(time))
    except ValueError:
        raise InvalidCheckpoint("the checkpoint's time is not an ISO 8601 time") from None
    return Checkpoint(position, digest, to_utc(moment))


def take_checkpoint(engine: Engine, now: datetime) -> Checkpoint:
    """The current chain head, stamped with ``now`` (the caller's clock)."""
    head = EventStore(engine).head()
    return Checkpoint(head.position, head.hash, to_utc(now))


def read_checkpoint(path: Path, key: bytes) -> Checkpoint:
    """Load and check a checkpoint file."""
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise InvalidCheckpoint(f"cannot read checkpoint {str(path)!r}: {exc.strerror}") from None
    return load(text, key)


def anchors(checkpoint: Checkpoint) -> dict[int, str]:
    """What ``verify_log`` must find: the hash at the checkpoint's position (none if empty)."""
    return {checkpoint.position: checkpoint.hash} if checkpoint.position > 0 else {}
