"""Signed checkpoints: what the chain alone cannot catch, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy.engine import Engine

from ledger.audit import checkpoint as cp
from ledger.audit.verify import AnchorStatus, ProblemKind, verify_log
from ledger.errors import CheckpointKeyMissing, InvalidCheckpoint
from ledger.events import GENESIS_HASH, EventType, NewEvent
from ledger.store import EventStore
from tests.audit_support import Attacker, build_log, rewrite_chain
from tests.factories import request

KEY = b"k" * 32
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def signed(checkpoint: cp.Checkpoint, key: bytes = KEY) -> str:
    return cp.dumps(cp.sign(checkpoint, key))


# -- pure: signing and loading ---------------------------------------------------


def test_sign_and_load_round_trip() -> None:
    checkpoint = cp.Checkpoint(42, "a" * 64, NOW)
    assert cp.load(signed(checkpoint), KEY) == checkpoint


@pytest.mark.parametrize(
    ("field", "value"),
    [("position", 41), ("hash", "b" * 64), ("time", "2026-11-26T12:00:01.000000Z")],
)
def test_an_altered_field_breaks_the_signature(field: str, value: object) -> None:
    document = orjson.loads(signed(cp.Checkpoint(42, "a" * 64, NOW)))
    document[field] = value
    with pytest.raises(InvalidCheckpoint, match="signature does not match"):
        cp.load(orjson.dumps(document), KEY)


def test_another_key_is_refused() -> None:
    text = signed(cp.Checkpoint(42, "a" * 64, NOW))
    with pytest.raises(InvalidCheckpoint, match="LEDGER_CHECKPOINT_KEY"):
        cp.load(text, b"x" * 32)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not JSON"),
        ("[1]", "JSON object"),
        ('{"algorithm": "md5"}', "unsupported checkpoint algorithm"),
        ('{"algorithm": "hmac-sha256", "position": -1}', "position"),
        ('{"algorithm": "hmac-sha256", "position": true}', "position"),
        ('{"algorithm": "hmac-sha256", "position": 1, "hash": "XYZ"}', "hash"),
        ('{"algorithm": "hmac-sha256", "position": 1, "hash": "' + "a" * 64 + '"}', "time"),
    ],
)
def test_malformed_checkpoints_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidCheckpoint, match=message):
        cp.load(text, KEY)


@pytest.mark.parametrize("secret", [None, "", "short"])
def test_a_missing_or_short_key_is_refused(secret: str | None) -> None:
    with pytest.raises(CheckpointKeyMissing):
        cp.checkpoint_key(secret)


def test_reading_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InvalidCheckpoint, match="cannot read checkpoint"):
        cp.read_checkpoint(tmp_path / "nope.json", KEY)


# -- against the log ----------------------------------------------------------------


def test_checkpoint_of_an_empty_log(engine: Engine) -> None:
    checkpoint = cp.take_checkpoint(engine, NOW)
    assert (checkpoint.position, checkpoint.hash) == (0, GENESIS_HASH)
    assert cp.anchors(checkpoint) == {}


def test_an_intact_log_still_holds_the_checkpoint(
    engine: Engine, store: EventStore, tmp_path: Path
) -> None:
    build_log(store, 3)
    path = tmp_path / "checkpoint.json"
    path.write_text(signed(cp.take_checkpoint(engine, NOW)))
    build_log_more(store)
    checkpoint = cp.read_checkpoint(path, KEY)
    result = verify_log(engine, anchors=cp.anchors(checkpoint))
    assert result.ok, result.problem
    assert result.anchors == {checkpoint.position: AnchorStatus.MATCHED}
    assert result.last_position > checkpoint.position
    # a walk that starts after it cannot vouch for it: it says so, and matches nothing
    late = verify_log(engine, from_position=checkpoint.position + 2, anchors=cp.anchors(checkpoint))
    assert late.ok and late.anchors == {checkpoint.position: AnchorStatus.NOT_CHECKED}
    assert AnchorStatus.MATCHED not in late.anchors.values()


def build_log_more(store: EventStore) -> None:
    job = store.enqueue(request(idempotency_key="later"), max_attempts=1).job_id
    store.append(job, 1, [NewEvent(EventType.ATTEMPTED, {"attempt": 1}, "w")])


def test_a_rewritten_chain_is_caught_by_an_older_checkpoint(
    engine: Engine, store: EventStore
) -> None:
    build_log(store, 3)  # 10 events
    older = cp.take_checkpoint(engine, NOW)
    build_log_more(store)
    attacker = Attacker(engine)
    attacker.disable_triggers()
    rows = attacker.rows()
    forged = rows[1]["data"].replace('"amount":1001', '"amount":999')
    assert forged != rows[1]["data"]
    rows[1]["data"] = forged
    attacker.wipe()
    for row in rewrite_chain(rows):
        attacker.insert(row)
    assert verify_log(engine).ok  # the chain alone is consistent
    result = verify_log(engine, anchors=cp.anchors(older))
    assert result.problem is not None
    assert (result.problem.position, result.problem.kind) == (older.position, ProblemKind.REWRITTEN)
    late = verify_log(engine, from_position=older.position + 1, anchors=cp.anchors(older))
    assert late.problem is not None and late.problem.kind is ProblemKind.REWRITTEN


def test_a_truncated_tail_is_caught_by_the_checkpoint(engine: Engine, store: EventStore) -> None:
    build_log(store, 3)  # 10 events
    checkpoint = cp.take_checkpoint(engine, NOW)
    attacker = Attacker(engine)
    attacker.disable_triggers()
    attacker.execute("DELETE FROM events WHERE position > 7")
    assert verify_log(engine).ok  # a shorter chain is still a chain
    result = verify_log(engine, anchors=cp.anchors(checkpoint))
    assert result.problem is not None
    assert (result.problem.position, result.problem.kind) == (8, ProblemKind.MISSING)
