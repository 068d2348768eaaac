"""Ending tokens and sessions.

    POST /auth/revoke                      RFC 7009: any token, no bearer; 200 even if unknown
    POST /auth/logout                      this access token and its whole session
    POST /auth/logout-all                  every session of the caller
    POST /auth/admin/users/{sub}/revoke    every session of another user (admin), a trusted
                                           issuer's user too (by their stable sub)
    POST /auth/password                    change the password, then end every session

Each answers only after Redis has recorded the revocation; when it cannot, the answer is 503,
never a success that did not happen (docs/api.md, section 6: "refused within one second").
"""

from __future__ import annotations

import json
import time
from typing import Any

import jwt
from fastapi import APIRouter, Depends, Request, Response
from jwt.exceptions import PyJWTError
from pydantic import ValidationError
from redis.exceptions import RedisError
from relayshop_platform.db import DbSession
from relayshop_platform.errors import InvalidInput, NotFound, RelayshopError, UpstreamUnavailable
from relayshop_platform.issuers import is_external_sub
from relayshop_platform.roles import Role
from relayshop_platform.security import CurrentUser, require_roles
from relayshop_platform.tokens import ALLOWED_ALGORITHMS
from sqlmodel.ext.asyncio.session import AsyncSession

from ..config import AuthSettings
from ..deps import Keys, PasswordsDep, RevokerDep, Settings, Throttle
from ..grants import temporarily_unavailable
from ..keys import KeyStore
from ..models import OAuthErrorBody, PasswordChange, RefreshToken, User
from ..oauth import (
    FORM_VALUE,
    NO_STORE,
    BadForm,
    form_body,
    invalid_request,
    read_body,
    read_form,
)
from ..passwords import hash_password
from ..revoker import Revoker
from ..sessions import revoke_all_sessions, revoke_session
from ..throttle import client_address, user_account
from ..tokens import refresh_token_hash

router = APIRouter(prefix="/auth", tags=["auth"])
REDIS_DOWN = "Revocation could not be recorded (Redis unreachable); nothing was revoked."


