"""Random sequences of every command a settlement meets, against a real ledger.

A hypothesis state machine drives enqueue, claim, submit, confirm, complete,
fail, provider failure, cancel, reverse, refund, requeue, repay and crash (a
lease that runs out, then the reaper) on SQLite + fakeredis. Commands the
ledger refuses must append nothing; after every step the log holds only legal
histories (each stream folds through the one transition table), no cancelled
job was ever paid, no job gave back more than it paid, no payee kept more than
the job's amount, and money is conserved in a fold of the whole log.
"""

from __future__ import annotations

import functools
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import fakeredis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from ledger import migrate
from ledger.claims import ClaimedJob, Outcome
from ledger.db import create_engine
from ledger.errors import LedgerError
from ledger.events import EventType
from ledger.lifecycle import JobStatus, fold
from ledger.provider import ProviderResult
from ledger.queue import HotQueue, QueueKeys
from ledger.retry import RetryPolicy
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.store import EventStore
from projections.memory import MemoryProjection
from projections.stats import balances
from tests.factories import request


@functools.cache
def _template() -> Path:
    """A migrated SQLite file, copied for every example (migrating costs ~100 ms)."""
    path = Path(tempfile.mkdtemp(prefix="ledger-machine-")) / "template.db"
    migrate.upgrade(f"sqlite:///{path}")
    return path


