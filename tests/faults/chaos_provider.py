"""The chaos run's payment provider, as the handler of its worker processes.

``--handler tests.faults.chaos_provider:pay``. Configured by the environment the
harness sets: ``CHAOS_PROVIDER_DIR``, ``CHAOS_SEED``, ``CHAOS_TRANSIENT`` and
``CHAOS_PERMANENT`` (failure rates per attempt).

Like a real provider it is idempotent per key: the first successful call for
an idempotency key pays (a marker file created with ``O_EXCL``, atomic across
processes); a later call for the same key is answered "already paid", a success
that pays nothing. Every call is appended, one JSON line, to this process's own
file (``calls-<pid>.jsonl``) with one unbuffered ``write`` on an ``O_APPEND``
descriptor, so a ``kill -9`` right after it loses nothing: the provider's record.

Failures are drawn from the seed, the key and the attempt, so a seed repeats
them. A permanent failure comes only before the key is paid.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import orjson

from ledger.claims import ClaimedJob
from ledger.errors import PermanentFailure

#: longest time one call takes (seconds)
CALL_SECONDS = 0.05


class TransientFailure(Exception):
    """The provider timed out; try again later."""


def _setting(name: str, default: str) -> str:
    return os.environ.get(name, default)


def _roll(seed: str, key: str, attempt: int) -> float:
    """A number in [0, 1) fixed by the seed, the key and the attempt."""
    digest = hashlib.sha256(f"{seed}:{key}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def marker(directory: Path, key: str) -> Path:
    """The file whose existence says the provider paid ``key``."""
    return directory / "paid" / hashlib.sha256(key.encode()).hexdigest()


def _record(directory: Path, call: dict[str, object]) -> None:
    line = orjson.dumps(call) + b"\n"
    fd = os.open(directory / f"calls-{os.getpid()}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def pay(job: ClaimedJob) -> None:
    """Pay the settlement once per key; fail at the run's rates before paying."""
    directory = Path(_setting("CHAOS_PROVIDER_DIR", "."))
    key = job.request.idempotency_key
    call: dict[str, object] = {"job": job.id, "key": key, "attempt": job.attempt}
    paid = marker(directory, key)
    if paid.exists():
        _record(directory, {**call, "result": "already paid"})
        return
    roll = _roll(_setting("CHAOS_SEED", "0"), key, job.attempt)
    permanent = float(_setting("CHAOS_PERMANENT", "0.02"))
    transient = float(_setting("CHAOS_TRANSIENT", "0.1"))
    if roll < permanent:
        _record(directory, {**call, "result": "refused"})
        raise PermanentFailure("the provider refused the payout")
    if roll < permanent + transient:
        _record(directory, {**call, "result": "timeout"})
        raise TransientFailure("the provider timed out")
    time.sleep(CALL_SECONDS * roll)
    payment = {"key": key, "amount": job.request.amount, "currency": job.request.currency}
    try:
        fd = os.open(paid, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:  # another worker paid it a moment ago
        _record(directory, {**call, "result": "already paid"})
        return
    try:
        os.write(fd, orjson.dumps(payment))
    finally:
        os.close(fd)
    _record(directory, {**call, "result": "paid"})
