"""Every Redis key name of the ledger, in one place.

All keys of one queue share the hash tag ``{<queue>}`` (``ledger:{settlements}:ready``),
so every multi-key Lua script touches a single Redis Cluster slot.

* ``ready``    sorted set, member job id, score = ms (Redis clock) since the job became
  claimable. A sorted set rather than a list: pushes must be idempotent (the repair
  path re-pushes) and membership/removal must be O(log n); popping the lowest score
  keeps FIFO order. The oldest score is the oldest waiting job's age.
* ``delayed``  sorted set, score = due time in ms (from the log's ``due_at``).
* ``inflight`` sorted set, score = lease deadline in ms (Redis ``TIME`` + lease).
* ``notify``   list of wake-up tokens: blocked claimers ``BLPOP`` it (no busy polling).
* ``epoch``    a sentinel written by ``recover``; its absence means Redis was flushed.
* ``control``  hash ``{version, paused, rate}``: the queue's controls as the log's operator
  stream says (``ledger.control``), read by ``claim.lua``; re-derived by ``recover``.
* ``bucket``   hash ``{tokens, at}``: the provider rate limit's token bucket (``claim.lua``).
* ``job:<id>`` the payload cache: the job's folded state as JSON, with a TTL, so a
  worker can start a job without reading SQL.
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "ledger"


@dataclass(frozen=True, slots=True)
class QueueKeys:
    """The key names of one queue."""

    queue: str

    def __post_init__(self) -> None:
        if not self.queue or any(c in self.queue for c in "{}: \t\n"):
            raise ValueError(f"queue name {self.queue!r} must be non-empty without {{}}: or spaces")

    @property
    def tag(self) -> str:
        return f"{PREFIX}:{{{self.queue}}}"

    @property
    def ready(self) -> str:
        return f"{self.tag}:ready"

    @property
    def delayed(self) -> str:
        return f"{self.tag}:delayed"

    @property
    def inflight(self) -> str:
        return f"{self.tag}:inflight"

    @property
    def notify(self) -> str:
        return f"{self.tag}:notify"

    @property
    def epoch(self) -> str:
        return f"{self.tag}:epoch"

    @property
    def control(self) -> str:
        return f"{self.tag}:control"

    @property
    def bucket(self) -> str:
        return f"{self.tag}:bucket"

    @property
    def payload_pattern(self) -> str:
        """``SCAN MATCH`` pattern of the payload cache (never used with ``KEYS``)."""
        return f"{self.tag}:job:*"

    def payload(self, job_id: str) -> str:
        return f"{self.tag}:job:{job_id}"

    def job_id_of(self, payload_key: str) -> str:
        return payload_key.removeprefix(f"{self.tag}:job:")
