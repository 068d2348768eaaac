"""Every error a relayshop service raises on purpose, and the one place each becomes HTTP.

    RelayshopError                    500 problem (never raised on purpose; the catch-all)
    ├── TokenError                    401 + WWW-Authenticate: Bearer (RFC 6750 section 3)
    │   ├── MissingToken              no error= attribute, as RFC 6750 section 3.1 asks
    │   └── InvalidToken              error="invalid_token", reason kept for traces and metrics
    ├── BadRequest                    400 (a request no route should see: control characters, ...)
    ├── InsufficientScope             403 + WWW-Authenticate: Bearer error="insufficient_scope"
    ├── ContentTooLarge               413 (body over the limit)
    ├── HeaderFieldsTooLarge          431 (header section over the limit, RFC 6585 section 5)
    ├── NotFound                      404 (also what a stranger gets for someone else's object)
    ├── Conflict                      409
    ├── PaymentRequired               402
    ├── InvalidInput                  422
    └── UpstreamError                 503 (down) / 504 (too slow)
        ├── UpstreamUnavailable
        └── UpstreamTimeout

Non-OAuth errors are RFC 9457 problem details (application/problem+json), built by one function
(``problem_body``) whether FastAPI answers (``problem``) or a plain ASGI layer does
(``send_problem``, for the gateway's proxy path and the request limits). A stack trace never
leaves the process. The OpenAPI document says so too (``document_problems``): every error answer
an operation declares is a ``Problem``, not FastAPI's default ``HTTPValidationError`` JSON, so a
client generated from the schema, or a schema fuzzer, reads the real shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount
from starlette.types import Message, Send

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger(__name__)


class RelayshopError(Exception):
    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str = "", **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra

    def headers(self) -> dict[str, str]:
        return {}


class TokenError(RelayshopError):
    status = 401
    title = "Unauthorized"
    reason = "missing"

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="relayshop"'}


class MissingToken(TokenError):
    def __init__(self, detail: str = "A bearer token is required.") -> None:
        super().__init__(detail)


class InvalidToken(TokenError):
    """The token was presented but cannot be trusted; ``reason`` is a short machine word."""

    def __init__(self, reason: str, detail: str | None = None) -> None:
        super().__init__(detail or f"The access token is invalid ({reason}).")
        self.reason = reason

    def headers(self) -> dict[str, str]:
        description = self.detail.replace('"', "'")
        return {
            "WWW-Authenticate": (
                f'Bearer realm="relayshop", error="invalid_token", '
                f'error_description="{description}"'
            )
        }


class InsufficientScope(RelayshopError):
    status = 403
    title = "Forbidden"

    def __init__(
        self,
        detail: str = "Your token does not allow this.",
        reason: str = "role",
        scope: str | None = None,
    ):
        super().__init__(detail)
        self.reason = reason
        self.scope = scope  # the scope the request needs, when a missing scope is the reason

    def headers(self) -> dict[str, str]:
        description = self.detail.replace('"', "'")
        # RFC 6750 section 3.1: insufficient_scope names the scope needed, so a client can ask
        # for a token that has it.
        needed = f', scope="{self.scope}"' if self.scope else ""
        return {
            "WWW-Authenticate": (
                f'Bearer realm="relayshop", error="insufficient_scope"{needed}, '
                f'error_description="{description}"'
            )
        }


class BadRequest(RelayshopError):
    status = 400
    title = "Bad Request"


class ContentTooLarge(RelayshopError):
    status = 413
    title = "Content Too Large"


class HeaderFieldsTooLarge(RelayshopError):
    status = 431
    title = "Request Header Fields Too Large"


class NotFound(RelayshopError):
    status = 404
    title = "Not Found"


class Conflict(RelayshopError):
    status = 409
    title = "Conflict"


class PaymentRequired(RelayshopError):
    status = 402
    title = "Payment Required"


class InvalidInput(RelayshopError):
    status = 422
    title = "Unprocessable Content"


class UpstreamError(RelayshopError):
    status = 503
    title = "Service Unavailable"


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamTimeout(UpstreamError):
    status = 504
    title = "Gateway Timeout"


def problem_body(status: int, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The RFC 9457 members. Extension members (section 3.2) never override the standard ones."""
    return {**extra, "type": "about:blank", "title": title, "status": status, "detail": detail}


