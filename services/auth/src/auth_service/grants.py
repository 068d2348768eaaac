"""The three grants of POST /auth/token (RFC 6749), each turning a form into a TokenResponse.

    password             section 4.3: a user signs in, a new session starts
    refresh_token        section 6:   a session continues; the refresh token is rotated
    client_credentials   section 4.4: a service proves itself with HTTP Basic (section 2.3.1)

Every refusal is an OAuthError carrying the RFC 6749 section 5.2 error code.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import unquote_plus

from fastapi import Request
from redis.exceptions import RedisError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from .config import AuthSettings
from .keys import KeyStore
from .models import Client, TokenResponse, User
from .oauth import OAuthError, invalid_request
from .passwords import MAX_PASSWORD_LENGTH, Passwords
from .revoker import Revoker
from .sessions import RefreshRejected, issue_tokens, redeem_refresh_token, start_session
from .throttle import LoginThrottle, client_account, client_address, user_account
from .tokens import SERVICE_SCOPE, mint_access_token

# What a user token may be granted; the default (no scope asked) is all of them.
USER_SCOPES = ("openid", "orders", "payments", "inventory")
MAX_USERNAME_LENGTH = 128
MAX_SCOPE_LENGTH = 512
MAX_REFRESH_TOKEN_LENGTH = 256
# The same body whether the user is unknown or the password is wrong: no account enumeration.
BAD_CREDENTIALS = "The username or password is incorrect."


def temporarily_unavailable() -> OAuthError:
    return OAuthError(
        503,
        "temporarily_unavailable",
        "Auth cannot reach Redis right now; try again shortly.",
        {"Retry-After": "1"},
    )


async def reserve_attempt(throttle: LoginThrottle, account: str, address: str) -> None:
    """Count this attempt before any hashing, or refuse it: 429 at the limit, 503 without Redis."""
    try:
        wait = await throttle.reserve(account, address)
    except (RedisError, OSError):
        raise temporarily_unavailable() from None
    if wait:
        raise OAuthError(
            429,
            "slow_down",
            f"Too many failed attempts; try again in {wait} seconds.",
            {"Retry-After": str(wait)},
        )


async def attempt_succeeded(throttle: LoginThrottle, account: str, address: str) -> None:
    try:
        await throttle.succeeded(account, address)
    except (RedisError, OSError):
        raise temporarily_unavailable() from None


def invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


def granted_scope(requested: str | None, allowed: tuple[str, ...] = USER_SCOPES) -> str:
    """RFC 6749 section 3.3: grant the known scopes asked for; all of ``allowed`` by default."""
    if requested is None:
        return " ".join(allowed)
    if len(requested) > MAX_SCOPE_LENGTH:
        raise invalid_request("The scope parameter is too long.")
    asked = set(requested.split(" "))
    granted = [scope for scope in allowed if scope in asked]
    if not granted:
        raise OAuthError(400, "invalid_scope", f"Known scopes are: {' '.join(allowed)}.")
    return " ".join(granted)


async def password_grant(
    request: Request,
    form: dict[str, str],
    db: AsyncSession,
    settings: AuthSettings,
    keys: KeyStore,
    passwords: Passwords,
    throttle: LoginThrottle,
) -> TokenResponse:
    username, password = form.get("username"), form.get("password")
    if not username or not password:
        raise invalid_request("The password grant needs 'username' and 'password'.")
    # Refuse absurd sizes before any hashing, so a huge password costs no CPU.
    if len(username) > MAX_USERNAME_LENGTH or len(password) > MAX_PASSWORD_LENGTH:
        raise invalid_request("The username or password is too long.")
    scope = granted_scope(form.get("scope"))
    account, address = user_account(username), client_address(request, settings.trusted_proxies)
    await reserve_attempt(throttle, account, address)
    user = (await db.exec(select(User).where(User.username == username))).first()
    valid = await passwords.verify_or_dummy(password, user.password_hash if user else None)
    if user is None or not valid:
        raise invalid_grant(BAD_CREDENTIALS)  # the attempt stays counted
    await attempt_succeeded(throttle, account, address)
    session = await start_session(db, user, scope)
    return await issue_tokens(db, settings, keys, user, session)


async def refresh_token_grant(
    form: dict[str, str],
    db: AsyncSession,
    settings: AuthSettings,
    keys: KeyStore,
    revoker: Revoker,
) -> TokenResponse:
    token = form.get("refresh_token")
    if not token:
        raise invalid_request("The refresh_token grant needs 'refresh_token'.")
    if len(token) > MAX_REFRESH_TOKEN_LENGTH:
        raise invalid_grant("The refresh token is invalid, expired or already used.")
    try:
        user, session = await redeem_refresh_token(db, revoker, token)
    except RefreshRejected:
        raise invalid_grant("The refresh token is invalid, expired or already used.") from None
    except (RedisError, OSError):
        raise temporarily_unavailable() from None
    # RFC 6749 section 6: a refresh may narrow the scope, never widen it.
    scope = session.scope
    if form.get("scope") is not None:
        scope = granted_scope(form.get("scope"), tuple(session.scope.split(" ")))
    return await issue_tokens(db, settings, keys, user, session, scope=scope)


async def client_credentials_grant(
    request: Request,
    form: dict[str, str],
    db: AsyncSession,
    settings: AuthSettings,
    keys: KeyStore,
    passwords: Passwords,
    throttle: LoginThrottle,
) -> TokenResponse:
    client_id, secret = basic_credentials(request)
    scope = granted_scope(form.get("scope"), (SERVICE_SCOPE,))
    # A client secret is a password too (RFC 6749 section 10.10, online guessing): the same
    # throttle, per client and per address, before any hashing.
    account, address = client_account(client_id), client_address(request, settings.trusted_proxies)
    await reserve_attempt(throttle, account, address)
    client = await db.get(Client, client_id)
    valid = await passwords.verify_or_dummy(secret, client.secret_hash if client else None)
    if client is None or not valid:
        raise invalid_client("The client is unknown or its secret is wrong.")
    await attempt_succeeded(throttle, account, address)
    access = mint_access_token(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=settings.access_token_ttl_seconds,
        sub=client.client_id,
        roles=[role for role in client.roles.split(",") if role],
        scope=scope,
        client_id=client.client_id,
    )
    # No refresh token (RFC 6749 section 4.4.3): a service simply asks again.
    return TokenResponse(
        access_token=access.token, expires_in=settings.access_token_ttl_seconds, scope=scope
    )


def invalid_client(description: str) -> OAuthError:
    # RFC 6749 section 5.2: 401 plus the scheme the client should have used.
    return OAuthError(
        401, "invalid_client", description, {"WWW-Authenticate": 'Basic realm="relayshop"'}
    )


def basic_credentials(request: Request) -> tuple[str, str]:
    """Client id and secret from ``Authorization: Basic`` (RFC 6749 section 2.3.1: each part
    is form-urlencoded before the base64 of RFC 7617)."""
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not encoded or len(encoded) > 4096:
        raise invalid_client("Client authentication with HTTP Basic is required.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise invalid_client("The Basic credentials are malformed.") from None
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id or not secret:
        raise invalid_client("The Basic credentials are malformed.")
    client_id, secret = unquote_plus(client_id), unquote_plus(secret)
    if len(client_id) > 64 or len(secret) > MAX_PASSWORD_LENGTH:
        raise invalid_client("The client is unknown or its secret is wrong.")
    return client_id, secret
