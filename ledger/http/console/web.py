"""What every console page needs: templates, the session, forms and their CSRF check.

Pages are Jinja2 templates from the package (``templates/``), autoescaped; the
browser gets them whole (no build step, nothing from another site). A page
without a session redirects to the sign-in; an action without a valid CSRF
token, or from a role that may not act, is refused with 403 and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request, status
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from ledger.events import format_time
from ledger.http.console.session import COOKIE, CSRF_FIELD, Session, Sessions
from ledger.http.deps import WiringDep
from ledger.money import format_amount

#: the most bytes a console form may send
MAX_FORM_BYTES = 16_384

templates = Environment(
    loader=PackageLoader("ledger.http.console", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters["money"] = lambda amount, currency: format_amount(int(amount), str(currency))
templates.filters["time"] = lambda moment: "" if moment is None else format_time(moment)


def sessions(wired: WiringDep) -> Sessions:
    """The application's session signer (its key comes from the configured tokens)."""
    return wired.sessions


SessionsDep = Annotated[Sessions, Depends(sessions)]


class SignInFirst(Exception):
    """No session: the page redirects to the sign-in."""


def current(request: Request, signer: SessionsDep) -> Session:
    """The signed-in user of a page, or ``SignInFirst``."""
    found = signer.session(request.cookies.get(COOKIE))
    if found is None:
        raise SignInFirst
    return found


SessionDep = Annotated[Session, Depends(current)]


@dataclass(frozen=True, slots=True)
class Form:
    """A posted form's fields (first value of each)."""

    fields: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.fields.get(name, default).strip()


async def read_form(request: Request) -> Form:
    """The urlencoded body of a console form (bounded)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, "the form is too large")
    parsed = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return Form({name: values[0] for name, values in parsed.items() if values})


async def action_form(request: Request, session: SessionDep, signer: SessionsDep) -> Form:
    """The form of an action: CSRF checked, operators only (403 otherwise)."""
    form = await read_form(request)
    if not signer.csrf_ok(session, form.fields.get(CSRF_FIELD)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or wrong CSRF token")
    if not session.may_act:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"the {session.role} role may not do this")
    return form


ActionForm = Annotated[Form, Depends(action_form)]


def page(name: str, session: Session | None, signer: Sessions, **values: Any) -> HTMLResponse:
    """A rendered template with the session, its CSRF token and whether it may act."""
    html = templates.get_template(name).render(
        session=session,
        csrf=None if session is None else signer.csrf(session),
        may_act=session is not None and session.may_act,
        **values,
    )
    return HTMLResponse(html)
