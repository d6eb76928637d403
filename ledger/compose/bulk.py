"""Bulk cancel and bulk requeue by filter, previewed first, confirmed by a token.

* ``preview`` (a read): the jobs the filter selects now (dead-lettered or waiting,
  by reason, time of the last change, user, place, mission, currency, amount
  range; at most ``MAX_JOBS``), their count and amount per currency, and a token:
  a digest of the action, the filter and each job's id and version.
* ``execute`` runs only if the filter still selects exactly that set (the same
  token): it records ``bulk_requested`` in the operator stream with the set, then
  works through it in batches of ``BATCH``, each job by the ordinary command
  (``cancel``, ``requeue_from_dlq``: same rules, an event with the actor and the
  reason, ``bulk <token>`` in front). A job whose version moved since the preview
  is left alone and reported. Run again with the same token (a retry after a
  crash or a time-out), it takes the recorded set and skips the jobs it already
  did: safe to retry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from ledger.errors import BulkChanged, InvalidRequest, LedgerError
from ledger.events import StoredEvent
from ledger.service import Ledger
from projections.listing import Candidate, JobFilter, bulk_candidates

#: most jobs one bulk action takes (narrow the filter for more)
MAX_JOBS = 10_000
#: jobs read and acted on per round
BATCH = 100


class BulkAction(StrEnum):
    CANCEL = "cancel"
    REQUEUE = "requeue"


#: the statuses each action may select
ELIGIBLE: dict[BulkAction, tuple[str, ...]] = {
    BulkAction.CANCEL: ("dead", "waiting"),
    BulkAction.REQUEUE: ("dead",),
}


@dataclass(frozen=True, slots=True)
class Preview:
    """What ``execute`` would do, and the token that confirms exactly this set."""

    action: BulkAction
    wanted: JobFilter
    jobs: list[Candidate]
    token: str
    position: int

    def amounts(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for job in self.jobs:
            entry = found.setdefault(job.currency, {"jobs": 0, "amount": 0})
            entry["jobs"] += 1
            entry["amount"] += job.amount
        return dict(sorted(found.items()))

    def as_api(self) -> dict[str, Any]:
        return {
            "action": self.action.value,
            "filter": self.wanted.as_data(),
            "count": len(self.jobs),
            "amounts": self.amounts(),
            "token": self.token,
            "asOfPosition": self.position,
        }


@dataclass
class BulkResult:
    """What ``execute`` did: jobs acted on now, done by an earlier run, and left alone."""

    token: str
    count: int
    done: int = 0
    done_before: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)

    def as_api(self) -> dict[str, Any]:
        return {
            "token": self.token,
            "count": self.count,
            "done": self.done,
            "doneBefore": self.done_before,
            "skipped": self.skipped,
        }


def preview(ledger: Ledger, action: BulkAction, wanted: JobFilter) -> Preview:
    """The jobs ``wanted`` selects for ``action`` now (a read: nothing is written)."""
    if wanted.status not in ELIGIBLE[action]:
        raise InvalidRequest(
            f"invalid status: a bulk {action} takes status "
            + " or ".join(ELIGIBLE[action])
            + f", not {wanted.status!r}",
            field="status",
        )
    jobs, position = bulk_candidates(ledger.engine, wanted, MAX_JOBS + 1)
    if len(jobs) > MAX_JOBS:
        raise InvalidRequest(
            f"the filter selects more than {MAX_JOBS:,} jobs: narrow it (by time, user, "
            "place, reason) and run several bulk actions"
        )
    return Preview(action, wanted, jobs, _token(action, wanted, jobs), position)


def _token(action: BulkAction, wanted: JobFilter, jobs: list[Candidate]) -> str:
    material = orjson.dumps(
        [action.value, wanted.as_data(), [[job.job_id, job.version] for job in jobs]],
        option=orjson.OPT_SORT_KEYS,
    )
    return hashlib.sha256(material).hexdigest()[:32]


def execute(
    ledger: Ledger, action: BulkAction, wanted: JobFilter, token: str, *, actor: str, reason: str
) -> BulkResult:
    """Run the previewed bulk action confirmed by ``token`` (see the module docstring)."""
    recorded = ledger.operating.find_bulk(token)
    if recorded is None:
        now = preview(ledger, action, wanted)
        if now.token != token:
            raise BulkChanged(len(now.jobs), now.token)
        request = {
            **now.as_api(),
            "jobs": [[job.job_id, job.version] for job in now.jobs],
        }
        recorded = ledger.operating.record_bulk(request, actor=actor, reason=reason)
    return _run(ledger, recorded, actor=actor, reason=reason)


def _run(ledger: Ledger, recorded: StoredEvent, *, actor: str, reason: str) -> BulkResult:
    bulk = recorded.data["bulk"]
    token = str(bulk["token"])
    action = BulkAction(bulk["action"])
    marked = f"bulk {token[:12]}: {reason}"
    command = _command(ledger, action, actor, marked)
    jobs: list[list[Any]] = bulk["jobs"]
    result = BulkResult(token, len(jobs))
    for start in range(0, len(jobs), BATCH):
        chunk = jobs[start : start + BATCH]
        latest = ledger.store.latest_events([str(job_id) for job_id, _ in chunk])
        for job_id, version in chunk:
            last = latest[str(job_id)]
            if last.version != int(version):
                if str(last.data.get("reason", "")).startswith(f"bulk {token[:12]}: "):
                    result.done_before += 1
                else:
                    result.skipped.append({"jobId": str(job_id), "why": "changed since preview"})
                continue
            try:
                command(str(job_id))
            except LedgerError as error:
                result.skipped.append({"jobId": str(job_id), "why": error.message})
                continue
            result.done += 1
    return result


def _command(ledger: Ledger, action: BulkAction, actor: str, reason: str) -> Callable[[str], Any]:
    if action is BulkAction.CANCEL:
        return lambda job_id: ledger.cancel(job_id, actor=actor, reason=reason)
    return lambda job_id: ledger.requeue_from_dlq(job_id, actor=actor, reason=reason)
