"""Every place that must handle every ``EventType`` and ``JobStatus`` does.

``mypy --strict`` names each ``match`` a new member is missing from (they end in
``assert_never``); these tests make the same places fail at run time too, check
that the tables generated from the enums cover every member, and that no
``match`` over the two enums in ``ledger/`` or ``projections/`` lacks its
``assert_never`` (a silent fall-through is what they exist to prevent).
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.decisions import Place, place_of, placement, placement_after
from ledger.errors import IllegalTransition
from ledger.events import JOB_EVENTS, OPERATOR_EVENTS, EventType, is_operator_event
from ledger.lifecycle import (
    STATUS_AFTER_EVENT,
    TERMINAL,
    TRANSITIONS,
    JobStatus,
    Progress,
    advance,
    fold,
    is_terminal,
    step_of,
)
from ledger.relay import _WAITING
from ledger.schema import TYPE_KNOWN
from ledger.worker_options import counter_of
from projections.fold import EFFECTS, Effect, effect_of
from projections.stats import BUCKETS, STATUS_BUCKET, bucket_of, empty_buckets
from tests.factories import stored

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


JOB_EVENT_TYPES = [event for event in EventType if not is_operator_event(event)]
OPERATOR_EVENT_TYPES = [event for event in EventType if is_operator_event(event)]


@pytest.mark.parametrize("event_type", JOB_EVENT_TYPES)
def test_every_job_event_type_is_in_the_transition_table(event_type: EventType) -> None:
    assert any(event is event_type for _, event in TRANSITIONS)
    assert event_type in STATUS_AFTER_EVENT


@pytest.mark.parametrize("event_type", OPERATOR_EVENT_TYPES)
def test_operator_events_move_no_job_and_no_read_model(event_type: EventType) -> None:
    assert not any(event is event_type for _, event in TRANSITIONS)
    assert effect_of(event_type) is Effect.NONE
    assert event_type.value in OPERATOR_EVENTS and event_type.value not in JOB_EVENTS
    assert f"'{event_type.value}'" in TYPE_KNOWN
    state = Progress("job-1", JobStatus.WAITING.value, 1, T0)
    with pytest.raises(IllegalTransition):
        advance(state, event_type.value, 2, T0, "someone", {})


@pytest.mark.parametrize("status", list(JobStatus))
def test_every_status_is_reached_by_the_transition_table(status: JobStatus) -> None:
    assert status in TRANSITIONS.values()


@pytest.mark.parametrize("event_type", JOB_EVENT_TYPES)
def test_every_event_type_has_its_step_effect_and_check(event_type: EventType) -> None:
    assert callable(step_of(event_type))
    assert EFFECTS[event_type.value] is effect_of(event_type)
    assert f"'{event_type.value}'" in TYPE_KNOWN
    after = STATUS_AFTER_EVENT[event_type]
    assert (event_type in _WAITING) == (place_of(after) is Place.WAITING)


def test_the_type_check_names_exactly_the_event_types() -> None:
    assert set(re.findall(r"'([a-z_]+)'", TYPE_KNOWN)) == {event.value for event in EventType}


@pytest.mark.parametrize("status", list(JobStatus))
def test_every_status_has_its_place_bucket_and_counter(status: JobStatus) -> None:
    assert isinstance(place_of(status), Place)
    assert (status in TERMINAL) == is_terminal(status)
    if is_terminal(status):
        assert place_of(status) is Place.GONE
    assert STATUS_BUCKET[status.value] == bucket_of(status)
    assert bucket_of(status) in BUCKETS
    assert bucket_of(status) in empty_buckets()
    assert counter_of(status) in {"completed", "submitted", "dead_lettered", "retried"}


def test_the_buckets_are_the_statuses_and_delayed() -> None:
    assert set(BUCKETS) == {bucket_of(status) for status in JobStatus} | {"delayed"}
    assert len(BUCKETS) == len(set(BUCKETS))


@pytest.mark.parametrize(("before", "event_type"), [k for k in TRANSITIONS if k[0] is not None])
def test_every_transition_advances_a_job(before: JobStatus, event_type: EventType) -> None:
    state = Progress("job-1", before.value, 3, T0)
    advance(state, event_type.value, 4, T0, "someone", {})
    assert state.status == TRANSITIONS[(before, event_type)].value
    assert state.version == 4


@pytest.mark.parametrize(("before", "event_type"), [k for k in TRANSITIONS if k[0] is not None])
def test_every_transition_has_a_place_in_redis(before: JobStatus, event_type: EventType) -> None:
    path = _path_to(before)
    job = fold(stored(kind, version=i + 1) for i, kind in enumerate([*path, event_type]))
    assert job is not None
    place, _ = placement(job)
    assert place is place_of(job.status)
    last = stored(event_type, version=len(path) + 1)
    assert placement_after(last)[0] is place


def _path_to(status: JobStatus) -> list[EventType]:
    """The shortest run of events from nothing to ``status`` (breadth first over the table)."""
    paths: dict[JobStatus | None, list[EventType]] = {None: []}
    frontier: list[JobStatus | None] = [None]
    while frontier:
        nxt: list[JobStatus | None] = []
        for current in frontier:
            for (before, event), after in TRANSITIONS.items():
                if before == current and after not in paths:
                    paths[after] = [*paths[current], event]
                    nxt.append(after)
        frontier = nxt
    return paths[status]


def _matches_over_the_enums(path: Path) -> list[tuple[int, ast.Match]]:
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Match):
            names = {
                value.value.id
                for case in node.cases
                for value in ast.walk(case.pattern)
                if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
            }
            if names & {"EventType", "JobStatus"}:
                found.append((node.lineno, node))
    return found


def _ends_in_assert_never(match: ast.Match) -> bool:
    last = match.cases[-1]
    if not (isinstance(last.pattern, ast.MatchAs) and last.pattern.pattern is None):
        return False
    call = last.body[-1]
    return (
        isinstance(call, ast.Expr)
        and isinstance(call.value, ast.Call)
        and isinstance(call.value.func, ast.Name)
        and call.value.func.id == "assert_never"
    )


SOURCES = sorted(
    [*ROOT.joinpath("ledger").rglob("*.py"), *ROOT.joinpath("projections").rglob("*.py")]
)


def test_every_match_over_the_enums_ends_in_assert_never() -> None:
    matches = [
        (path.relative_to(ROOT), line, match)
        for path in SOURCES
        for line, match in _matches_over_the_enums(path)
    ]
    assert len(matches) >= 6  # lifecycle, decisions, stats, fold, worker: the places that decide
    silent = [f"{path}:{line}" for path, line, match in matches if not _ends_in_assert_never(match)]
    assert silent == []


def test_effects_cover_settling_once() -> None:
    # the settled totals count one event type: the one that completes a job
    settling = [kind for kind, effect in EFFECTS.items() if effect is Effect.SETTLES]
    assert [STATUS_AFTER_EVENT[EventType(kind)] for kind in settling] == [JobStatus.COMPLETED]