class Settlements(RuleBasedStateMachine):
    """The ledger under random commands (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        directory = Path(tempfile.mkdtemp(prefix="ledger-machine-"))
        (directory / "ledger.db").write_bytes(_template().read_bytes())
        url = f"sqlite:///{directory / 'ledger.db'}"
        engine = create_engine(url)
        client = fakeredis.FakeRedis(server=fakeredis.FakeServer(), decode_responses=True)
        self.ledger = Ledger(
            settings=Settings(database_url=url, relay_grace_seconds=0.0, default_max_attempts=2),
            engine=engine,
            store=EventStore(engine),
            queue=HotQueue(client, QueueKeys("machine"), embedded=True),
            policy=RetryPolicy(0.0001, 0.0002),
        )
        self.jobs: list[str] = []
        self.held: list[ClaimedJob] = []
        self.keys = 0

    def teardown(self) -> None:
        self.ledger.close()

    def _job(self, index: int) -> str | None:
        return self.jobs[index % len(self.jobs)] if self.jobs else None

    def _refused_appends_nothing(self, job_id: str, command: object) -> None:
        before = len(self.ledger.store.read_stream(job_id))
        try:
            command()  # type: ignore[operator]
        except LedgerError:
            assert len(self.ledger.store.read_stream(job_id)) == before

    @initialize(
        amounts=st.lists(st.integers(min_value=1, max_value=50_000), min_size=3, max_size=3)
    )
    def paid_and_submitted(self, amounts: list[int]) -> None:
        """Start with two paid jobs and one the provider holds: money commands have targets."""
        for amount in amounts:
            self.enqueue(amount)
        while len(self.held) < 3:
            self.claim(30_000)
        for how in ("paid", "paid", "pending"):
            self.finish(0, how)

    # -- the queue ------------------------------------------------------------------

    @rule(amount=st.integers(min_value=1, max_value=50_000))
    def enqueue(self, amount: int) -> None:
        self.keys += 1
        result = self.ledger.enqueue(request(idempotency_key=f"k{self.keys}", amount=amount))
        self.jobs.append(result.job_id)

    @precondition(lambda self: self.jobs)
    @rule(lease_ms=st.sampled_from([1, 30_000, 30_000]))
    def claim(self, lease_ms: int) -> None:
        self.held.extend(self.ledger.claim("w", 2, timedelta(milliseconds=lease_ms)))

    @precondition(lambda self: self.held)
    @rule(
        index=st.integers(min_value=0),
        how=st.sampled_from(["paid", "paid", "pending", "retry", "refused"]),
    )
    def finish(self, index: int, how: str) -> None:
        if not self.held:
            return
        held = self.held.pop(index % len(self.held))
        outcome = {
            "paid": Outcome(held, result=ProviderResult(reference=f"po-{held.id}", fee=1)),
            "pending": Outcome(
                held, result=ProviderResult(reference=f"po-{held.id}", pending=True)
            ),
            "retry": Outcome(held, "timeout"),
            "refused": Outcome(held, "refused", retryable=False),
        }[how]
        self.ledger.record([outcome])  # a stale attempt (reaped meanwhile) is refused, not raised

    @rule()
    def crash(self) -> None:
        """Workers die: leases run out and the reaper fails their attempts."""
        self.held.clear()
        self.ledger.reap()  # by Redis' deadlines: the 1 ms leases have run out

    # -- the provider's later word --------------------------------------------------

    @precondition(lambda self: self.jobs)
    @rule(index=st.integers(min_value=0), paid=st.booleans())
    def provider_answers(self, index: int, paid: bool) -> None:
        job_id = self._job(index)
        if job_id is None:
            return
        if paid:
            self._refused_appends_nothing(
                job_id,
                lambda: self.ledger.confirm(job_id, ProviderResult(reference="po"), actor="p"),
            )
        else:
            self._refused_appends_nothing(
                job_id, lambda: self.ledger.provider_failed(job_id, "bank", actor="p")
            )

    # -- operators -------------------------------------------------------------------

    @precondition(lambda self: self.jobs)
    @rule(index=st.integers(min_value=0), provider_allows=st.booleans())
    def cancel(self, index: int, provider_allows: bool) -> None:
        job_id = self._job(index)
        if job_id is None:
            return
        cancel = (lambda job: ProviderResult(reference=job.reference)) if provider_allows else None
        self._refused_appends_nothing(
            job_id,
            lambda: self.ledger.cancel(job_id, actor="ops", reason="r", provider_cancel=cancel),
        )

    @precondition(lambda self: self.jobs)
    @rule(
        index=st.integers(min_value=0),
        amount=st.integers(min_value=-5, max_value=60_000),
        kind=st.sampled_from([EventType.REVERSED, EventType.REFUNDED]),
        token=st.sampled_from([None, "t1", "t2"]),
    )
    def give_back(self, index: int, amount: int, kind: EventType, token: str | None) -> None:
        job_id = self._job(index)
        if job_id is None:
            return
        self._refused_appends_nothing(
            job_id,
            lambda: self.ledger.settling.give_back(
                job_id, kind, amount, reason="r", actor="ops", token=token
            ),
        )

    @precondition(lambda self: self.jobs)
    @rule(index=st.integers(min_value=0))
    def requeue(self, index: int) -> None:
        job_id = self._job(index)
        if job_id is not None:
            self._refused_appends_nothing(
                job_id, lambda: self.ledger.requeue_from_dlq(job_id, actor="ops", reason="r")
            )

    @precondition(lambda self: self.jobs)
    @rule(index=st.integers(min_value=0))
    def repay(self, index: int) -> None:
        job_id = self._job(index)
        if job_id is not None:
            self._refused_appends_nothing(
                job_id, lambda: self.ledger.repay(job_id, actor="ops", reason="r")
            )

    # -- what must always hold ----------------------------------------------------------

    @invariant()
    def histories_are_legal_and_money_is_bounded(self) -> None:
        for job_id in self.jobs:
            job = fold(self.ledger.store.read_stream(job_id))  # raises on an illegal history
            assert job is not None
            if job.status is JobStatus.CANCELLED:
                assert job.net == 0 and job.paid == 0, job
            assert 0 <= job.reversed + job.refunded <= job.paid, job
            assert 0 <= job.net <= job.amount, job

    @invariant()
    def money_is_conserved(self) -> None:
        memory = MemoryProjection().replay(self.ledger.store.read_all())
        now = datetime.now(UTC)
        for balance in balances(memory.queue_stats(now), memory.kept_by_jobs()):
            assert balance.balanced, balance.as_dict()


Settlements.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_settlement_commands = Settlements.TestCase
