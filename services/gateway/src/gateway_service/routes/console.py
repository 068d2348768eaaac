"""The browser console: GET / (the page) and /static/* (its script and styles), no build step.

The page talks only to /bff/* (routes/bff.py) and never sees a token. Every answer here carries a
strict Content-Security-Policy (no inline script, nothing from other origins, no framing), so even
an injected script tag would not run and the page cannot be clickjacked.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"

SECURITY_HEADERS = {
    # CSP Level 3: only our own script, styles and fetches; frame-ancestors replaces
    # X-Frame-Options (clickjacking); base-uri and form-action close the usual injection detours.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}

router = APIRouter(tags=["console"])


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    # no-cache: always revalidate, so a new version of the page is picked up at once.
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html", headers=headers)


class SecureStaticFiles(StaticFiles):
    """StaticFiles with the same security headers on every file."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, *a: Any
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, *a)
        response.headers.update(SECURITY_HEADERS)
        response.headers["Cache-Control"] = "no-cache"
        return response


def mount_static(app: FastAPI) -> None:
    app.mount("/static", SecureStaticFiles(directory=STATIC_DIR), name="static")
