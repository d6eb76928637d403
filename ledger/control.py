"""The queue's controls: the operator stream, and what its last event says.

Pure: no IO. Pause, resume and bulk actions are operator events of the queue, not of one job:
they go to a stream of their own, ``OPERATOR_STREAM``, in the same events table
(one hash chain, one ``verify``, in exports and as-of reads), and the job folds
leave them out (``ledger.events.is_operator_event``). Each operator event carries
the controls as they stand after it (``data["controls"]``), so the stream's last
event is the state: a worker's sweep learns it from one probe of the log, never
a fold of the stream. Redis holds a copy for the claim script (``control.lua``),
which the relay re-derives from the log after a flush.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledger.errors import InvalidRequest
from ledger.events import EventType, NewEvent, StoredEvent, as_time, format_time, is_operator_event


@dataclass(frozen=True, slots=True)
class Controls:
    """The queue's controls after the operator stream's event ``version`` (0: none yet)."""

    paused: bool = False
    version: int = 0
    #: the provider rate limit: most attempts started per second in this queue (0: none)
    rate: int = 0
    #: the last pause or resume: when, by whom, why
    changed_at: datetime | None = None
    actor: str | None = None
    reason: str | None = None

    def as_data(self) -> dict[str, Any]:
        """What an operator event that changes no control records as the controls (a
        bulk action carries them on: the stream's last event always says the state)."""
        return {
            "paused": self.paused,
            "rate": self.rate,
            "since": None if self.changed_at is None else format_time(self.changed_at),
            "actor": self.actor,
            "reason": self.reason,
        }

    def as_api(self) -> dict[str, Any]:
        """The controls as the API, the CLI and the dashboard show them."""
        return {
            "paused": self.paused,
            "attemptsPerSecond": self.rate or None,
            "version": self.version,
            "changedAt": None if self.changed_at is None else format_time(self.changed_at),
            "actor": self.actor,
            "reason": self.reason,
        }


NO_CONTROLS = Controls()
#: the operator events that change the controls (the others carry them on)
_CHANGES = frozenset({EventType.PAUSED, EventType.RESUMED})


def controls_after(event: StoredEvent | None) -> Controls:
    """The controls the operator stream's last event records (none: the defaults)."""
    if event is None:
        return NO_CONTROLS
    if not is_operator_event(event.type):
        raise ValueError(f"event {event.position} ({event.type}) is not an operator event")
    recorded: Mapping[str, Any] = event.data.get("controls", {})
    paused = bool(recorded.get("paused", False))
    rate = int(recorded.get("rate", 0))
    if event.type in _CHANGES:
        return Controls(
            paused,
            event.version,
            rate,
            event.occurred_at,
            event.actor,
            _text(event.data.get("reason")),
        )
    # an event that did not pause or resume carries the last of those on
    return Controls(
        paused,
        event.version,
        rate,
        as_time(recorded.get("since")),
        _text(recorded.get("actor")),
        _text(recorded.get("reason")),
    )


def pause_event(current: Controls, *, actor: str, reason: str) -> NewEvent | None:
    """``paused``, or ``None`` when the queue is paused already (nothing to record)."""
    if current.paused:
        return None
    after = Controls(paused=True, rate=current.rate)
    return NewEvent(EventType.PAUSED, _data(after, reason), actor=actor)


def resume_event(current: Controls, *, actor: str, reason: str) -> NewEvent | None:
    """``resumed``, or ``None`` when the queue is not paused (nothing to record)."""
    if not current.paused:
        return None
    after = Controls(paused=False, rate=current.rate)
    return NewEvent(EventType.RESUMED, _data(after, reason), actor=actor)


def bulk_event(
    current: Controls, request: Mapping[str, Any], *, actor: str, reason: str
) -> NewEvent:
    """``bulk_requested``: an operator's bulk action and its previewed set of jobs
    (``ledger.compose.bulk``), recorded before any of them is touched."""
    data = {"reason": reason, "controls": current.as_data(), "bulk": dict(request)}
    return NewEvent(EventType.BULK_REQUESTED, data, actor=actor)


def limits_event(current: Controls, *, rate: int, actor: str, reason: str) -> NewEvent | None:
    """``limits_set`` with the queue's new provider rate limit (attempts per second, 0 for
    none), or ``None`` when it is already so."""
    if rate < 0:
        raise InvalidRequest(f"invalid rate: {rate} (attempts per second, 0 for no limit)")
    if rate == current.rate:
        return None
    controls = {**current.as_data(), "rate": rate}
    return NewEvent(EventType.LIMITS_SET, {"reason": reason, "controls": controls}, actor=actor)


def _data(after: Controls, reason: str) -> dict[str, Any]:
    return {"reason": reason, "controls": {"paused": after.paused, "rate": after.rate}}


def _text(value: object) -> str | None:
    return None if value is None else str(value)
