"""POST /auth/token: the OAuth 2.0 token endpoint (RFC 6749 section 3.2).

The form is parsed by hand (``read_form``) rather than by FastAPI's Form() parameters: the
answer to any bad input must be an RFC 6749 error body (``invalid_request``), never a 422 problem
or a 500, and the body is size-capped before it is parsed. The OpenAPI schema of the form is
declared below so /docs still shows it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from relayshop_platform.db import DbSession
from relayshop_platform.relay import ACCESS_TOKEN_TYPE_URI, EXCHANGE_GRANT

from ..deps import Keys, PasswordsDep, RevokerDep, Settings, Throttle
from ..grants import (
    client_credentials_grant,
    password_grant,
    refresh_token_grant,
    token_exchange_grant,
)
from ..models import OAuthErrorBody, TokenResponse
from ..oauth import NO_STORE, BadForm, OAuthError, form_body, invalid_request, read_form

router = APIRouter(prefix="/auth", tags=["auth"])

_FORM_SCHEMA = form_body(
    {
        "type": "object",
        "required": ["grant_type"],
        "properties": {
            "grant_type": {
                "type": "string",
                "enum": ["password", "refresh_token", "client_credentials", EXCHANGE_GRANT],
            },
            "username": {"type": "string", "maxLength": 128},
            "password": {"type": "string", "format": "password", "maxLength": 1024},
            "refresh_token": {"type": "string"},
            "scope": {"type": "string", "example": "orders:read orders:write"},
            "resource": {"type": "string", "example": "urn:relayshop:inventory"},
            "audience": {"type": "string", "example": "urn:relayshop:inventory"},
            "subject_token": {"type": "string"},
            "subject_token_type": {"type": "string", "enum": [ACCESS_TOKEN_TYPE_URI]},
            "requested_token_type": {"type": "string", "enum": [ACCESS_TOKEN_TYPE_URI]},
        },
    }
)
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": OAuthErrorBody, "description": "invalid_request, invalid_grant, ..."},
    401: {"model": OAuthErrorBody, "description": "invalid_client (client_credentials, exchange)"},
    429: {"model": OAuthErrorBody, "description": "slow_down, with Retry-After"},
    503: {"model": OAuthErrorBody, "description": "temporarily_unavailable (Redis down)"},
}


@router.post(
    "/token",
    response_model=TokenResponse,
    response_model_exclude_none=True,
    responses=_ERRORS,
    openapi_extra=_FORM_SCHEMA,
    summary="Issue tokens (password, refresh_token, client_credentials, token exchange)",
)
async def token(
    request: Request,
    db: DbSession,
    settings: Settings,
    keys: Keys,
    passwords: PasswordsDep,
    throttle: Throttle,
    revoker: RevokerDep,
) -> JSONResponse:
    try:
        form = await read_form(request)
    except BadForm as exc:
        raise invalid_request(str(exc)) from None
    grant_type = form.get("grant_type")
    if grant_type == "password":
        answer = await password_grant(request, form, db, settings, keys, passwords, throttle)
    elif grant_type == "refresh_token":
        answer = await refresh_token_grant(form, db, settings, keys, revoker)
    elif grant_type == "client_credentials":
        answer = await client_credentials_grant(
            request, form, db, settings, keys, passwords, throttle
        )
    elif grant_type == EXCHANGE_GRANT:
        answer = await token_exchange_grant(
            request,
            form,
            db,
            settings,
            keys,
            passwords,
            throttle,
            request.app.state.verifier,
            request.app.state.external_issuers,
        )
    elif not grant_type:
        raise invalid_request("The grant_type parameter is required.")
    else:
        raise OAuthError(
            400,
            "unsupported_grant_type",
            "Supported grant types: password, refresh_token, client_credentials, "
            f"{EXCHANGE_GRANT}.",
        )
    return JSONResponse(answer.model_dump(exclude_none=True), headers=NO_STORE)
