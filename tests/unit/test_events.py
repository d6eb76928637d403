"""The hash helpers: ``sealed_hash`` (time as text) hashes exactly what ``event_hash`` does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from ledger.events import GENESIS_HASH, event_hash, format_time, sealed_hash

SEOUL = timezone(timedelta(hours=9))


@pytest.mark.parametrize(
    ("occurred_at", "key"),
    [
        (datetime(2026, 11, 26, 13, 0, 0, 123456, tzinfo=UTC), "key-1"),
        (datetime(2026, 11, 26, 22, 0, 0, tzinfo=SEOUL), None),
        (datetime(2026, 1, 1), "naive is UTC"),
    ],
)
def test_sealed_hash_matches_event_hash(occurred_at: datetime, key: str | None) -> None:
    expected = event_hash(
        prev_hash=GENESIS_HASH,
        position=7,
        job_id="job-1",
        version=2,
        event_type="attempted",
        data_json='{"attempt":1}',
        occurred_at=occurred_at,
        actor="worker-1",
        idempotency_key=key,
    )
    text = format_time(occurred_at)
    assert (
        sealed_hash(
            GENESIS_HASH, 7, "job-1", 2, "attempted", '{"attempt":1}', text, "worker-1", key
        )
        == expected
    )


def test_the_hash_format_is_pinned() -> None:
    """A known event's hash: any change to the material or its encoding breaks every log."""
    digest = event_hash(
        prev_hash=GENESIS_HASH,
        position=1,
        job_id="job-1",
        version=1,
        event_type="enqueued",
        data_json="{}",
        occurred_at=datetime(2026, 1, 1, tzinfo=UTC),
        actor="service",
        idempotency_key="k",
    )
    # computed with main at 4fe01be, before the hash had a time-text variant
    assert digest == "342d00964df86b0d1c3b96b13422b7d9eec59a7c08f17b0ee28782e135071378"
