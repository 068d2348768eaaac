"""/docs (Swagger UI) and /redoc with every file they need served by the service itself.

FastAPI's own pages load Swagger UI and ReDoc from a CDN: offline, /docs is a blank page. Here the
files come from the fastapi-offline package (a locked dependency, so every install and image has
the same version) and are served under /docs/assets; the pages are FastAPI's, pointed at them.

Each page carries a strict Content-Security-Policy: scripts and styles from this origin only, plus
the page's own inline ``<script>``/``<style>`` blocks by hash (CSP Level 3, 'sha256-...'), never
'unsafe-inline' for scripts. The one other origin the page may talk to is the token endpoint the
Authorize button posts to (auth, through the gateway).
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_URL = "/docs/assets"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
_INLINE = re.compile(r"<(script|style)>(.*?)</\1>", re.DOTALL)


def install_docs(app: FastAPI, token_url: str) -> None:
    """Serve /docs, /docs/oauth2-redirect, /redoc and their assets (the app was built with
    ``docs_url=None, redoc_url=None``, so FastAPI's CDN pages do not exist)."""
    _point_login_at(app, token_url)
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    token_origin = _origin(token_url)
    favicon = f"{ASSETS_URL}/favicon.png"
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=favicon,
        oauth2_redirect_url=OAUTH2_REDIRECT_URL,
        init_oauth=app.swagger_ui_init_oauth,
    )
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=favicon,
        with_google_fonts=False,
    )
    # ReDoc styles itself with <style> elements it creates at run time (styled-components), and
    # searches in a worker started from a blob: URL; nothing else is allowed beyond Swagger's.
    pages = {
        "/docs": (swagger, {}),
        OAUTH2_REDIRECT_URL: (get_swagger_ui_oauth2_redirect_html(), {}),
        "/redoc": (redoc, {"style-src": "'self' 'unsafe-inline'", "worker-src": "blob:"}),
    }
    for path, (page, relaxed) in pages.items():
        headers = {**SECURITY_HEADERS, "Content-Security-Policy": csp(page, token_origin, relaxed)}
        app.add_api_route(path, _static_page(page.body, headers), include_in_schema=False)


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def csp(page: HTMLResponse, token_origin: str, relaxed: dict[str, str]) -> str:
    """CSP Level 3 for one page: its own inline blocks by hash, nothing from other origins but
    the token endpoint, no framing (frame-ancestors, clickjacking), no plugins, no <base>."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for tag, content in _INLINE.findall(bytes(page.body).decode()):
        digest = base64.b64encode(hashlib.sha256(content.encode()).digest()).decode()
        hashes[tag].append(f"'sha256-{digest}'")
    connect = "'self'" if token_origin == "" else f"'self' {token_origin}"
    directives = {
        "default-src": "'self'",
        "script-src": " ".join(["'self'", *hashes["script"]]),
        "style-src": " ".join(["'self'", *hashes["style"]]),
        "img-src": "'self' data:",
        "connect-src": connect,
        "object-src": "'none'",
        "base-uri": "'none'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
        **relaxed,
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def _static_page(body: bytes | memoryview, headers: dict[str, str]) -> Any:
    content = bytes(body)

    async def page() -> HTMLResponse:
        return HTMLResponse(content, headers=headers)

    return page


def _point_login_at(app: FastAPI, token_url: str) -> None:
    """The Authorize button must sign in where tokens are issued: auth, via the gateway."""
    original = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        schemes = schema.get("components", {}).get("securitySchemes", {})
        for scheme in schemes.values():
            password = scheme.get("flows", {}).get("password")
            if password is not None:
                password["tokenUrl"] = token_url
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
