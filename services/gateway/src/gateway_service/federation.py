"""Federation at the edge: an access token from a trusted identity provider, turned into ours.

With ``RELAYSHOP_TRUSTED_ISSUERS`` set, the proxy (proxy.py) sends every bearer token whose
``iss`` is not relayshop's own here, in both token modes:

    1. ExternalTokenVerifier checks it against its issuer's configuration and keys (issuers.py:
       signature, exp, aud, azp, header typ). Any refusal is a 401 at the edge, recorded on the
       request's span like every other refusal; an issuer nobody configured is reason "issuer".
    2. It is exchanged at auth (RFC 8693, audience urn:relayshop:gateway) for a relayshop user
       token: sub the user's stable id, roles mapped, act {"sub": "gateway"} (auth's
       federation.py). Cached per external token by ServiceTokens, like every exchange.
    3. That token goes through the gateway's own verifier, as a local user's would: signature,
       audience and revocation. An admin's revocation of the user thus refuses it here too,
       cached or not, within the revocation mirror's delay.

The gateway's own summary route (GET /api/orders/{id}/summary, routes/summary.py) gets the same:
main.GatewayASGI puts relayshop's token in place of the foreign one before the route runs
(``federate_scope``), so the route checks and relays a local user's token.

From then on the request is a local user's: the route rules judge the relayshop principal (no
mapped role: 403), and the relayshop token goes upstream, exchanged per hop or relayed. The
foreign token never leaves the edge: services behind the gateway trust relayshop's auth alone.
"""

from __future__ import annotations

from fastapi import FastAPI
from relayshop_platform.catalogue import GATEWAY
from relayshop_platform.errors import InvalidToken, RelayshopError
from relayshop_platform.issuers import ExternalTokenVerifier, unverified_issuer
from relayshop_platform.relay import ServiceTokens
from relayshop_platform.tokens import Principal, TokenVerifier
from starlette.types import Scope

from .config import GatewaySettings

__all__ = ["EdgeFederation", "start_federation", "stop_federation"]


class EdgeFederation:
    """Accept trusted issuers' tokens at the edge by exchanging them for relayshop's."""

    def __init__(
        self,
        issuer: str,
        external: ExternalTokenVerifier,
        tokens: ServiceTokens,
        verifier: TokenVerifier,
    ) -> None:
        self._issuer = issuer  # relayshop's own: its tokens never come here
        self.external = external
        self._tokens = tokens
        self._verifier = verifier

    def is_foreign(self, token: str) -> bool:
        """The token names an issuer other than relayshop's (read unverified: only to route it).
        An unreadable token is left to the platform verifier, which says why it is refused."""
        issuer = unverified_issuer(token)
        return issuer is not None and issuer != self._issuer

    async def authenticate(self, token: str) -> tuple[Principal, str]:
        """The relayshop principal and token for a foreign ``token``, or InvalidToken (401)."""
        identity = await self.external.verify(token)  # unknown issuer: InvalidToken("issuer")
        # Auth refused (revoked user, or it does not trust this issuer): InvalidToken too.
        ours = await self._tokens.exchange(token, GATEWAY)
        principal = await self._verifier.verify(ours)  # revocation applies at the edge as well
        if principal.sub != identity.sub:  # auth answered for someone else: never forward it
            raise InvalidToken("exchange_refused", "The token could not be exchanged.")
        return principal, ours

    async def federate_scope(self, scope: Scope) -> Scope:
        """For the gateway's own routes (GET /api/orders/{id}/summary): the request with a
        trusted issuer's bearer token replaced by relayshop's token for it, so the route and the
        calls it makes see a local user's token, as the proxy's upstreams do. Anything else (no
        token, relayshop's own, two Authorization headers, a foreign token refused here) is left
        as it came: the route's own verifier then refuses it (401), recorded on its span."""
        values = [value for name, value in scope["headers"] if name == b"authorization"]
        if len(values) != 1:
            return scope
        scheme, _, token = values[0].decode("latin-1").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or not self.is_foreign(token):
            return scope
        try:
            _, ours = await self.authenticate(token)
        except RelayshopError:
            return scope
        headers = [(n, v) for n, v in scope["headers"] if n != b"authorization"]
        headers.append((b"authorization", f"Bearer {ours}".encode("latin-1")))
        return {**scope, "headers": headers}


async def start_federation(app: FastAPI) -> None:
    """Startup hook: ``app.state.federation``, None when no issuer is trusted."""
    settings: GatewaySettings = app.state.settings
    app.state.federation = None
    if not settings.trusted_issuers:
        return
    external = ExternalTokenVerifier(
        settings.trusted_issuers,
        app.state.http,
        leeway_seconds=settings.leeway_seconds,
        max_token_bytes=settings.max_token_bytes,
        # As for our own tokens: none may claim to live longer than relayshop's access tokens.
        max_lifetime_seconds=settings.access_token_ttl_seconds,
        min_refetch_seconds=settings.jwks_min_refetch_seconds,
        refresh_seconds=settings.jwks_refresh_seconds,
    )
    external.start()  # discovery and keys in the background, refreshed on schedule
    app.state.federation = EdgeFederation(
        settings.issuer, external, app.state.service_tokens, app.state.verifier
    )


async def stop_federation(app: FastAPI) -> None:
    federation: EdgeFederation | None = getattr(app.state, "federation", None)
    if federation is not None:
        await federation.external.stop()
