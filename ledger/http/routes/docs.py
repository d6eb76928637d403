"""``GET /docs``: Swagger UI served from the package, so the docs work offline.

The assets come from the pinned ``swagger-ui-py`` distribution (its ``static``
folder, found without importing the package) and our own initialiser; nothing is
fetched from a CDN, and the page runs under a CSP that allows this server only.
"""

from __future__ import annotations

import importlib.util
from html import escape
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import FileResponse, HTMLResponse

router = APIRouter(include_in_schema=False)

_OWN = Path(__file__).resolve().parent.parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def _vendor_folder() -> Path:
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("swagger-ui-py is not installed; reinstall the ledger's dependencies")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


#: the only files served under /docs/assets/: name → (folder, media type)
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (_vendor_folder(), "text/javascript"),
    "swagger-ui.css": (_vendor_folder(), "text/css"),
    "favicon-32x32.png": (_vendor_folder(), "image/png"),
    "swagger-init.js": (_OWN, "text/javascript"),
}


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui(request: Request) -> HTMLResponse:
    root = escape(request.scope.get("root_path", ""), quote=True)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Settlement ledger API</title>
<link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
<link rel="icon" type="image/png" href="{root}/docs/assets/favicon-32x32.png"></head>
<body><div id="swagger-ui" data-openapi="{root}/openapi.json"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script src="{root}/docs/assets/swagger-init.js"></script></body></html>
"""
    return HTMLResponse(page, headers={"Content-Security-Policy": CSP})


@router.get("/docs/assets/{name}")
def swagger_asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such asset")
    folder, media_type = ASSETS[name]
    return FileResponse(folder / name, media_type=media_type)
