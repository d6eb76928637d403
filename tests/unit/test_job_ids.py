"""Job ids are version 7 UUIDs: they start with their creation time, so they sort by it."""

from __future__ import annotations

import multiprocessing
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.events import epoch_ms
from ledger.job_ids import RANDOM_BITS, job_id_at, new_job_id


def test_new_ids_are_version_7_and_increase_on_the_clock() -> None:
    before = datetime.now(UTC)
    ids = [new_job_id() for _ in range(20_000)]
    after = datetime.now(UTC)
    assert all(uuid.UUID(job_id).version == 7 for job_id in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    # the first 48 bits are the time it was made, in milliseconds: a burst of many ids
    # in one millisecond does not push the time ahead of the clock
    made = [uuid.UUID(job_id).int >> RANDOM_BITS for job_id in (ids[0], ids[-1])]
    assert epoch_ms(before) <= made[0] <= made[1] <= epoch_ms(after)


def _ids(count: int) -> list[str]:
    return [new_job_id() for _ in range(count)]


def test_forked_processes_make_different_ids() -> None:
    """Services and API workers are forked: their ids share time and counter, not random bits."""
    new_job_id()  # the generator's state exists before the fork
    with multiprocessing.get_context("fork").Pool(4) as pool:
        batches = pool.map(_ids, [20_000] * 4)
    made = [job_id for batch in batches for job_id in batch]
    assert len(set(made)) == len(made)


def test_an_id_of_a_moment_carries_its_milliseconds_and_is_reproducible() -> None:
    moment = datetime(2026, 1, 1, 9, 0, 0, 123_456, tzinfo=timezone(timedelta(hours=9)))
    job_id = job_id_at(moment, 0xABC_0000_0000_0000_1234)
    assert job_id == job_id_at(moment.astimezone(UTC), 0xABC_0000_0000_0000_1234)
    parsed = uuid.UUID(job_id)
    assert parsed.version == 7 and parsed.variant == uuid.RFC_4122
    assert parsed.int >> RANDOM_BITS == 1_767_225_600_123  # 2026-01-01T00:00:00.123Z


@given(
    st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9000, 1, 1)),
    st.timedeltas(min_value=timedelta(milliseconds=1), max_value=timedelta(days=3650)),
    st.integers(0, (1 << RANDOM_BITS) - 1),
    st.integers(0, (1 << RANDOM_BITS) - 1),
)
def test_an_id_a_millisecond_later_sorts_later_whatever_the_random_bits(
    moment: datetime, gap: timedelta, first: int, second: int
) -> None:
    assert job_id_at(moment, first) < job_id_at(moment + gap, second)


@pytest.mark.parametrize("bits", [-1, 1 << RANDOM_BITS])
def test_random_bits_out_of_range_are_refused(bits: int) -> None:
    with pytest.raises(ValueError, match="80-bit"):
        job_id_at(datetime(2026, 1, 1, tzinfo=UTC), bits)
