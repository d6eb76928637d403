"""The operator's queue commands: pause, resume, the rate limit, bulk records (events of
the operator stream).

Each reads the operator stream's last event (``ledger.control``), appends the
change at the version it read (a racing operator gets ``ConcurrencyError`` and
the command reads again), then reflects the controls in Redis. A command that
would change nothing (pausing a paused queue) appends nothing and says so.
After the commit nothing fails the call: a Redis that could not be told is
told by the relay's sweep, which re-derives the controls whenever the operator
stream moves, and by ``recover`` after a flush.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledger.control import (
    Controls,
    bulk_event,
    controls_after,
    limits_event,
    pause_event,
    resume_event,
)
from ledger.errors import ConcurrencyError, DatabaseUnavailable, QueueUnavailable
from ledger.events import OPERATOR_STREAM, EventType, NewEvent, StoredEvent
from ledger.ports import EventLog
from ledger.relay import Relay

log = logging.getLogger("ledger.service")

#: tries of a command whose append lost a race (each reads the stream again)
_TRIES = 3

#: builds the event of a command from the controls it read (``None``: nothing to do)
Change = Callable[[Controls], NewEvent | None]


@dataclass(frozen=True, slots=True)
class Controlled:
    """What a command left: the controls after it, and whether it appended."""

    controls: Controls
    appended: bool

    def as_api(self) -> dict[str, Any]:
        return {**self.controls.as_api(), "appended": self.appended}


@dataclass
class Operating:
    """Pause and resume (see the module docstring)."""

    store: EventLog
    relay: Relay

    def controls(self) -> Controls:
        """The controls as the log's operator stream says now."""
        return controls_after(self.store.latest_events([OPERATOR_STREAM]).get(OPERATOR_STREAM))

    def pause(self, *, actor: str, reason: str) -> Controlled:
        """Stop workers claiming (jobs already claimed finish; enqueues go on)."""
        return self._change(lambda now: pause_event(now, actor=actor, reason=reason))

    def resume(self, *, actor: str, reason: str) -> Controlled:
        """Let workers claim again."""
        return self._change(lambda now: resume_event(now, actor=actor, reason=reason))

    def set_limits(self, *, rate: int, actor: str, reason: str) -> Controlled:
        """Set the provider rate limit: at most ``rate`` attempts started per second in
        this queue (0: no limit), enforced by the claim script."""
        return self._change(lambda now: limits_event(now, rate=rate, actor=actor, reason=reason))

    def find_bulk(self, token: str) -> StoredEvent | None:
        """The ``bulk_requested`` event of a confirmation token, if one was recorded."""
        for event in self.store.read_stream(OPERATOR_STREAM):
            if event.type is EventType.BULK_REQUESTED and event.data["bulk"]["token"] == token:
                return event
        return None

    def record_bulk(self, request: dict[str, Any], *, actor: str, reason: str) -> StoredEvent:
        """Append ``bulk_requested`` with ``request`` (its ``token`` names it); the one
        already recorded under the same token when there is one (a retry)."""
        for _ in range(_TRIES - 1):
            try:
                return self._record_bulk(request, actor=actor, reason=reason)
            except ConcurrencyError:
                continue  # another operator event came first: look again
        return self._record_bulk(request, actor=actor, reason=reason)

    def _record_bulk(self, request: dict[str, Any], *, actor: str, reason: str) -> StoredEvent:
        found = self.find_bulk(str(request["token"]))
        if found is not None:
            return found
        current = self.controls()
        event = bulk_event(current, request, actor=actor, reason=reason)
        return self.store.append(OPERATOR_STREAM, current.version, [event])[-1]

    def _change(self, change: Change) -> Controlled:
        for _ in range(_TRIES - 1):
            try:
                return self._try(change)
            except ConcurrencyError:
                continue  # another operator's change came first: read it and decide again
        return self._try(change)

    def _try(self, change: Change) -> Controlled:
        current = self.controls()
        event = change(current)
        if event is None:
            return Controlled(current, appended=False)
        stored = self.store.append(OPERATOR_STREAM, current.version, [event])
        after = controls_after(stored[-1])
        self._reflect_quietly(after)
        return Controlled(after, appended=True)

    def _reflect_quietly(self, controls: Controls) -> None:
        try:
            self.relay.reflect_controls(controls)
        except (QueueUnavailable, DatabaseUnavailable) as error:
            log.warning("controls recorded but Redis not told (%s); the sweep will", error)


class OperatorCommands:
    """``Ledger``'s queue controls, each delegated to its ``Operating``."""

    operating: Operating

    def controls(self) -> Controls:
        """The queue's controls (paused or not, since when, by whom, why) from the log."""
        return self.operating.controls()

    def pause(self, *, actor: str, reason: str) -> Controlled:
        """Pause the queue: workers stop claiming; running jobs finish; enqueues go on."""
        return self.operating.pause(actor=actor, reason=reason)

    def resume(self, *, actor: str, reason: str) -> Controlled:
        """Resume a paused queue."""
        return self.operating.resume(actor=actor, reason=reason)

    def set_limits(self, *, rate: int, actor: str, reason: str) -> Controlled:
        """Limit the attempts started per second in this queue (0: no limit)."""
        return self.operating.set_limits(rate=rate, actor=actor, reason=reason)
