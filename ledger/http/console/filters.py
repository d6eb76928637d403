"""The job filter of the console's list and bulk forms, from its text fields."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from ledger.errors import InvalidRequest
from ledger.events import to_utc
from projections.listing import JobFilter

#: the list's filter fields (as the /jobs page names them), carried into a bulk action
FILTER_FIELDS = ("status", "user", "place", "mission", "currency", "reason", "min", "max",
                 "from", "to")  # fmt: skip


def job_filter(fields: Mapping[str, str], search: str = "") -> JobFilter:
    """A ``JobFilter`` from the form's fields (empty means any); ``InvalidRequest`` names
    a field that does not parse."""

    def text(name: str) -> str | None:
        return fields.get(name, "").strip() or None

    return JobFilter(
        status=text("status"),
        user_id=text("user"),
        place_id=text("place"),
        mission_id=text("mission"),
        currency=(text("currency") or "").upper() or None,
        reason_contains=text("reason"),
        min_amount=_amount(text("min"), "min"),
        max_amount=_amount(text("max"), "max"),
        changed_from=_moment(text("from"), "from"),
        changed_to=_moment(text("to"), "to"),
        search=search.strip() or None,
    )


def _amount(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise InvalidRequest(f"invalid {name}: {value!r} is not whole minor units", field=name)
    return int(value)


def _moment(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    try:
        return to_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        raise InvalidRequest(
            f"invalid {name}: {value!r} is not an ISO 8601 time (2026-12-07T10:00Z)", field=name
        ) from None
