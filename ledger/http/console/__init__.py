"""The operator console: a dashboard in the browser at ``/`` of ``ledger serve``.

Server-rendered pages (Jinja2 templates shipped in the package, one small plain
script that refreshes the stats; nothing fetched from another site, no build
step) over the same commands and reads as the API: ``pages`` (reads), ``actions``
(forms: sign-in, pause, resume, requeue, cancel, verify), ``session`` (the API's
bearer tokens exchanged for a signed cookie; CSRF tokens), ``chart`` (SVG drawn
on the server).
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from ledger.http.console import actions, bulk, pages
from ledger.http.console.session import COOKIE
from ledger.http.console.web import SignInFirst

#: where the console's script and style sheet are served from
STATIC_PATH = "/console/static"


def install(app: FastAPI) -> None:
    """Add the console's pages, forms and files to ``app``."""
    app.include_router(pages.router)
    app.include_router(actions.router)
    app.include_router(bulk.router)
    app.mount(
        STATIC_PATH,
        StaticFiles(packages=[("ledger.http.console", "static")]),
        name="console-static",
    )

    @app.exception_handler(SignInFirst)
    async def sign_in_first(_request: Request, _error: SignInFirst) -> RedirectResponse:
        response = RedirectResponse("/sign-in", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response
