"""The console's bulk actions: preview a bulk cancel or requeue of the listed jobs, then
confirm it with the preview's token (``ledger.compose.bulk``: the set run is the set
previewed, or nothing is done)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, status
from fastapi.responses import HTMLResponse, RedirectResponse

from ledger.compose.bulk import BulkAction, execute, preview
from ledger.errors import LedgerError
from ledger.http.console.filters import FILTER_FIELDS, job_filter
from ledger.http.console.web import ActionForm, Form, SessionDep, SessionsDep, page
from ledger.http.deps import LedgerDep
from ledger.request import MAX_REASON_LENGTH
from ledger.text import check_text
from projections.listing import JobFilter

router = APIRouter(include_in_schema=False)


def _filter(form: Form) -> JobFilter:
    return job_filter({name: form.get(name) for name in FILTER_FIELDS})


def _listing(form: Form, message: str) -> RedirectResponse:
    query = {name: form.get(name) for name in FILTER_FIELDS if form.get(name)}
    query["done"] = message
    return RedirectResponse(f"/jobs?{urlencode(query)}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/bulk/preview", response_model=None)
def bulk_preview(
    form: ActionForm, ledger: LedgerDep, session: SessionDep, signer: SessionsDep
) -> HTMLResponse | RedirectResponse:
    """How many jobs, how much per currency, and the confirmation form."""
    try:
        action = BulkAction(form.get("action"))
        shown = preview(ledger, action, _filter(form))
    except (ValueError, LedgerError) as error:
        return _listing(form, f"refused: {getattr(error, 'message', error)}")
    carried = {name: form.get(name) for name in FILTER_FIELDS}
    return page("bulk.html", session, signer, shown=shown.as_api(), carried=carried)


@router.post("/bulk")
def bulk_run(form: ActionForm, ledger: LedgerDep, session: SessionDep) -> RedirectResponse:
    """Run the previewed bulk action its token confirms."""
    try:
        action = BulkAction(form.get("action"))
        why = form.get("why")
        check_text(why, "reason", max_length=MAX_REASON_LENGTH, edges=True)
        result = execute(
            ledger,
            action,
            _filter(form),
            form.get("token"),
            actor=f"console:{session.role.value}",
            reason=why,
        )
    except (ValueError, LedgerError) as error:
        return _listing(form, f"refused: {getattr(error, 'message', error)}")
    skipped = f", {len(result.skipped)} left alone" if result.skipped else ""
    return _listing(form, f"bulk {action}: {result.done} jobs{skipped}")
