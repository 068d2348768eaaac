"""Sign in to the console with a trusted identity provider (Keycloak, Auth0, ...): OpenID Connect.

    GET /console/oidc/providers         the issuers offered ("Sign in with <name>")
    GET /console/oidc/login?issuer=...  start: off to the issuer's authorization endpoint
    GET /console/oidc/callback          the issuer's answer: the code redeemed, a session made
    GET /console/oidc/logout?id=...     after POST /bff/logout: on to the issuer's logout

Offered for each RELAYSHOP_TRUSTED_ISSUERS entry with a ``console_client_id`` (issuers.py). The
console is then a public client of that issuer, like a browser app, but it is the gateway that
holds every token; the browser only follows redirects and gets the session cookie:

    browser            gateway (this module)                 issuer            auth
      | GET /login ------> | state, nonce, PKCE verifier kept in Redis (10 min)
      | <-- 303 -----------| to authorization_endpoint?code_challenge=S256(verifier)&state&nonce
      | -- sign in, consent ---------------------------------------> |
      | <-- 303 to /console/oidc/callback?code&state ---------------- |
      | GET /callback ---> | state = this browser's, taken once
      |                    | POST token_endpoint: code + code_verifier --> |
      |                    | <-- access token, ID token ------------------ |
      |                    | ID token: signature, iss, aud, azp, nonce
      |                    | access token: federated as the proxy does (federation.py) ------> |
      |                    | <-- relayshop token (RFC 8693 exchange) ------------------------- |
      | <-- 303 to /, session cookie (tokens stay in the BFF session store, session.py)

- PKCE S256 (RFC 7636; required for every client by RFC 9700 section 2.1.1): a code stolen on
  its way back is useless without the verifier, which never left the gateway.
- ``state`` (RFC 6749 section 10.12) is bound to this browser by a cookie and used once: no one
  can make a victim's console finish a sign-in the attacker started (login CSRF).
- ``nonce`` (OpenID Connect Core section 3.1.2.1) is checked in the ID token: no replayed one.
- The access token is checked and exchanged exactly as the proxy does with a bearer token
  (issuers.py: aud, azp, typ, roles; auth: revocation). The ID token's ``sub`` must be its
  ``sub``: the identity shown is the identity that acts.
- The discovery document gives the endpoints. The authorization and logout endpoints, which the
  browser visits, must be on the issuer's origin; the token endpoint, which receives the code
  and verifier, on the origin relayshop fetched the document from (issuers.DiscoveredKeys says
  why; ``discovery_url`` when containers reach the issuer under another name).

Renewal: there is no refresh token here. When relayshop's token nears its end, the BFF exchanges
the issuer's access token again (bff_auth.py); once that has expired too (Keycloak's and
tools/idp's live 5 minutes), the session ends and the user signs in again. The issuer's own
session usually makes that a pair of redirects without a password.

Logout: POST /bff/logout revokes relayshop's tokens at auth as for any session and, where the
discovery document names an ``end_session_endpoint`` (OpenID Connect RP-Initiated Logout 1.0),
answers a link to GET /console/oidc/logout, which sends the browser there with ``id_token_hint``
and ``post_logout_redirect_uri`` (the console's page): the issuer's session ends too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from typing import Annotated, Any
from urllib.parse import urlencode

import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse
from redis.exceptions import RedisError
from relayshop_platform.errors import InvalidToken, NotFound, TokenError, UpstreamUnavailable
from relayshop_platform.issuers import TrustedIssuer, same_origin, stable_sub

from ..bff_auth import revoke_at_auth
from ..bff_session import PRIVATE, cookie_session_id, is_local, session_store, set_cookie
from ..config import GatewaySettings
from ..federation import EdgeFederation
from ..session import BffSession, new_secret

log = logging.getLogger("relayshop.gateway.oidc")

router = APIRouter(prefix="/console/oidc", tags=["console"])

# How long a sign-in may take at the issuer (typing a password, a second factor).
PENDING_SECONDS = 600
# The cookie binding a sign-in under way to the browser that started it. SameSite=Lax, not
# Strict: it must come along on the issuer's redirect back, a top-level GET from another site.
# __Secure- (RFC 6265bis section 4.1.3.1): a browser accepts it only over HTTPS, with Secure.
STATE_COOKIE = "__Secure-relayshop_oidc"
LOCAL_STATE_COOKIE = "relayshop_oidc"
# What an error code of the issuer may look like when it is passed on to the page.
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


def console_issuers(settings: GatewaySettings) -> dict[str, TrustedIssuer]:
    """The trusted issuers the console may sign in with, by issuer."""
    return {item.issuer: item for item in settings.trusted_issuers if item.console_client_id}


def _federation(request: Request) -> EdgeFederation:
    federation: EdgeFederation | None = request.app.state.federation
    if federation is None:  # no trusted issuer at all
        raise NotFound("No identity provider is configured.")
    return federation


async def _discovery(request: Request, issuer: str) -> tuple[dict[str, Any], str]:
    """The issuer's discovery document (already checked to name it) and where it came from."""
    source = _federation(request).external.keys.get(issuer)
    if source is None:  # no longer trusted (a sign-in or logout begun before a restart)
        raise UpstreamUnavailable("The identity provider is not trusted.")
    if source.document is None:
        await source.discover()
    if source.document is None:
        raise UpstreamUnavailable("The identity provider's discovery document is unavailable.")
    return source.document, source.discovery_url


