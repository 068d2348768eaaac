"""FastAPI dependencies that turn a relayed bearer token into a decision.

    CurrentUser                       the verified user behind the request (401 without one)
    dependencies=[Depends(require_roles("warehouse", "admin"))]
                                      the fine rule on a route, like Spring's @PreAuthorize
    dependencies=[Depends(require_caller(services={"orders"}, roles={"customer", "admin"}))]
                                      an internal operation: a user token AND a service token

A service proves who it is with its own client_credentials token in SERVICE_TOKEN_HEADER, sent
beside the user's relayed ``Authorization`` header. A user token alone never reaches an internal
operation; a service token alone is never a user. Nothing here reads an X-User-Id style header.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from .errors import InsufficientScope, MissingToken
from .tokens import Principal, TokenVerifier

SERVICE_TOKEN_HEADER = "x-service-token"

# The Authorize button in /docs: the OAuth2 password flow against the public token endpoint.
# tokenUrl is set per app in app.py (it must be absolute, auth lives on another port).
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


async def get_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    if not token:
        raise MissingToken()
    principal = await _verifier(request).verify(token)
    if principal.is_service:
        raise InsufficientScope("A service token cannot act as a user.", reason="service_as_user")
    request.state.principal = principal
    return principal


CurrentUser = Annotated[Principal, Depends(get_principal)]


def bearer_token(request: Request) -> str:
    """The raw relayed token, for calling the next hop with it (after get_principal ran)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise MissingToken()
    return token.strip()


def require_roles(*roles: str) -> Callable[[Principal], Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def check(user: CurrentUser) -> Principal:
        if not user.has_any_role(allowed):
            raise InsufficientScope(
                f"This needs one of the roles: {', '.join(sorted(allowed))}.", reason="role"
            )
        return user

    return check


async def get_calling_service(request: Request) -> Principal:
    token = request.headers.get(SERVICE_TOKEN_HEADER)
    if not token:
        raise MissingToken("This internal operation needs the calling service's token.")
    principal = await _verifier(request).verify(token)
    if not principal.is_service or not principal.client_id:
        raise InsufficientScope("The service token is not a service's token.", reason="caller")
    request.state.caller = principal
    return principal


CallingService = Annotated[Principal, Depends(get_calling_service)]


def require_caller(
    *, services: Iterable[str], roles: Iterable[str]
) -> Callable[..., Awaitable[Principal]]:
    """An internal operation: the user's roles AND the calling service, both checked here."""
    allowed_services, allowed_roles = frozenset(services), frozenset(roles)

    async def check(user: CurrentUser, caller: CallingService) -> Principal:
        if caller.client_id not in allowed_services:
            raise InsufficientScope(
                f"Only {', '.join(sorted(allowed_services))} may call this.", reason="caller"
            )
        if not user.has_any_role(allowed_roles):
            raise InsufficientScope(
                f"This needs one of the roles: {', '.join(sorted(allowed_roles))}.", reason="role"
            )
        return user

    return check
