"""FastAPI dependencies that turn a relayed bearer token into a decision.

    CurrentUser                       the verified user behind the request (401 without one)
    dependencies=[Depends(require_roles(Role.WAREHOUSE, Role.ADMIN, scope="inventory:write"))]
                                      the fine rule on a route, like Spring's @PreAuthorize
    dependencies=[Depends(require_scope("inventory:read"))]
                                      any signed-in role, with the scope
    dependencies=[Depends(require_caller(services={"orders"},
                                         roles={Role.CUSTOMER, Role.ADMIN}, scope="orders:write"))]
                                      an internal operation: a user token AND a service token
    if row is None or not owned_or_staff(row.owner_sub, user, staff=STAFF_READERS):
        raise NotFound(...)           ownership, in the handler: a stranger's row is a 404

Roles say what the user may do (roles.py), scopes what this token lets its client do (scopes.py):
a route needs both. A token without the route's scope gets 403 with ``WWW-Authenticate: Bearer
error="insufficient_scope", scope="<needed>"`` (RFC 6750 section 3.1).

A service proves who it is with its own client_credentials token in SERVICE_TOKEN_HEADER, sent
beside the user's relayed ``Authorization`` header. A user token alone never reaches an internal
operation; a service token alone is never a user. Nothing here reads an X-User-Id style header.

Every decision is written on the request's SERVER span, so a trace shows who let a request
through or refused it, and why (the token itself, or any secret, never goes on a span):

    relayshop.auth.check     edge (the gateway), service (a route's rule), internal_caller
    relayshop.auth.decision  allow | deny
    relayshop.auth.reason    expired, revoked, signature, audience, missing, role, caller,
                             not_owner, ... (InvalidToken.reason and InsufficientScope.reason)
    enduser.id, enduser.role the token's sub and roles; relayshop.caller: the calling service
    relayshop.token.aud, .scope, .act
                             the token this hop received: its audiences, scopes and act chain
                             (nearest actor first), so a trace shows the token narrow per hop

Each rule is also written into the route's OpenAPI operation as ``x-relayshop-access``
(document_access), so the docs say who may call what, and a test can hold the gateway's coarse
rules against the services' own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.security import OAuth2PasswordBearer
from opentelemetry import trace

from .errors import InsufficientScope, MissingToken, RelayshopError, TokenError
from .metrics import ACCESS_DENIALS, TOKEN_REJECTIONS
from .scopes import has_scope
from .tokens import Principal, TokenVerifier

# What a service uses; the rest is this module's own business.
__all__ = [
    "SERVICE_TOKEN_HEADER",
    "AccessRule",
    "CallingService",
    "CurrentUser",
    "api_routes",
    "bearer_token",
    "document_access",
    "owned_or_staff",
    "record_denial",
    "require_caller",
    "require_roles",
    "require_scope",
    "require_service",
    "route_access",
]

SERVICE_TOKEN_HEADER = "x-service-token"

# The Authorize button in /docs: the OAuth2 password flow against the public token endpoint.
# tokenUrl is set per app in docs.py (it must be absolute, auth lives on another port).
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token", auto_error=False)


# ---- decisions on the trace, and in the metrics ---------------------------------------------


def record_allow(
    principal: Principal, *, check: str = "service", span: trace.Span | None = None
) -> None:
    span = span or trace.get_current_span()
    if span.is_recording():  # unsampled requests skip building the attributes
        span.set_attributes(
            {
                "relayshop.auth.check": check,
                "relayshop.auth.decision": "allow",
                "enduser.id": principal.sub,
                "enduser.role": ",".join(principal.roles),
                "relayshop.token.aud": ",".join(principal.audience),
                "relayshop.token.scope": principal.scope,
                "relayshop.token.act": ",".join(principal.actors),
            }
        )


def record_denial(
    reason: str,
    *,
    check: str = "service",
    token_rejected: bool = False,
    span: trace.Span | None = None,
) -> None:
    """Note a refusal. Call it where a rule refuses without raising here (owned_or_staff does,
    for the 404 a stranger gets for someone else's order)."""
    (TOKEN_REJECTIONS if token_rejected else ACCESS_DENIALS).labels(check, reason).inc()
    span = span or trace.get_current_span()
    if span.is_recording():
        span.set_attributes(
            {
                "relayshop.auth.check": check,
                "relayshop.auth.decision": "deny",
                "relayshop.auth.reason": reason,
            }
        )


def denial_reason(exc: RelayshopError) -> str:
    """A short machine word: the error's own reason, else its title ("service_unavailable")."""
    reason = getattr(exc, "reason", None)
    return reason if isinstance(reason, str) else exc.title.lower().replace(" ", "_")


def record_refusal(exc: RelayshopError, *, check: str, span: trace.Span | None = None) -> None:
    record_denial(
        denial_reason(exc), check=check, token_rejected=isinstance(exc, TokenError), span=span
    )


# ---- the dependencies ------------------------------------------------------------------------


def _verifier(request: Request) -> TokenVerifier:
    verifier: TokenVerifier = request.app.state.verifier
    return verifier


async def _verify(request: Request, token: str, check: str) -> Principal:
    try:
        return await _verifier(request).verify(token)
    except RelayshopError as exc:  # InvalidToken (401), or 503 while revocations are unknown
        record_refusal(exc, check=check)
        raise


def _refuse(exc: RelayshopError, check: str) -> RelayshopError:
    record_refusal(exc, check=check)
    return exc


async def get_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    if not token:
        raise _refuse(MissingToken(), "service")
    principal = await _verify(request, token, "service")
    if principal.is_service:
        raise _refuse(
            InsufficientScope("A service token cannot act as a user.", reason="service_as_user"),
            "service",
        )
    record_allow(principal)
    return principal


CurrentUser = Annotated[Principal, Depends(get_principal)]


def bearer_token(request: Request) -> str:
    """The raw relayed token, for calling the next hop with it (after get_principal ran)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise MissingToken()
    return token.strip()


@dataclass(frozen=True)
class AccessRule:
    """What a route asks of the caller, as its dependencies check it."""

    roles: frozenset[str] | None = None  # the user's roles allowed; None: any signed-in user
    callers: frozenset[str] | None = None  # an internal operation: the calling services allowed
    service_only: bool = False  # a system operation: a listed service's own token, no user
    scope: str | None = None  # the scope the user's token must carry (scopes.py)

    def openapi(self) -> dict[str, Any]:
        if self.service_only:
            return {"service_token_of": sorted(self.callers or ())}
        access: dict[str, Any] = {"roles": sorted(self.roles) if self.roles else "any"}
        if self.scope is not None:
            access["scope"] = self.scope
        if self.callers is not None:
            access["via"] = sorted(self.callers)
        return access


def _check_scope(user: Principal, scope: str | None, check: str) -> None:
    if scope is not None and not has_scope(user.scope, scope):
        raise _refuse(
            InsufficientScope(
                f"This needs the scope {scope}; the token has: {user.scope or 'none'}.",
                reason="scope",
                scope=scope,
            ),
            check,
        )


def _check_roles(user: Principal, allowed: frozenset[str], check: str) -> None:
    if not user.has_any_role(allowed):
        raise _refuse(
            InsufficientScope(
                f"This needs one of the roles: {', '.join(sorted(allowed))}.", reason="role"
            ),
            check,
        )


def require_roles(
    *roles: str, scope: str | None = None
) -> Callable[[Principal], Awaitable[Principal]]:
    """The user's roles (any of them) and, given, the token's scope."""
    allowed = frozenset(roles)

    async def check(user: CurrentUser) -> Principal:
        _check_roles(user, allowed, "service")  # what the user may do, then what the token may
        _check_scope(user, scope, "service")
        return user

    check.access = AccessRule(roles=allowed, scope=scope)  # type: ignore[attr-defined]
    return check


def require_scope(scope: str) -> Callable[[Principal], Awaitable[Principal]]:
    """Any signed-in role, with ``scope`` in the token."""

    async def check(user: CurrentUser) -> Principal:
        _check_scope(user, scope, "service")
        return user

    check.access = AccessRule(scope=scope)  # type: ignore[attr-defined]
    return check


async def get_calling_service(request: Request) -> Principal:
    token = request.headers.get(SERVICE_TOKEN_HEADER)
    if not token:
        raise _refuse(
            MissingToken("This internal operation needs the calling service's token."),
            "internal_caller",
        )
    principal = await _verify(request, token, "internal_caller")
    if not principal.is_service or not principal.client_id:
        raise _refuse(
            InsufficientScope("The service token is not a service's token.", reason="caller"),
            "internal_caller",
        )
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("relayshop.caller", principal.client_id)
    return principal


CallingService = Annotated[Principal, Depends(get_calling_service)]


def require_caller(
    *, services: Iterable[str], roles: Iterable[str], scope: str | None = None
) -> Callable[..., Awaitable[Principal]]:
    """An internal operation: the user's roles and scope AND the calling service, all checked
    here. A user token that was exchanged (it has an ``act`` chain, RFC 8693 section 4.1) must
    have been exchanged by the very service calling with it: a token another service obtained
    cannot be replayed beside this caller's own identity."""
    allowed_services, allowed_roles = frozenset(services), frozenset(roles)

    async def check(user: CurrentUser, caller: CallingService) -> Principal:
        if caller.client_id not in allowed_services:
            raise _refuse(
                InsufficientScope(
                    f"Only {', '.join(sorted(allowed_services))} may call this.", reason="caller"
                ),
                "internal_caller",
            )
        if user.actors and user.actors[0] != caller.client_id and not _self_exchanged(user):
            raise _refuse(
                InsufficientScope(
                    "The user's token was exchanged by another service than the caller.",
                    reason="actor",
                ),
                "internal_caller",
            )
        _check_roles(user, allowed_roles, "internal_caller")
        _check_scope(user, scope, "internal_caller")
        record_allow(user, check="internal_caller")
        return user

    check.access = AccessRule(roles=allowed_roles, callers=allowed_services, scope=scope)  # type: ignore[attr-defined]
    return check


def _self_exchanged(user: Principal) -> bool:
    """The nearest actor obtained the token for its own audience: the gateway exchanging a
    trusted issuer's token for a relayshop user token, which then travels as a signed-in user's
    does (relayed unchanged, in relay mode). It was not exchanged for a hop, so its act names no
    caller. A token exchanged for a hop is addressed to that hop alone, never to its actor."""
    return f"urn:relayshop:{user.actors[0]}" in user.audience  # no lookup: any name is safe


def owned_or_staff(owner_sub: str, user: Principal, *, staff: Collection[str]) -> bool:
    """Whether ``user`` may act on a row owned by ``owner_sub``: its owner, or a user with one of
    the ``staff`` roles (roles.STAFF_READERS to read). The route's rule already let the user in;
    this is the check of the row itself. A refusal is recorded as "not_owner", on the trace and in
    the metrics; the caller answers it, usually with the 404 of an unknown id, so that a stranger
    learns nothing, not even that the id exists."""
    if owner_sub == user.sub or user.has_any_role(staff):
        return True
    record_denial("not_owner")
    return False


# ---- system operations: a service acting on its own behalf, no user present ------------------


def require_service(*, services: Iterable[str]) -> Callable[..., Awaitable[Principal]]:
    """A system operation: ``dependencies=[Depends(require_service(services={"orders"}))]``.

    For work no user is present for, such as orders' reconciler finishing an order whose
    customer's token expired long ago. The calling service's own client_credentials token is THE
    bearer token, in the ``Authorization`` header (RFC 6750 section 2.1; relay.ServiceAuth sends
    it): there is no user token to relay, and SERVICE_TOKEN_HEADER is not read here. A user
    token is refused whatever its roles (403), and so is the token of a service not listed.
    Keep such routes few and narrow (look up, compensate): they act for every user at once.
    """
    allowed = frozenset(services)

    async def check(
        request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
    ) -> Principal:
        if not token:
            raise _refuse(
                MissingToken("This system operation needs the calling service's own token."),
                "system_caller",
            )
        principal = await _verify(request, token, "system_caller")
        # A client_credentials token: the service role, and sub = client_id (no user behind it).
        if (
            not principal.is_service
            or principal.client_id not in allowed
            or principal.sub != principal.client_id
        ):
            raise _refuse(
                InsufficientScope(
                    f"Only the {', '.join(sorted(allowed))} service may call this.",
                    reason="caller",
                ),
                "system_caller",
            )
        record_allow(principal, check="system_caller")
        return principal

    check.access = AccessRule(callers=allowed, service_only=True)  # type: ignore[attr-defined]
    return check


def _dependencies(dependant: Dependant) -> Iterable[Dependant]:
    for dependency in dependant.dependencies:
        yield dependency
        yield from _dependencies(dependency)


def api_routes(app: FastAPI) -> Iterable[Any]:
    """Every API route of the app as it serves it (path with its router's prefix, methods, and
    dependencies, the router's included), as FastAPI itself walks them for the OpenAPI."""
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def route_access(dependant: Dependant) -> AccessRule | None:
    """The rule a route's dependencies apply, or None for a route open to anyone."""
    calls = [dependency.call for dependency in _dependencies(dependant)]
    for call in calls:
        rule = getattr(call, "access", None)
        if isinstance(rule, AccessRule):
            return rule
    return AccessRule() if get_principal in calls else None


def document_access(app: FastAPI) -> None:
    """Write each route's rule into its OpenAPI operation as ``x-relayshop-access``: ``{"roles":
    [...]}`` (or "any" signed-in role), with ``"via": [...]`` for an internal operation, or
    ``{"service_token_of": [...]}`` for a system operation."""
    original: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = original()
        for route in api_routes(app):
            rule = route_access(route.dependant)
            operations = schema.get("paths", {}).get(route.path_format, {})
            for method in route.methods:
                if rule is not None and method.lower() in operations:
                    operations[method.lower()]["x-relayshop-access"] = rule.openapi()
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