def _endpoint(document: dict[str, Any], name: str, origin: str) -> str | None:
    """An endpoint of the discovery document, on ``origin`` or refused (None when absent)."""
    value = document.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not same_origin(value, origin):
        raise UpstreamUnavailable(f"The identity provider's {name} is not on its own origin.")
    return value


def _with_query(url: str, params: dict[str, str]) -> str:
    # An endpoint may carry a query of its own (OpenID Connect Core 3.1.2.1 keeps it).
    return url + ("&" if "?" in url else "?") + urlencode(params)


def _state_cookie(request: Request) -> str:
    return LOCAL_STATE_COOKIE if is_local(request) else STATE_COOKIE


def _back_to_console(
    request: Request, error: str | None = None, *, forget_state: bool = True
) -> RedirectResponse:
    """To the console's page, with ``?signin_error=<code>`` when the sign-in failed; the state
    cookie cleared unless ``forget_state`` is False (a callback that was not this browser's
    must not cancel the sign-in it has under way)."""
    target = "/" if error is None else "/?" + urlencode({"signin_error": error})
    response = RedirectResponse(target, status_code=303, headers=PRIVATE)
    if forget_state:
        response.delete_cookie(
            _state_cookie(request), path=router.prefix + "/", secure=not is_local(request)
        )
    return response


@router.get("/providers", summary="The identity providers to sign in with")
async def providers(request: Request) -> JSONResponse:
    settings: GatewaySettings = request.app.state.settings
    offered = [
        {"issuer": item.issuer, "name": item.display_name}
        for item in console_issuers(settings).values()
    ]
    return JSONResponse({"providers": offered}, headers=PRIVATE)


