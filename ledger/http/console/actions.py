"""The console's forms: sign in and out, pause, resume, requeue, cancel, verify.

Every form that changes anything needs the session's CSRF token and the
operator role (``action_form``); each action is the same command the CLI and
the API run, recorded in the log with the console user as ``console:<role>``
and the reason typed in the form. Verify is a read, open to both roles, and
still needs the CSRF token (it costs a walk of the log).
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from ledger.audit.verify import verify_log
from ledger.errors import LedgerError
from ledger.http.console.session import COOKIE, CSRF_FIELD, SESSION_SECONDS, Session
from ledger.http.console.web import ActionForm, SessionDep, SessionsDep, page, read_form
from ledger.http.deps import LedgerDep
from ledger.request import MAX_REASON_LENGTH
from ledger.text import check_text

router = APIRouter(include_in_schema=False)

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _reason(form_reason: str) -> str:
    check_text(form_reason, "reason", max_length=MAX_REASON_LENGTH, edges=True)
    return form_reason


def _act(path: str, command: Callable[[], str]) -> RedirectResponse:
    """Run an action and go back to ``path`` saying what it did, or why it was refused."""
    try:
        message = command()
    except LedgerError as error:
        message = f"refused: {error.message}"
    return _back(path, message)


def _back(path: str, message: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?done={quote(message)}", status_code=status.HTTP_303_SEE_OTHER)


@router.post("/sign-in")
async def sign_in(request: Request, signer: SessionsDep) -> RedirectResponse:
    """Exchange an operator's or auditor's API token for a session cookie."""
    form = await read_form(request)
    signed = signer.sign_in(form.get("token"))
    if signed is None:
        return RedirectResponse("/sign-in?failed=1", status_code=status.HTTP_303_SEE_OTHER)
    _session, cookie = signed
    response = RedirectResponse("/", status_code=status.HTTP_303_SEE_OTHER)
    host = request.url.hostname or ""
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=host not in LOOPBACK,
        path="/",
    )
    return response


@router.post("/sign-out")
async def sign_out(request: Request, session: SessionDep, signer: SessionsDep) -> RedirectResponse:
    form = await read_form(request)
    if not signer.csrf_ok(session, form.fields.get(CSRF_FIELD)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    response = RedirectResponse("/sign-in", status_code=status.HTTP_303_SEE_OTHER)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.post("/queue/pause")
def pause(form: ActionForm, ledger: LedgerDep, session: SessionDep) -> RedirectResponse:
    def command() -> str:
        done = ledger.pause(actor=_actor(session), reason=_reason(form.get("reason")))
        return "paused" if done.appended else "already paused"

    return _act("/", command)


@router.post("/queue/resume")
def resume(form: ActionForm, ledger: LedgerDep, session: SessionDep) -> RedirectResponse:
    def command() -> str:
        done = ledger.resume(actor=_actor(session), reason=_reason(form.get("reason")))
        return "resumed" if done.appended else "not paused"

    return _act("/", command)


@router.post("/jobs/{job_id}/requeue")
def requeue(
    job_id: str, form: ActionForm, ledger: LedgerDep, session: SessionDep
) -> RedirectResponse:
    def command() -> str:
        ledger.requeue_from_dlq(job_id, actor=_actor(session), reason=_reason(form.get("reason")))
        return f"requeued {job_id}"

    back = form.get("back")
    return _act(back if back == "/" else f"/jobs/{job_id}", command)


@router.post("/jobs/{job_id}/cancel")
def cancel(
    job_id: str, form: ActionForm, ledger: LedgerDep, session: SessionDep
) -> RedirectResponse:
    def command() -> str:
        ledger.cancel(job_id, actor=_actor(session), reason=_reason(form.get("reason")))
        return f"cancelled {job_id}"

    return _act(f"/jobs/{job_id}", command)


@router.post("/audit/verify", response_class=HTMLResponse)
async def verify(
    request: Request, ledger: LedgerDep, session: SessionDep, signer: SessionsDep
) -> HTMLResponse:
    """Walk the whole chain now and show what it found (in a thread: it reads the log)."""
    form = await read_form(request)
    if not signer.csrf_ok(session, form.fields.get(CSRF_FIELD)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    result = await run_in_threadpool(verify_log, ledger.engine)
    return page("audit.html", session, signer, head=ledger.reader.head(), result=result)


def _actor(session: Session) -> str:
    return f"console:{session.role.value}"
