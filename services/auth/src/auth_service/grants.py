"""The grants of POST /auth/token, each turning a form into a TokenResponse.

    password             RFC 6749 4.3: a user signs in, a new session starts
    refresh_token        RFC 6749 6:   a session continues; the refresh token is rotated
    client_credentials   RFC 6749 4.4: a service's own token for one callee (RFC 8707 resource)
    token-exchange       RFC 8693:     a service exchanges the user's token it received for one
                                       addressed to the next hop, with itself in ``act``; the
                                       gateway, a trusted issuer's token for a relayshop user
                                       token (federation.py)

Which service may get a token for which callee is the catalogue's ``calls`` (exchange_targets),
nothing else. Every refusal is an OAuthError carrying the RFC's error code.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus

from fastapi import Request
from redis.exceptions import RedisError
from relayshop_platform.catalogue import GATEWAY, audience_of, exchange_targets
from relayshop_platform.errors import InvalidToken, UpstreamUnavailable
from relayshop_platform.issuers import ExternalTokenVerifier, unverified_issuer
from relayshop_platform.relay import ACCESS_TOKEN_TYPE_URI
from relayshop_platform.scopes import SERVICE_SCOPE, USER_SCOPES, scopes_for_roles
from relayshop_platform.tokens import TokenVerifier
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from .config import AuthSettings
from .federation import federated_exchange
from .keys import KeyStore
from .models import Client, TokenResponse, User
from .oauth import OAuthError, invalid_request
from .passwords import MAX_PASSWORD_LENGTH, Passwords
from .revoker import Revoker
from .sessions import RefreshRejected, issue_tokens, redeem_refresh_token, start_session
from .throttle import LoginThrottle, client_account, client_address, user_account
from .tokens import exchanged, mint_access_token

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


def granted_scope(requested: str | None, allowed: tuple[str, ...]) -> str:
    """RFC 6749 section 3.3: grant the scopes asked for that ``allowed`` holds (all of them when
    none are asked for); the response's ``scope`` says what was granted."""
    if requested is None:
        return " ".join(allowed)
    if len(requested) > MAX_SCOPE_LENGTH:
        raise invalid_request("The scope parameter is too long.")
    asked = set(requested.split(" "))
    granted = [scope for scope in allowed if scope in asked]
    if not granted:
        raise OAuthError(400, "invalid_scope", f"Scopes you may have: {' '.join(allowed)}.")
    return " ".join(granted)


def invalid_target(description: str) -> OAuthError:
    # RFC 8707 section 2 (resource) and RFC 8693 section 2.2.2 (audience): not a callee of yours.
    return OAuthError(400, "invalid_target", description)