@router.get(
    "/login",
    summary="Sign in at an identity provider (a redirect to it)",
    response_class=RedirectResponse,
    status_code=303,
    responses={404: {"description": "Not an identity provider the console offers"}},
)
async def login(request: Request, issuer: Annotated[str, Query(max_length=2048)]) -> Response:
    settings: GatewaySettings = request.app.state.settings
    trusted = console_issuers(settings).get(issuer)
    if trusted is None or trusted.console_client_id is None:
        raise NotFound("The console offers no sign-in with this issuer.")
    try:
        document, _ = await _discovery(request, trusted.issuer)
        authorize = _endpoint(document, "authorization_endpoint", trusted.issuer)
    except UpstreamUnavailable as exc:  # the page says so; the discovery is retried meanwhile
        log.warning("no sign-in at %s: %s", trusted.issuer, exc.detail)
        return _back_to_console(request, "provider_unavailable")
    if authorize is None:
        return _back_to_console(request, "provider_unavailable")
    state, nonce = new_secret(), new_secret()
    # RFC 7636 section 4.1: 43 to 128 characters of [A-Za-z0-9-._~]; 48 random bytes give 64.
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    redirect_uri = str(request.url_for("oidc_callback"))
    pending = {"issuer": trusted.issuer, "nonce": nonce, "verifier": verifier}
    try:
        await session_store(request).put_once(
            "oidc", state, {**pending, "redirect_uri": redirect_uri}, PENDING_SECONDS
        )
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    target = _with_query(
        authorize,
        {
            "response_type": "code",
            "client_id": trusted.console_client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge.rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        },
    )
    response = RedirectResponse(target, status_code=303, headers=PRIVATE)
    response.set_cookie(
        _state_cookie(request),
        state,
        max_age=PENDING_SECONDS,
        path=router.prefix + "/",  # sent to this module's routes only
        secure=not is_local(request),
        httponly=True,
        samesite="lax",
    )
    return response


