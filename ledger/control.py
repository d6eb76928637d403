"""The queue's controls: the operator stream, and what its last event says.

Pure: no IO. Pause and resume are operator events of the queue, not of one job:
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

from ledger.events import EventType, NewEvent, StoredEvent, format_time, is_operator_event


@dataclass(frozen=True, slots=True)
class Controls:
    """The queue's controls after the operator stream's event ``version`` (0: none yet)."""

    paused: bool = False
    version: int = 0
    #: the last operator event: when, by whom, why
    changed_at: datetime | None = None
    actor: str | None = None
    reason: str | None = None

    def as_data(self) -> dict[str, Any]:
        """What an operator event records as the controls after it."""
        return {"paused": self.paused}

    def as_api(self) -> dict[str, Any]:
        """The controls as the API, the CLI and the dashboard show them."""
        return {
            "paused": self.paused,
            "version": self.version,
            "changedAt": None if self.changed_at is None else format_time(self.changed_at),
            "actor": self.actor,
            "reason": self.reason,
        }


NO_CONTROLS = Controls()


def controls_after(event: StoredEvent | None) -> Controls:
    """The controls the operator stream's last event records (none: the defaults)."""
    if event is None:
        return NO_CONTROLS
    if not is_operator_event(event.type):
        raise ValueError(f"event {event.position} ({event.type}) is not an operator event")
    recorded: Mapping[str, Any] = event.data.get("controls", {})
    return Controls(
        paused=bool(recorded.get("paused", False)),
        version=event.version,
        changed_at=event.occurred_at,
        actor=event.actor,
        reason=_text(event.data.get("reason")),
    )


def pause_event(current: Controls, *, actor: str, reason: str) -> NewEvent | None:
    """``paused``, or ``None`` when the queue is paused already (nothing to record)."""
    if current.paused:
        return None
    after = Controls(paused=True)
    return NewEvent(EventType.PAUSED, _data(after, reason), actor=actor)


def resume_event(current: Controls, *, actor: str, reason: str) -> NewEvent | None:
    """``resumed``, or ``None`` when the queue is not paused (nothing to record)."""
    if not current.paused:
        return None
    after = Controls(paused=False)
    return NewEvent(EventType.RESUMED, _data(after, reason), actor=actor)


def _data(after: Controls, reason: str) -> dict[str, Any]:
    return {"reason": reason, "controls": after.as_data()}


def _text(value: object) -> str | None:
    return None if value is None else str(value)
