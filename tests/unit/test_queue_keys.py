"""Key names, the payload cache codec, handler loading and outcomes (no services)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import MappingProxyType

import fakeredis
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.errors import HandlerNotFound, PermanentFailure, UnsafeRedis
from ledger.handler import load_handler, run_handler
from ledger.lifecycle import Job, JobStatus
from ledger.queue import HotQueue, QueueKeys
from ledger.queue.snapshot import decode_job, encode_job
from ledger.service import ClaimedJob
from tests.factories import T0, request


def test_every_key_of_a_queue_shares_one_hash_tag() -> None:
    keys = QueueKeys("settlements")
    names = [keys.ready, keys.delayed, keys.inflight, keys.notify, keys.epoch, keys.payload("j")]
    assert len(set(names)) == len(names)
    for name in names:
        assert name.startswith("ledger:{settlements}:")
        assert re.findall(r"\{(.*?)\}", name) == ["settlements"]
    assert keys.job_id_of(keys.payload("abc")) == "abc"


@pytest.mark.parametrize("bad", ["", "a{b", "a}b", "a:b", "a b"])
def test_queue_names_that_would_break_the_hash_tag_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        QueueKeys(bad)


SNAPSHOT = Job(
    job_id="j1",
    status=JobStatus.PROCESSING,
    version=4,
    request=request(metadata={"qr": "토큰", "n": [1, None]}).as_record(),
    max_attempts=3,
    created_at=T0,
    updated_at=T0 + timedelta(seconds=3),
    due_at=None,
    attempts=2,
    round_attempts=1,
    worker="w",
    lease_until=T0 + timedelta(seconds=33, microseconds=5),
    last_error="boom",
)


@given(st.sampled_from(list(JobStatus)), st.integers(1, 10**6), st.integers(0, 99))
def test_snapshot_round_trips(status: JobStatus, version: int, attempts: int) -> None:
    job = replace(SNAPSHOT, status=status, version=version, attempts=attempts)
    assert decode_job(encode_job(job)) == job


@pytest.mark.parametrize("junk", ["", "nope", "[]", '{"job_id": "j"}', "{}"])
def test_unreadable_cache_entries_are_misses(junk: str) -> None:
    assert decode_job(junk) is None


def test_a_redis_whose_policy_cannot_be_read_is_refused() -> None:
    # fakeredis does not answer CONFIG GET: treated like a Redis that forbids it
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
    queue = HotQueue(client, QueueKeys("q"), embedded=False)
    with pytest.raises(UnsafeRedis, match="maxmemory-policy"):
        queue.check_safe()
    HotQueue(client, QueueKeys("q"), embedded=True).check_safe()


def test_load_handler() -> None:
    assert load_handler("tests.unit.test_queue_keys:ok_handler") is ok_handler
    assert load_handler("os.path:join") is not None


@pytest.mark.parametrize(
    "spec", ["nocolon", "no.such.module:x", "tests.unit.test_queue_keys:missing", ":x", "os:sep"]
)
def test_bad_handlers_are_refused_clearly(spec: str) -> None:
    with pytest.raises(HandlerNotFound):
        load_handler(spec)


def claimed() -> ClaimedJob:
    return ClaimedJob(SNAPSHOT, T0, request())


def ok_handler(job: ClaimedJob) -> None:
    assert job.idempotency_key == "key-1"


async def async_handler(job: ClaimedJob) -> None:
    await asyncio.sleep(0)
    if job.attempt == 2:
        raise ValueError("async boom")


def test_outcomes_from_handlers() -> None:
    job = claimed()
    assert run_handler(ok_handler, job).error is None

    def flaky(_: ClaimedJob) -> None:
        raise RuntimeError("gateway timeout")

    def permanent(_: ClaimedJob) -> None:
        raise PermanentFailure("account closed")

    def silent(_: ClaimedJob) -> None:
        raise KeyError

    assert run_handler(flaky, job).error == "RuntimeError: gateway timeout"
    assert run_handler(flaky, job).retryable
    outcome = run_handler(permanent, job)
    assert (outcome.error, outcome.retryable) == ("PermanentFailure: account closed", False)
    assert run_handler(silent, job).error == "KeyError"
    outcome = run_handler(async_handler, job)
    assert (outcome.error, outcome.retryable) == ("ValueError: async boom", True)


def test_snapshot_round_trips_whole_seconds_and_other_mappings() -> None:
    job = replace(
        SNAPSHOT,
        request=MappingProxyType(dict(SNAPSHOT.request)),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        completed_at=datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC),
    )
    decoded = decode_job(encode_job(job))
    assert decoded == replace(job, request=dict(SNAPSHOT.request))
    assert '"created_at":"2026-01-01T00:00:00Z"' in encode_job(job)


def test_snapshot_takes_naive_times_as_utc() -> None:
    naive = replace(SNAPSHOT, created_at=datetime(2026, 1, 1, 9, 30))
    decoded = decode_job(encode_job(naive))
    assert decoded is not None
    assert decoded.created_at == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