@router.get(
    "/callback",
    name="oidc_callback",
    summary="Where the identity provider sends the browser back (a redirect to the console)",
    response_class=RedirectResponse,
    status_code=303,
)
async def callback(
    request: Request,
    state: Annotated[str | None, Query(max_length=256)] = None,
    code: Annotated[str | None, Query(max_length=4096)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> Response:
    bound = request.cookies.get(_state_cookie(request))
    # RFC 6749 section 10.12: the state must be the one this browser's sign-in sent.
    if not state or not bound or not hmac.compare_digest(state.encode(), bound.encode()):
        return _back_to_console(request, "state_mismatch", forget_state=False)
    store = session_store(request)
    try:
        pending = await store.take_once("oidc", state)  # once: a replayed callback finds nothing
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if pending is None:
        return _back_to_console(request, "sign_in_expired")
    if error is not None or code is None:  # RFC 6749 section 4.1.2.1: access_denied, ...
        return _back_to_console(
            request, error if error and _ERROR_CODE.fullmatch(error) else "no_code"
        )
    settings: GatewaySettings = request.app.state.settings
    trusted = console_issuers(settings).get(str(pending.get("issuer")))
    if trusted is None or trusted.console_client_id is None:
        return _back_to_console(request, "unknown_issuer")
    try:
        session = await _signed_in(request, trusted, trusted.console_client_id, code, pending)
    except TokenError as exc:  # the code, the ID token or the access token refused
        log.warning("sign-in at %s refused: %s", trusted.issuer, exc.detail)
        return _back_to_console(request, "sign_in_refused")
    except UpstreamUnavailable as exc:  # the provider or auth did not answer
        log.warning("sign-in at %s failed: %s", trusted.issuer, exc.detail)
        return _back_to_console(request, "provider_unavailable")

    try:
        # As POST /bff/login: a new session id (no fixation), a previous session here ends.
        old_id = cookie_session_id(request)
        old = await store.get(old_id) if old_id is not None else None
        if old_id is not None:
            await store.delete(old_id)
        # The session cannot outlive the issuer's access token: nothing could renew it then.
        lifetime = int((session.idp_expires_at or 0) - time.time())
        session_id = await store.create(session, ttl_seconds=max(lifetime, 1))
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if old is not None:
        await revoke_at_auth(request, old)
    response = _back_to_console(request)
    set_cookie(request, response, session_id, store.ttl_seconds)
    return response


async def _signed_in(
    request: Request,
    trusted: TrustedIssuer,
    client_id: str,
    code: str,
    pending: dict[str, Any],
) -> BffSession:
    """Redeem the code (with the PKCE verifier), check both tokens, federate: a new session."""
    document, fetched_from = await _discovery(request, trusted.issuer)
    token_endpoint = _endpoint(document, "token_endpoint", fetched_from)
    if token_endpoint is None:
        raise UpstreamUnavailable("The identity provider names no token endpoint.")
    http: httpx.AsyncClient = request.app.state.http
    try:
        # RFC 6749 section 4.1.3 with RFC 7636 section 4.5; a public client: client_id, no secret.
        answer = await http.post(
            token_endpoint,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": str(pending["redirect_uri"]),
                "client_id": client_id,
                "code_verifier": str(pending["verifier"]),
            },
            headers={"Accept": "application/json"},
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        raise UpstreamUnavailable("The identity provider's token endpoint is unreachable.") from exc
    try:
        tokens = answer.json() if answer.status_code == 200 else {}
    except ValueError:
        tokens = {}
    access_token, id_token = tokens.get("access_token"), tokens.get("id_token")
    if answer.status_code >= 500:
        raise UpstreamUnavailable(
            f"The identity provider's token endpoint answered {answer.status_code}."
        )
    # RFC 6749 section 5.1: token_type says how the token is used; relayshop takes bearer
    # tokens (RFC 6750) only, not a sender-constrained kind such as DPoP's (RFC 9449).
    bearer = str(tokens.get("token_type", "")).lower() == "bearer"
    if not isinstance(access_token, str) or not isinstance(id_token, str) or not bearer:
        # RFC 6749 section 5.2: invalid_grant for a code that is unknown, spent or not ours.
        raise InvalidToken(
            "code", f"The identity provider did not redeem the code ({answer.status_code})."
        )
    federation = _federation(request)
    claims = await federation.external.verify_id_token(
        id_token, trusted.issuer, client_id, str(pending["nonce"])
    )
    identity = await federation.external.verify(access_token)
    principal, ours = await federation.authenticate(access_token)  # as the proxy: auth exchanges
    if identity.issuer != trusted.issuer or principal.sub != stable_sub(
        trusted.issuer, claims["sub"]
    ):
        raise InvalidToken("subject", "The ID token and the access token name other users.")
    # Shown on the page only (kept in the session, sent nowhere): the issuer's username when
    # it gives one, else its sub.
    shown = claims.get("preferred_username")
    username = shown if isinstance(shown, str) and 0 < len(shown) <= 64 else claims["sub"][:64]
    return BffSession(
        username=username,
        sub=principal.sub,
        roles=list(principal.roles),
        access_token=ours,
        access_expires_at=float(principal.exp),
        refresh_token="",
        csrf_token=new_secret(),
        idp=trusted.issuer,
        idp_access_token=access_token,
        idp_expires_at=float(identity.exp),
        idp_id_token=id_token,
    )


@router.get(
    "/logout",
    summary="On to the identity provider's logout (a redirect)",
    response_class=RedirectResponse,
    status_code=303,
)
async def logout(request: Request, id: Annotated[str, Query(max_length=128)]) -> Response:
    """The link POST /bff/logout answered: once, then the issuer's end_session_endpoint."""
    try:
        ending = await session_store(request).take_once("logout", id)
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if ending is None:
        return _back_to_console(request)
    try:
        document, _ = await _discovery(request, str(ending["issuer"]))
        end_session = _endpoint(document, "end_session_endpoint", str(ending["issuer"]))
    except (UpstreamUnavailable, NotFound):  # relayshop's session has ended all the same
        end_session = None
    if end_session is None:  # the issuer has no RP-initiated logout: only ours ended
        return _back_to_console(request)
    trusted = console_issuers(request.app.state.settings).get(str(ending["issuer"]))
    params = {
        # OpenID Connect RP-Initiated Logout 1.0 section 2: which session to end, and where to
        # come back to (registered with the client, as the redirect_uri is).
        "id_token_hint": str(ending["id_token"]),
        "post_logout_redirect_uri": str(request.url_for("page")),
    }
    if trusted is not None and trusted.console_client_id:
        params["client_id"] = trusted.console_client_id
    return RedirectResponse(_with_query(end_session, params), status_code=303, headers=PRIVATE)