def requested_callee(form: dict[str, str], client_id: str) -> str:
    """The one callee named by ``resource`` (RFC 8707) or ``audience`` (RFC 8693), which must be
    one the client calls (the catalogue's calls); its name."""
    targets = [form[name] for name in ("resource", "audience") if name in form]
    if not targets:
        raise invalid_target("Name the service to call: resource=urn:relayshop:<service>.")
    if len(targets) > 1 and targets[0] != targets[1]:
        raise invalid_target("Name one target: resource and audience disagree.")
    allowed = {audience_of(callee): callee for callee in exchange_targets(client_id)}
    callee = allowed.get(targets[0])
    if callee is None:
        names = ", ".join(allowed) or "none"
        raise invalid_target(f"{client_id} may get tokens only for: {names}.")
    return callee


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
    requested = form.get("scope")
    granted_scope(requested, USER_SCOPES)  # nothing known asked for: refused before any hashing
    account, address = user_account(username), client_address(request, settings.trusted_proxies)
    await reserve_attempt(throttle, account, address)
    user = (await db.exec(select(User).where(User.username == username))).first()
    valid = await passwords.verify_or_dummy(password, user.password_hash if user else None)
    if user is None or not valid:
        raise invalid_grant(BAD_CREDENTIALS)  # the attempt stays counted
    await attempt_succeeded(throttle, account, address)
    # Every scope the user's roles can use, or the part of it asked for (scopes.py).
    scope = granted_scope(requested, scopes_for_roles(user.role_list))
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
    client = await authenticate_client(request, db, settings, passwords, throttle)
    scope = granted_scope(form.get("scope"), (SERVICE_SCOPE,))
    callee = requested_callee(form, client.client_id)
    access = mint_access_token(
        keys,
        issuer=settings.issuer,
        audience=audience_of(callee),  # exactly one callee: accepted there and nowhere else
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


async def authenticate_client(
    request: Request,
    db: AsyncSession,
    settings: AuthSettings,
    passwords: Passwords,
    throttle: LoginThrottle,
) -> Client:
    """The service client behind ``Authorization: Basic``, or 401 invalid_client."""
    client_id, secret = basic_credentials(request)
    client = await db.get(Client, client_id)
    if client is not None and passwords.remembered_client(secret, client.secret_hash):
        return client
    # A client secret is a password too (RFC 6749 section 10.10, online guessing): the same
    # throttle, per client and per address, before any hashing.
    account, address = client_account(client_id), client_address(request, settings.trusted_proxies)
    await reserve_attempt(throttle, account, address)
    valid = await passwords.verify_client_secret(secret, client.secret_hash if client else None)
    if client is None or not valid:
        raise invalid_client("The client is unknown or its secret is wrong.")
    await attempt_succeeded(throttle, account, address)
    return client


async def token_exchange_grant(
    request: Request,
    form: dict[str, str],
    db: AsyncSession,
    settings: AuthSettings,
    keys: KeyStore,
    passwords: Passwords,
    throttle: LoginThrottle,
    verifier: TokenVerifier,
    external: ExternalTokenVerifier | None = None,
) -> TokenResponse:
    """RFC 8693: the user's token a service received, exchanged for one addressed to the next hop.

    The issued token keeps the user (sub, sid, roles); its aud is the requested callee alone; its
    scope and exp never exceed the subject token's (section 2.1: the STS decides, and we never
    widen); act names the exchanging service, with the subject's own act nested inside (4.1);
    derived_from lists the jti of every token it descends from, so that revoking any of them
    (logout) revokes it too (revocation.py).
    """
    client = await authenticate_client(request, db, settings, passwords, throttle)
    if form.get("subject_token_type") != ACCESS_TOKEN_TYPE_URI:
        raise invalid_request(f"subject_token_type must be {ACCESS_TOKEN_TYPE_URI}.")
    if form.get("requested_token_type", ACCESS_TOKEN_TYPE_URI) != ACCESS_TOKEN_TYPE_URI:
        raise invalid_request(f"Only {ACCESS_TOKEN_TYPE_URI} can be issued.")
    if form.get("actor_token"):
        # Section 2.1: delegation with a separate actor token. The client authentication already
        # says who acts; a second credential would only be another thing to get wrong.
        raise invalid_request(
            "actor_token is not supported: the client authentication is the actor."
        )
    subject_token = form.get("subject_token")
    if not subject_token:
        raise invalid_request("The token exchange needs 'subject_token'.")
    issuer = unverified_issuer(subject_token)  # read only to choose who verifies it
    if external is not None and issuer != settings.issuer and issuer in external.issuers:
        # Another identity provider's token: federation.py verifies it with that issuer's keys.
        return await federated_exchange(
            form, client, settings, keys, external, verifier.revocations
        )
    callee = requested_callee(form, client.client_id)
    try:
        # Only a token addressed to the exchanging service itself: a service cannot turn a token
        # it merely saw (or stole from a neighbour) into one for its own callees.
        subject = await verifier.verify(subject_token, audience=audience_of(client.client_id))
    except InvalidToken as exc:
        raise invalid_grant(f"The subject token is not usable: {exc.detail}") from None
    except UpstreamUnavailable:
        raise temporarily_unavailable() from None
    if subject.is_service:
        raise invalid_grant("The subject token is a service's own token, not a user's.")
    if not _act_chain_allowed(client.client_id, subject.actors):
        raise invalid_grant("The subject token's act chain is not one the policy allows.")
    scope = subject.scope
    if form.get("scope") is not None:
        asked = form["scope"].split(" ")
        if len(form["scope"]) > MAX_SCOPE_LENGTH or not set(asked) <= set(scope.split(" ")):
            # RFC 8693 section 2.2.2 / RFC 6749 5.2: never wider than the subject token's.
            raise OAuthError(400, "invalid_scope", "The scope asked for exceeds the subject's.")
        scope = " ".join(s for s in scope.split(" ") if s in asked)
    act: dict[str, Any] = {"sub": client.client_id}
    nested = act
    for actor in subject.actors:
        nested["act"] = {"sub": actor}
        nested = nested["act"]
    access = mint_access_token(
        keys,
        issuer=settings.issuer,
        audience=audience_of(callee),
        ttl_seconds=settings.access_token_ttl_seconds,
        sub=subject.sub,
        roles=list(subject.roles),
        scope=scope,
        client_id=client.client_id,
        sid=subject.sid,
        act=act,
        derived_from=[*subject.derived_from, subject.jti],
        not_after=subject.exp,
    )
    return exchanged(access, scope)


def _act_chain_allowed(client_id: str, actors: tuple[str, ...]) -> bool:
    """Each actor of the subject's chain must be allowed to exchange for the audience the token
    then had: the nearest actor for this client's audience, the one before it for that actor's,
    and so on. A chain the policy could never have produced is forged or stale: refused.

    One step is not in the catalogue's calls: at the far end of the chain, the gateway may have
    exchanged a trusted issuer's token for its own audience (federation.py)."""
    target = client_id
    for index, actor in enumerate(actors):
        federated = actor == target == GATEWAY and index == len(actors) - 1
        if target not in exchange_targets(actor) and not federated:
            return False
        target = actor
    return True


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