def problem(
    status: int,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 problem details response."""
    body = problem_body(status, title, detail, **extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


async def send_problem(send: Send, exc: RelayshopError, *, close: bool = False) -> None:
    """The same answer as the FastAPI handler gives ``exc``, written straight to ASGI (for layers
    that run without the framework). ``close`` ends the connection: the rest of an oversized
    request is not worth reading."""
    body = json.dumps(problem_body(exc.status, exc.title, exc.detail, **exc.extra)).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    headers.extend(
        (name.lower().encode("latin-1"), value.encode("latin-1", "replace"))
        for name, value in exc.headers().items()
    )
    if close:
        headers.append((b"connection", b"close"))
    start: Message = {"type": "http.response.start", "status": exc.status, "headers": headers}
    await send(start)
    await send({"type": "http.response.body", "body": body})


def _validation_detail(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Echo where and why, never the offending input itself (it may be a password).
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()[:20]
    ]


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RelayshopError)
    async def _relayshop(request: Request, exc: RelayshopError) -> JSONResponse:
        return problem(exc.status, exc.title, exc.detail, exc.headers(), **exc.extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(
            422,
            "Unprocessable Content",
            "The request is not valid.",
            errors=_validation_detail(exc),
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            # RFC 9110 section 15.5.6: a 405 MUST carry Allow with the methods the resource
            # supports. Starlette names only those of the first route that matched the path, and
            # a path served by several routes (GET and POST /api/orders) needs all of them.
            headers["Allow"] = allowed_methods(request)
        title = {
            400: "Bad Request",
            404: "Not Found",
            405: "Method Not Allowed",
            413: "Content Too Large",
            431: "Request Header Fields Too Large",
        }.get(exc.status_code, "Error")
        return problem(exc.status_code, title, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem(500, "Internal Server Error", "Something went wrong on our side.")

    document_problems(app)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(request: Request) -> str:
    """Every method a route of this app serves at the request's path, for a 405's Allow: each
    method is put to the app's own routing (routers included in routers too)."""
    allowed = set()
    # Inside a mount, root_path has grown by the mount's prefix; routing starts from the app's.
    root_path = request.scope.get("app_root_path", request.scope.get("root_path", ""))
    for method in _METHODS:
        scope = {**request.scope, "method": method, "root_path": root_path}
        for route in request.app.router.routes:
            if isinstance(route, Mount):
                if route.matches(scope)[0] != Match.NONE and method in ("GET", "HEAD"):
                    allowed.add(method)  # mounted static files (StaticFiles: GET and HEAD)
            elif route.matches(scope)[0] == Match.FULL:
                allowed.add(method)
    return ", ".join(sorted(allowed))


# The RFC 9457 members every relayshop problem has, plus ``errors`` (where a request was invalid)
# and room for extension members such as ``payment_id`` (RFC 9457 section 3.2).
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {
                        "type": "array",
                        "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    },
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "additionalProperties": True,
}
_FASTAPI_ERROR_SCHEMAS = ("HTTPValidationError", "ValidationError")


# Answers the platform itself may give to any operation, before or around its route (RFC 9110
# section 15.5: a client, or a schema fuzzer, must find every status it can get documented).
_BEARER_ANSWERS = {
    "401": "No valid bearer token: missing, expired, revoked or not for this service "
    "(RFC 6750 section 3.1, with WWW-Authenticate)",
    "403": "The token is valid but its roles or scopes do not allow this "
    '(RFC 6750 section 3.1, error="insufficient_scope")',
}
_BAD_REQUEST = "A control character in the path (limits.py), or a body that cannot be parsed"
_NOT_FOUND = {"404": "No such resource, or not yours to see (a stranger's id is a 404)"}
_BODY_ANSWER = {"413": "The body is over the size limit (RFC 9110 section 15.5.14)"}
_HEADER_ANSWER = {"431": "The header section is over the size limit (RFC 6585 section 5)"}


# limits.py refuses these in any path with 400: a path parameter's schema says so too, so that a
# value the schema calls valid is one the service accepts (a regex class, for Python and JSON).
CONTROL_CHARACTERS = "\\x00-\\x1f\\x7f"
NO_CONTROL_CHARACTERS = f"^[^{CONTROL_CHARACTERS}]*$"


def platform_answers(operation: dict[str, Any], method: str) -> dict[str, str]:
    """The statuses the platform adds to this operation's own: 401 and 403 where a token is
    checked, 400 and 404 where a path parameter is read, 400 and 413 where a body is, 431
    everywhere. On the way, string path parameters get the pattern limits.py enforces."""
    answers = dict(_HEADER_ANSWER)
    if operation.get("security"):
        answers.update(_BEARER_ANSWERS)
    path_parameters = [p for p in operation.get("parameters", []) if p.get("in") == "path"]
    for parameter in path_parameters:
        schema = parameter.get("schema", {})
        if schema.get("type") == "string":
            schema.setdefault("pattern", NO_CONTROL_CHARACTERS)
    if path_parameters:
        answers.update(_NOT_FOUND)
    has_body = "requestBody" in operation or method in ("post", "put", "patch")
    if path_parameters or has_body:
        answers["400"] = _BAD_REQUEST
    if has_body:
        answers.update(_BODY_ANSWER)
    return answers


def document_problems(app: FastAPI) -> None:
    """Make app.openapi() describe error answers as they are sent: application/problem+json.

    Each operation also lists the answers the platform gives it (``platform_answers``). An error
    response an operation declares with no body, or with FastAPI's default 422 body, becomes a
    Problem. Bodies an operation declares itself (auth's RFC 6749 OAuth errors) stay."""
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        problem_ref = {"$ref": "#/components/schemas/Problem"}
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                for status, description in platform_answers(operation, method).items():
                    responses.setdefault(status, {"description": description})
                for status, response in responses.items():
                    if not str(status).startswith(("4", "5")):
                        continue
                    content = response.get("content")
                    declared = (content or {}).get("application/json", {}).get("schema", {})
                    if content is None or declared.get("$ref", "").endswith("/HTTPValidationError"):
                        response["content"] = {PROBLEM_JSON: {"schema": problem_ref}}
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        schemas["Problem"] = PROBLEM_SCHEMA
        if "/HTTPValidationError" not in json.dumps(schema.get("paths", {})):
            for name in _FASTAPI_ERROR_SCHEMAS:  # no longer referenced: the Problem replaced them
                schemas.pop(name, None)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