class TooManyAttempts(RelayshopError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed attempts; try again in {retry_after} seconds.")
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


@router.post(
    "/revoke",
    response_class=Response,
    responses={
        200: {"description": "Revoked, or nothing to revoke (RFC 7009 section 2.2): no body"},
        400: {"model": OAuthErrorBody},
        503: {"model": OAuthErrorBody},
    },
    summary="Revoke an access or refresh token (RFC 7009)",
    openapi_extra=form_body(
        {
            "type": "object",
            "required": ["token"],
            # read_form refuses control characters in any name or value (RFC 6749 Appendix A)
            # and ignores unknown parameters (RFC 6749 section 3.2).
            "propertyNames": {"pattern": FORM_VALUE},
            "additionalProperties": {"type": "string", "pattern": FORM_VALUE},
            "properties": {
                "token": {"type": "string", "minLength": 1, "pattern": FORM_VALUE},
                # Only a hint (RFC 7009 section 2.1): any value, even an unknown one.
                "token_type_hint": {
                    "type": "string",
                    "pattern": FORM_VALUE,
                    "examples": ["access_token", "refresh_token"],
                },
            },
        }
    ),
)
async def revoke(
    request: Request, db: DbSession, settings: Settings, keys: Keys, revoker: RevokerDep
) -> Response:
    try:
        form = await read_form(request)
    except BadForm as exc:
        raise invalid_request(str(exc)) from None
    token = form.get("token")
    if not token:
        raise invalid_request("The token parameter is required.")
    # token_type_hint is optional and only a hint (RFC 7009 section 2.1): the shape tells us.
    try:
        if token.count(".") == 2:
            await _revoke_access_token(token, keys, settings, revoker)
        elif len(token) <= 256:
            await _revoke_refresh_token(db, revoker, token)
    except (RedisError, OSError):
        raise temporarily_unavailable() from None
    # RFC 7009 section 2.2: 200 also for unknown or invalid tokens (nothing to tell an attacker).
    return Response(status_code=200, headers=NO_STORE)


async def _revoke_access_token(
    token: str, keys: KeyStore, settings: AuthSettings, revoker: Revoker
) -> None:
    if len(token) > settings.max_token_bytes:
        return
    try:
        kid = jwt.get_unverified_header(token).get("kid")
        key = await keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            return  # not signed by a key of ours: nothing of ours to revoke
        claims = jwt.decode(
            token,
            key,
            algorithms=list(ALLOWED_ALGORITHMS),
            issuer=settings.issuer,
            leeway=settings.leeway_seconds,
            # Any token of ours, whatever its audience: an exchanged one can be revoked too.
            options={"require": ["exp", "jti"], "verify_aud": False},
        )
    except PyJWTError:
        return  # expired or invalid: it is refused everywhere already
    await revoker.revoke_jti(str(claims["jti"]), int(claims["exp"]))


async def _revoke_refresh_token(db: AsyncSession, revoker: Revoker, token: str) -> None:
    row = await db.get(RefreshToken, refresh_token_hash(token))
    if row is not None:
        # RFC 7009 section 2.1: revoking a refresh token also ends the access tokens of its grant.
        await revoke_session(db, revoker, row.sid)


@router.post("/logout", status_code=204, summary="End this session (token and refresh tokens)")
async def logout(user: CurrentUser, db: DbSession, revoker: RevokerDep) -> Response:
    try:
        await revoker.revoke_jti(user.jti, user.exp)
        if user.sid:
            await revoke_session(db, revoker, user.sid)
    except (RedisError, OSError):
        raise UpstreamUnavailable(REDIS_DOWN) from None
    return Response(status_code=204)


@router.post("/logout-all", status_code=204, summary="End every session of the caller")
async def logout_all(user: CurrentUser, db: DbSession, revoker: RevokerDep) -> Response:
    await _end_every_session(db, revoker, user.sub)
    return Response(status_code=204)


@router.post(
    "/admin/users/{sub}/revoke",
    status_code=204,
    dependencies=[Depends(require_roles(Role.ADMIN))],
    summary="End every session of a user (admin)",
)
async def admin_revoke_user(sub: str, db: DbSession, revoker: RevokerDep) -> Response:
    if is_external_sub(sub):
        # A user of a trusted issuer (federation.py): no account or session here, and no list of
        # the tokens the gateway got for them, so the not-before is the next second. Every token
        # derived for them so far, this second's included, is refused at every hop; the one from
        # their issuer cannot be exchanged again. They sign in at their issuer again.
        try:
            await revoker.revoke_user(sub, not_before=int(time.time()) + 1)
        except (RedisError, OSError):
            raise UpstreamUnavailable(REDIS_DOWN) from None
        return Response(status_code=204)
    if len(sub) > 36 or await db.get(User, sub) is None:
        raise NotFound("No such user.")
    await _end_every_session(db, revoker, sub)
    return Response(status_code=204)


@router.post(
    "/password",
    status_code=204,
    summary="Change your password (JSON or form); every session ends, sign in again",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": PasswordChange.model_json_schema()},
                "application/x-www-form-urlencoded": {"schema": PasswordChange.model_json_schema()},
            },
        }
    },
)
async def change_password(
    request: Request,
    user: CurrentUser,
    db: DbSession,
    settings: Settings,
    passwords: PasswordsDep,
    throttle: Throttle,
    revoker: RevokerDep,
) -> Response:
    change = await _password_change_body(request)
    account = await db.get(User, user.sub)
    if account is None:
        raise NotFound("No such user.")
    # The same throttle as sign-in: a stolen access token must not become a password oracle.
    attempt = user_account(account.username), client_address(request, settings.trusted_proxies)
    try:
        wait = await throttle.reserve(*attempt)  # counted before hashing, atomically
        if wait:
            raise TooManyAttempts(wait)
        if not await passwords.verify_or_dummy(change.current_password, account.password_hash):
            raise InvalidInput("The current password is incorrect.")
        await throttle.succeeded(*attempt)
    except (RedisError, OSError):
        raise UpstreamUnavailable("Auth cannot reach Redis right now; try again.") from None
    account.password_hash = await hash_password(change.new_password)
    db.add(account)
    await db.commit()
    await _end_every_session(db, revoker, account.id)
    return Response(status_code=204)


async def _end_every_session(db: AsyncSession, revoker: Revoker, sub: str) -> None:
    try:
        await revoke_all_sessions(db, revoker, sub)
    except (RedisError, OSError):
        raise UpstreamUnavailable(REDIS_DOWN) from None


async def _password_change_body(request: Request) -> PasswordChange:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    try:
        data: Any
        if content_type == "application/json":
            data = json.loads(await read_body(request, 8192))
        else:
            data = await read_form(request, 8192)
        return PasswordChange.model_validate(data)
    except BadForm as exc:
        raise InvalidInput(f"{exc} Send JSON or a form.") from None
    except (ValueError, RecursionError) as exc:  # bad JSON or a ValidationError (a ValueError)
        errors = (
            [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
            if isinstance(exc, ValidationError)
            else []
        )
        raise InvalidInput(
            "Send current_password and new_password (8-1024 chars).", errors=errors
        ) from None
