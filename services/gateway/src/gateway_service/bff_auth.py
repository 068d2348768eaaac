"""The console's client of auth: token requests (sign-in, refresh), re-federation, revocation.

The tokens these return stay in the session store (bff_session.py, session.py); the page never
sees one. Refresh follows RFC 6749 section 6, revocation RFC 7009 and auth's /auth/logout.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import replace
from typing import Any

import httpx
from fastapi import Request
from redis.exceptions import RedisError
from relayshop_platform.errors import (
    InvalidToken,
    RelayshopError,
    TokenError,
    UpstreamUnavailable,
)
from relayshop_platform.relay import ServiceTokens, upstream_error
from relayshop_platform.tokens import TokenVerifier

from .bff_session import NotSignedIn, session_store
from .config import GatewaySettings
from .federation import EdgeFederation
from .proxy import routing_table
from .session import BffSession, new_secret

log = logging.getLogger("relayshop.gateway.bff")


class TooManyAttempts(RelayshopError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, retry_after: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after}


async def token_request(request: Request, form: dict[str, str]) -> dict[str, Any]:
    settings: GatewaySettings = request.app.state.settings
    http: httpx.AsyncClient = request.app.state.http
    client = request.client.host if request.client else None
    # X-Forwarded-For: auth's sign-in throttle should count this browser, not the gateway.
    headers = {"X-Forwarded-For": client} if client else {}
    try:
        answer = await http.post(settings.token_url, data=form, headers=headers)
    except httpx.HTTPError as exc:
        raise upstream_error(exc, "auth") from exc
    if answer.status_code == 200:
        body: dict[str, Any] = answer.json()
        return body
    if answer.status_code == 429:
        raise TooManyAttempts(
            "Too many failed sign-ins; try again later.", answer.headers.get("retry-after", "60")
        )
    if answer.status_code in (400, 401):
        raise NotSignedIn("Wrong username or password, or the session has ended.")
    raise UpstreamUnavailable(f"The auth service answered {answer.status_code}.")


async def new_session(request: Request, tokens: dict[str, Any], username: str) -> BffSession:
    verifier: TokenVerifier = request.app.state.verifier
    # Verified like any token (signature, claims): the roles shown come from a checked token.
    principal = await verifier.verify(str(tokens["access_token"]))
    return BffSession(
        username=username,
        sub=principal.sub,
        roles=list(principal.roles),
        access_token=str(tokens["access_token"]),
        access_expires_at=time.time() + float(tokens.get("expires_in", 300)),
        refresh_token=str(tokens.get("refresh_token", "")),
        csrf_token=new_secret(),
    )


async def fresh_access_token(request: Request, session_id: str, session: BffSession) -> BffSession:
    """The session with an access token good for at least the refresh margin (RFC 6749 sec. 6)."""
    settings: GatewaySettings = request.app.state.settings
    margin = settings.bff_refresh_margin_seconds
    if not session.expires_within(margin):
        return session
    store = session_store(request)
    try:
        async with store.refresh_lock(session_id):
            current = await store.get(session_id)  # another request may have refreshed already
            if current is None:
                raise NotSignedIn("Your session has ended; sign in again.")
            if not current.expires_within(margin):
                return current
            if current.idp is not None:  # signed in at a trusted issuer: no refresh token
                renewed = await exchange_again(request, session_id, current)
                await store.save(session_id, renewed)
                return renewed
            try:
                tokens = await token_request(
                    request, {"grant_type": "refresh_token", "refresh_token": current.refresh_token}
                )
            except NotSignedIn:
                await store.delete(session_id)  # refresh token spent, expired or revoked
                raise
            renewed = replace(
                current,
                access_token=str(tokens["access_token"]),
                access_expires_at=time.time() + float(tokens.get("expires_in", 300)),
                refresh_token=str(tokens.get("refresh_token", current.refresh_token)),
            )
            await store.save(session_id, renewed)
            return renewed
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc


async def exchange_again(request: Request, session_id: str, session: BffSession) -> BffSession:
    """A session signed in at a trusted issuer (routes/oidc.py) has no refresh token: relayshop's
    token is exchanged again from the issuer's access token, as the proxy would, while that is
    valid. After that the session is over and the user signs in at the issuer again."""
    federation: EdgeFederation | None = request.app.state.federation
    try:
        if federation is None or session.idp_access_token is None:
            raise InvalidToken("issuer", "The identity provider is no longer trusted.")
        principal, token = await federation.authenticate(session.idp_access_token)
    except TokenError as exc:  # expired (or revoked) at the issuer or at auth
        await session_store(request).delete(session_id)
        raise NotSignedIn("Your sign-in at the identity provider has ended.") from exc
    return replace(session, access_token=token, access_expires_at=float(principal.exp))


async def tokens_per_hop(request: Request, access_token: str) -> dict[str, str]:
    """The token each hop would receive for this session: the session's own at the gateway;
    in exchange mode the one exchanged for each service (from the cache, mostly). The
    revocation demo then shows that revoking the session stops the derived tokens too."""
    settings: GatewaySettings = request.app.state.settings
    tokens = {"gateway": access_token}
    for upstream in routing_table(settings):
        if not upstream.needs_token:
            continue
        tokens[upstream.name] = access_token
        if settings.token_mode == "exchange":
            with contextlib.suppress(RelayshopError):  # the demo falls back to the session's
                service_tokens: ServiceTokens = request.app.state.service_tokens
                tokens[upstream.name] = await service_tokens.exchange(access_token, upstream.name)
    return tokens


async def revoke_at_auth(request: Request, session: BffSession) -> bool:
    """End the session at auth: True when auth confirmed it."""
    settings: GatewaySettings = request.app.state.settings
    http: httpx.AsyncClient = request.app.state.http
    try:
        # /auth/logout revokes this access token and every refresh token of its session; the
        # RFC 7009 revoke of the refresh token also ends the session if the access token expired.
        out = await http.post(
            f"{settings.auth_url}/auth/logout",
            headers={"Authorization": f"Bearer {session.access_token}"},
        )
        if not session.refresh_token:  # signed in at a trusted issuer: there is none
            return out.status_code in (204, 401)
        gone = await http.post(
            f"{settings.auth_url}/auth/revoke",
            data={"token": session.refresh_token, "token_type_hint": "refresh_token"},
        )
    except httpx.HTTPError as exc:
        log.warning("could not revoke a console session at auth: %r", exc)
        return False
    return out.status_code in (204, 401) and gone.status_code == 200
