"""The payload cache's format: a job's folded state (``lifecycle.Job``) as JSON.

The cache is written only after the log committed the state it describes, so an
entry can be behind the log but never ahead of it. A stale entry costs nothing
but a refused append (its version is old), after which the job is re-read from
the log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from datetime import datetime

import orjson

from ledger.lifecycle import Job, JobStatus

_TIMES = frozenset(
    {"created_at", "updated_at", "due_at", "lease_until", "dead_lettered_at", "completed_at"}
)
_NAMES = tuple(f.name for f in fields(Job))
_FIELDS = frozenset(_NAMES)


def encode_job(job: Job) -> str:
    """The job as compact JSON text (times as ISO 8601 UTC)."""
    # orjson writes the slotted dataclass, its enum and its datetimes natively:
    # field-by-field Python here was most of an enqueue's push
    return orjson.dumps(job, default=_plain, option=_OPTIONS).decode()


_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z


def _plain(value: object) -> object:
    """A request held as another ``Mapping`` type is written as a plain object."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def decode_job(text: str | bytes) -> Job | None:
    """The job back from ``encode_job``; ``None`` for an entry this version cannot read."""
    try:
        record = orjson.loads(text)
        if not isinstance(record, dict) or set(record) != _FIELDS:
            return None
        for name in _TIMES:
            if record[name] is not None:
                record[name] = datetime.fromisoformat(record[name].replace("Z", "+00:00"))
        record["status"] = JobStatus(record["status"])
        return Job(**record)
    except (orjson.JSONDecodeError, ValueError, TypeError, AttributeError):
        return None
