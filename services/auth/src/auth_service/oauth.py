"""OAuth 2.0 endpoint plumbing: the RFC 6749 section 5.2 error answer and a form parser that
never turns bad input into a 500.

The token and revocation endpoints answer errors as ``{"error", "error_description"}`` JSON (what
OAuth clients parse), not as problem+json like the rest of relayshop. Every other auth endpoint
uses the platform's problem details.

    OAuthError(400, "invalid_request", "...")   ->  400 {"error": "invalid_request", ...}
    OAuthError(401, "invalid_client", ...)      ->  401 + WWW-Authenticate: Basic (RFC 6749 5.2)
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

# RFC 6749 section 5.1: token answers (and their errors) must not be cached anywhere.
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_FORM_BYTES = 16 * 1024  # an honest token request is a few hundred bytes
MAX_FORM_FIELDS = 20
_CONTROL_CLASS = r"\x00-\x08\x0a-\x1f\x7f"  # tab is allowed in passwords
_CONTROL_CHARACTERS = re.compile(f"[{_CONTROL_CLASS}]")
# The same rule as a JSON Schema pattern, for the forms' OpenAPI descriptions.
FORM_VALUE = f"^[^{_CONTROL_CLASS}]*$"


def form_body(schema: dict[str, Any]) -> dict[str, Any]:
    """openapi_extra for a route that reads its url-encoded form itself (``read_form``)."""
    return {"requestBody": {"required": True, "content": {FORM_CONTENT_TYPE: {"schema": schema}}}}


class OAuthError(Exception):
    def __init__(
        self,
        status: int,
        error: str,
        description: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.headers = headers or {}


def invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


def install_oauth_error_handler(app: FastAPI) -> None:
    @app.exception_handler(OAuthError)
    async def _oauth_error(request: Request, exc: OAuthError) -> JSONResponse:
        return JSONResponse(
            {"error": exc.error, "error_description": exc.description},
            status_code=exc.status,
            headers={**NO_STORE, **exc.headers},
        )


class BadForm(ValueError):
    """The body is not a small, well-formed form; the message says why (and is safe to show)."""


async def read_form(request: Request, max_bytes: int = MAX_FORM_BYTES) -> dict[str, str]:
    """The url-encoded form of an OAuth request, read with a size cap.

    RFC 6749 section 3.2: parameters sent without a value are treated as omitted, unknown ones are
    ignored, and none may appear twice (a duplicate is refused rather than silently picked).
    """
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise BadForm(f"The body must be {FORM_CONTENT_TYPE}.")
    body = await read_body(request, max_bytes)
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,  # so that a bad name is refused even without a value
            max_num_fields=MAX_FORM_FIELDS,
            errors="strict",
        )
    except ValueError:  # includes UnicodeDecodeError
        raise BadForm("The form is not valid application/x-www-form-urlencoded.") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        if _CONTROL_CHARACTERS.search(name) or _CONTROL_CHARACTERS.search(value):
            # RFC 6749 Appendix A: no parameter (not even a password) holds a control character;
            # and a NUL would reach the database, which PostgreSQL answers with an error.
            raise BadForm("The form must not contain control characters.")
        if not value:
            continue  # RFC 6749 section 3.2: a parameter sent without a value is omitted
        if name in form:
            raise BadForm(f"The parameter '{name[:40]}' appears more than once.")
        form[name] = value
    return form


def body_too_large(max_bytes: int) -> OAuthError:
    # 413 (RFC 9110 section 15.5.14) in the OAuth error shape the client is parsing anyway.
    return OAuthError(413, "invalid_request", f"The request body is larger than {max_bytes} bytes.")


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refusing (without reading it all) anything larger than ``max_bytes``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise body_too_large(max_bytes)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise body_too_large(max_bytes)
    return bytes(body)
