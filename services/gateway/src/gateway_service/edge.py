"""The edge check, written once: who is this, may they reach this route, which token goes up.

Both ways into the services use it: the proxy (proxy.py, every /api request with a bearer
token) and the console's relay (routes/bff.py, /bff/api/* with the session's token).

    Edge.admit(method, path, token, service, span)
      1. verify the token: relayshop's own (signature, claims, revocation: the platform
         verifier), or a trusted issuer's, exchanged for relayshop's first (federation.py)
      2. refuse a service token: those are for calls inside, never from outside
      3. the route rule (rules.check_route): coarse, by role; the services check ownership
      4. the token for ``service``: exchanged for it alone in exchange mode (RFC 8693), the
         relayshop token unchanged in relay mode
    and the decision goes on the request's span (check="edge"), allow or the refusal's reason.

It is on the proxy's hot path, so it costs what the check did inline before: the verifier's
look-up (a cache hit after the first sight of a token), one rule scan, in exchange mode one
look-up in the exchange cache, and no object of its own per request beyond the pair it returns.
"""

from __future__ import annotations

from opentelemetry import trace
from relayshop_platform.errors import BadRequest, InsufficientScope, MissingToken, RelayshopError
from relayshop_platform.relay import ServiceTokens
from relayshop_platform.security import record_allow, record_refusal
from relayshop_platform.tokens import Principal, TokenVerifier
from starlette.datastructures import State

from .config import GatewaySettings
from .federation import EdgeFederation
from .rules import check_route

__all__ = ["Edge", "bearer_token"]


def bearer_token(headers: list[tuple[bytes, bytes]], span: trace.Span | None = None) -> str:
    """The bearer token of an ASGI request's headers, or BadRequest / MissingToken (recorded on
    ``span`` as the edge's refusal, like every other)."""
    values = [value for name, value in headers if name == b"authorization"]
    scheme, _, token = (values[0].decode("latin-1") if values else "").partition(" ")
    token = token.strip()
    if len(values) == 1 and scheme.lower() == "bearer" and token:
        return token
    # RFC 9110 11.6.2 allows one Authorization field; two could be read differently by the
    # gateway and by a service, so neither gets to choose. No credentials at all: RFC 6750 3.1,
    # no error= in the challenge.
    exc = BadRequest("Send exactly one Authorization header.") if values[1:] else MissingToken()
    record_refusal(exc, check="edge", span=span)
    raise exc


class Edge:
    """The gateway's one authorization decision for a call to a service behind it."""

    __slots__ = ("_exchange", "_state")

    def __init__(self, settings: GatewaySettings, state: State) -> None:
        # app.state: the verifier, federation and service tokens are filled in at startup.
        self._state = state
        self._exchange = settings.token_mode == "exchange"

    async def admit(
        self, method: str, path: str, token: str, service: str, span: trace.Span | None = None
    ) -> tuple[Principal, str]:
        """The principal and the token to send to ``service``, or the RelayshopError that
        refuses the call (401 for the token, 403 for the rules), recorded on ``span`` (the
        current span when None). The token sent is ``token`` itself only in relay mode for
        relayshop's own token: a caller may then pass the client's header on as it came."""
        try:
            principal, token = await self._authenticate(token, span)
        except RelayshopError as exc:
            record_refusal(exc, check="edge", span=span)  # who refused, and why
            raise
        # The user goes on the span before the rules run, so a refusal names whom it refused
        # (and GET /bff/trace shows a refused request to its user); a refusal below overwrites
        # the decision.
        record_allow(principal, check="edge", span=span)
        try:
            check_route(method, path, principal)
            if self._exchange:
                # RFC 8693 token exchange: a token for this service alone (audience, scope),
                # so a service that leaks it cannot replay it at another. Cached per token.
                tokens: ServiceTokens = self._state.service_tokens
                token = await tokens.exchange(token, service)
        except RelayshopError as exc:
            record_refusal(exc, check="edge", span=span)
            raise
        return principal, token

    async def _authenticate(self, token: str, span: trace.Span | None) -> tuple[Principal, str]:
        """The principal and the relayshop token it comes from: ``token`` itself, or relayshop's
        token for a trusted issuer's (federation.py)."""
        federation: EdgeFederation | None = getattr(self._state, "federation", None)
        if federation is not None and federation.is_foreign(token):
            (span or trace.get_current_span()).set_attribute("relayshop.token.federated", True)
            principal, token = await federation.authenticate(token)
        else:
            # Signature, claims and revocation (the platform verifier); InvalidToken is a 401.
            verifier: TokenVerifier = self._state.verifier
            principal = await verifier.verify(token)
        if principal.is_service:
            # Service tokens are for service-to-service calls inside; at the edge, a leaked one
            # must not open anything.
            raise InsufficientScope(
                "A service token cannot call the public API.", reason="service_at_edge"
            )
        return principal, token
