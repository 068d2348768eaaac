"""Federation: a user of a trusted identity provider becomes a relayshop user, by token exchange.

The gateway receives an access token from another issuer (Keycloak, Auth0, ...: one of
``RELAYSHOP_TRUSTED_ISSUERS``) and exchanges it here (RFC 8693 section 2.1):

    grant_type=urn:ietf:params:oauth:grant-type:token-exchange
    subject_token=<the other issuer's token>
    subject_token_type=urn:ietf:params:oauth:token-type:access_token
    audience=urn:relayshop:gateway

The answer is a relayshop access token that is, for every service, a signed-in user's token:

    sub     relayshop's stable id of the external user (issuers.stable_sub), never theirs
    roles   the external roles as the issuer's role_map maps them (none: 403 at each route)
    scope   every scope those roles can use (scopes.scopes_for_roles)
    aud     a signed-in user's (AuthSettings.user_token_audience): the gateway alone in
            exchange mode, every service in relay mode. So the gateway then does exactly what it
            does with a local user's token: exchanges it per hop, or relays it.
    act     {"sub": "gateway"}: the gateway obtained it (RFC 8693 section 4.1)
    sid     derived from the external token's sid (or jti): the same for every token of one
            sign-in at the other issuer, and revealing nothing of it
    exp     never past the external token's exp (RFC 8693 section 2.1: the STS decides, and we
            never let a derived token outlive the one it came from)

Only the gateway may do this (it is the only place another issuer's token is ever accepted), and
only for its own audience. Services behind it trust relayshop's auth alone and never see the
foreign token. Nothing else is copied: no name, email or username (GDPR article 5(1)(c)).

Revocation: an admin ends every session of an external user by their stable sub (the per-user
not-before of revocation.py). A subject token issued before that moment is refused here, so the
gateway cannot get a new relayshop token with it; the ones it already holds are refused at every
hop by the same not-before.
"""

from __future__ import annotations

import hashlib

import httpx
from relayshop_platform.catalogue import GATEWAY, audience_of
from relayshop_platform.errors import InvalidToken, UpstreamUnavailable
from relayshop_platform.issuers import ExternalIdentity, ExternalTokenVerifier, federated_id
from relayshop_platform.scopes import scopes_for_roles
from relayshop_platform.tokens import Principal, RevocationCheck

from .config import AuthSettings
from .keys import KeyStore
from .models import Client, TokenResponse
from .oauth import OAuthError
from .tokens import exchanged, mint_access_token

__all__ = ["create_external_verifier", "federated_exchange"]


def create_external_verifier(
    settings: AuthSettings, http: httpx.AsyncClient
) -> ExternalTokenVerifier | None:
    """The verifier of the trusted issuers' tokens, its keys loading in the background; None
    when no issuer is trusted (then every subject token must be relayshop's own)."""
    if not settings.trusted_issuers:
        return None
    verifier = ExternalTokenVerifier(
        settings.trusted_issuers,
        http,
        leeway_seconds=settings.leeway_seconds,
        max_token_bytes=settings.max_token_bytes,
        # As for our own tokens: none may claim to live longer than relayshop's access tokens.
        max_lifetime_seconds=settings.access_token_ttl_seconds,
        min_refetch_seconds=settings.jwks_min_refetch_seconds,
        refresh_seconds=settings.jwks_refresh_seconds,
    )
    verifier.start()
    return verifier


def _invalid_grant(description: str) -> OAuthError:
    return OAuthError(400, "invalid_grant", description)


async def federated_exchange(
    form: dict[str, str],
    client: Client,
    settings: AuthSettings,
    keys: KeyStore,
    external: ExternalTokenVerifier,
    revocations: RevocationCheck | None,
) -> TokenResponse:
    """The exchange of another issuer's access token (``form["subject_token"]``) for a relayshop
    user token; the client is already authenticated and the form's token types checked."""
    if client.client_id != GATEWAY:
        # Only the edge federates: a service behind it holding a foreign token got it from
        # somewhere it should not have.
        raise _invalid_grant("Only the gateway may exchange a token from another issuer.")
    targets = {form[name] for name in ("resource", "audience") if name in form}
    if targets != {audience_of(GATEWAY)}:
        # RFC 8693 section 2.2.2: the result is a signed-in user's token, for the front door.
        raise OAuthError(
            400,
            "invalid_target",
            f"A token from another issuer is exchanged for {audience_of(GATEWAY)} only.",
        )
    if form.get("scope") is not None:
        # Every scope the mapped roles can use, no more and no less: keep it simple.
        raise OAuthError(400, "invalid_scope", "Ask for no scope: the mapped roles decide.")
    try:
        identity = await external.verify(form["subject_token"])
    except InvalidToken as exc:
        raise _invalid_grant(f"The subject token is not usable: {exc.detail}") from None
    sid = _session_id(identity, form["subject_token"])
    scope = " ".join(scopes_for_roles(identity.roles))
    if revocations is not None:
        # The per-user not-before an admin set on the stable sub (POST
        # /auth/admin/users/{sub}/revoke) also covers the token it would be exchanged from. The
        # external token has no jti of ours: the sign-in's derived id stands in for it.
        subject = Principal(
            sub=identity.sub,
            roles=identity.roles,
            scope=scope,
            jti=sid,
            exp=identity.exp,
            iat=identity.iat,
            sid=sid,
        )
        try:
            revocations.check(subject)
        except InvalidToken:
            raise _invalid_grant("The subject token has been revoked.") from None
        except UpstreamUnavailable:
            raise OAuthError(
                503,
                "temporarily_unavailable",
                "Revocation state is unavailable; try again shortly.",
                {"Retry-After": "1"},
            ) from None
    access = mint_access_token(
        keys,
        issuer=settings.issuer,
        audience=settings.user_token_audience(),  # as a signed-in user's, in either mode
        ttl_seconds=settings.access_token_ttl_seconds,
        sub=identity.sub,
        roles=list(identity.roles),
        scope=scope,
        client_id=client.client_id,
        sid=sid,
        act={"sub": client.client_id},
        not_after=identity.exp,
    )
    return exchanged(access, scope)


def _session_id(identity: ExternalIdentity, token: str) -> str:
    """One sign-in at the other issuer: its ``sid`` (OpenID Connect Front-Channel Logout 1.0),
    else the token's own ``jti``, else the token itself, each hashed with the issuer."""
    if identity.sid is not None:
        return federated_id(identity.issuer, "sid", identity.sid)
    if identity.jti is not None:
        return federated_id(identity.issuer, "jti", identity.jti)
    return federated_id(identity.issuer, "token", hashlib.sha256(token.encode()).hexdigest())
