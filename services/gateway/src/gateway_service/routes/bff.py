"""The backend-for-frontend (BFF) of the browser console: the page signs in here, never at auth.

    POST /bff/login                 username + password -> tokens kept in Redis, a cookie out
    GET  /bff/session               who am I (username, roles) and this session's CSRF token
    POST /bff/logout                revoke the tokens at auth, drop the session, clear the cookie
    GET|POST|PUT /bff/api/{path}    relay to /api/{path} with the session's access token
    GET  /bff/trace/{trace_id}      the spans of one of your own requests (the hop inspector)
    GET  /bff/demo/foreign-order    an order id of someone else (for the refusal demo)
    POST /bff/demo/revocation-check the old, revoked token tried at the gateway and every service

Why a BFF (draft-ietf-oauth-browser-based-apps, "Backend For Frontend"): a token that JavaScript
can read is a token any injected script can steal. Here the tokens never leave the gateway: the
browser holds only a random session id in a cookie that is HttpOnly (no script can read it),
Secure (never sent over plain HTTP) and SameSite=Strict (not sent on cross-site requests), named
with the ``__Host-`` prefix (RFC 6265bis section 4.1.3.2: the browser accepts it only when Secure,
Path=/ and without Domain, so a sibling subdomain cannot plant or overwrite it).

On plain-HTTP localhost (``make run``) the browser would drop a Secure cookie and refuse the
``__Host-`` prefix without Secure, so the cookie is ``relayshop_session`` without Secure there, and
only there. Any other host gets the strict cookie, and a request is only ever read with the cookie
name its host allows.

CSRF (cross-site request forgery) defence, in layers: SameSite=Strict; every state-changing
request must come from this origin (Origin and the Fetch Metadata header Sec-Fetch-Site, checked
first), and must carry X-CSRF-Token equal to this session's token (the synchronizer-token
pattern; a cross-site form cannot set a custom header). Note that SameSite alone is not enough:
``http://127.0.0.1:8000`` and ``http://127.0.0.1:9999`` are the *same site*, so a page on another
port gets the cookie sent along; the origin check is what refuses it.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

import httpx
import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from relayshop_platform.errors import (
    InsufficientScope,
    InvalidInput,
    NotFound,
    RelayshopError,
    TokenError,
    UpstreamUnavailable,
)
from relayshop_platform.relay import upstream_error
from relayshop_platform.security import record_allow, record_refusal
from relayshop_platform.tokens import TokenVerifier

from .. import trace_files
from ..config import GatewaySettings
from ..proxy import routing_table
from ..rules import check_route
from ..session import BffSession, SessionStore, new_secret

log = logging.getLogger("relayshop.gateway.bff")

SECURE_COOKIE = "__Host-relayshop_session"
LOCAL_COOKIE = "relayshop_session"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
CSRF_HEADER = "x-csrf-token"
# A 128-character username and a 1024-character password, each character up to 12 bytes once
# JSON escapes it (a surrogate pair, \\ud83d\\ude00): what an honest sign-in can weigh.
MAX_LOGIN_BODY = 16 * 1024
# Sent with every BFF answer: it describes one user's session, so no cache may keep it.
PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class NotSignedIn(RelayshopError):
    # A cookie session has no standard challenge, so no WWW-Authenticate (unlike a bearer 401).
    status = 401
    title = "Unauthorized"


class CrossSiteRefused(RelayshopError):
    status = 403
    title = "Forbidden"


class TooManyAttempts(RelayshopError):
    status = 429
    title = "Too Many Requests"

    def __init__(self, detail: str, retry_after: str) -> None:
        super().__init__(detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": self.retry_after}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One Redis client for the sessions (a router lifespan: runs after the platform's startup,
    so app.state.settings is there)."""
    settings: GatewaySettings = app.state.settings
    client = aioredis.Redis.from_url(
        # Its own ACL user: the sessions' keys only, never the revocations (redis_acl.py).
        settings.redis_connection_url("gateway-console"),
        socket_timeout=5,
    )
    app.state.bff_sessions = SessionStore(client, settings.bff_session_seconds)
    try:
        yield
    finally:
        await client.aclose()


router = APIRouter(prefix="/bff", tags=["console"], lifespan=lifespan)


# -- the cookie and the checks ------------------------------------------------------------------
def _is_local(request: Request) -> bool:
    return request.url.scheme == "http" and (request.url.hostname or "") in LOCAL_HOSTS


def _cookie_name(request: Request) -> str:
    return LOCAL_COOKIE if _is_local(request) else SECURE_COOKIE


def _set_cookie(request: Request, response: Response, session_id: str, max_age: int) -> None:
    response.set_cookie(
        _cookie_name(request),
        session_id,
        max_age=max_age,
        path="/",  # required by __Host- (and no Domain attribute: host-only)
        secure=not _is_local(request),
        httponly=True,
        samesite="strict",
    )


def _clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        _cookie_name(request),
        path="/",
        secure=not _is_local(request),
        httponly=True,
        samesite="strict",
    )


def _json(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=PRIVATE)


async def same_origin_only(request: Request) -> None:
    """Refuse a request a browser made on behalf of another site (checked before anything else).

    Sec-Fetch-Site (Fetch Metadata) is set by the browser and cannot be forged by a page; Origin
    (RFC 6454) covers browsers without it. A client that sends neither is not a browser acting
    for another site; it still needs the CSRF token for anything that changes state."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        raise CrossSiteRefused(f"Cross-site request refused (Sec-Fetch-Site: {fetch_site}).")
    origin = request.headers.get("origin")
    if origin is not None:
        host = request.headers.get("host", "")
        if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
            raise CrossSiteRefused("Cross-origin request refused (Origin is not this site).")


SameOrigin = Depends(same_origin_only)


def _store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.bff_sessions
    return store


def _session_id(request: Request) -> str | None:
    # Read only the cookie name this host may use: on a real host a plain "relayshop_session"
    # (which any subdomain could set) is never taken for the __Host- one.
    value = request.cookies.get(_cookie_name(request))
    return value if value and len(value) <= 128 else None


async def _load(request: Request) -> tuple[str, BffSession]:
    session_id = _session_id(request)
    if session_id is None:
        raise NotSignedIn("Sign in first.")
    try:
        session = await _store(request).get(session_id)
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if session is None:
        raise NotSignedIn("Your session has ended; sign in again.")
    return session_id, session


async def signed_in(request: Request) -> tuple[str, BffSession]:
    return await _load(request)


async def signed_in_with_csrf(request: Request) -> tuple[str, BffSession]:
    """For state-changing requests: the session AND its CSRF token in X-CSRF-Token."""
    session_id, session = await _load(request)
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise CrossSiteRefused("Missing or wrong X-CSRF-Token.")
    return session_id, session


Session = Annotated[tuple[str, BffSession], Depends(signed_in)]
CsrfSession = Annotated[tuple[str, BffSession], Depends(signed_in_with_csrf)]


def _view(session: BffSession) -> dict[str, Any]:
    """What the page may know: never a token, only the CSRF token it must echo back."""
    return {
        "signed_in": True,
        "username": session.username,
        "sub": session.sub,
        "roles": session.roles,
        "csrf_token": session.csrf_token,
    }


# -- talking to auth ---------------------------------------------------------------------------
async def _token_request(request: Request, form: dict[str, str]) -> dict[str, Any]:
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


async def _new_session(request: Request, tokens: dict[str, Any], username: str) -> BffSession:
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


async def _fresh_access_token(request: Request, session_id: str, session: BffSession) -> BffSession:
    """The session with an access token good for at least the refresh margin (RFC 6749 sec. 6)."""
    settings: GatewaySettings = request.app.state.settings
    margin = settings.bff_refresh_margin_seconds
    if not session.expires_within(margin):
        return session
    store = _store(request)
    try:
        async with store.refresh_lock(session_id):
            current = await store.get(session_id)  # another request may have refreshed already
            if current is None:
                raise NotSignedIn("Your session has ended; sign in again.")
            if not current.expires_within(margin):
                return current
            try:
                tokens = await _token_request(
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


async def _read_body(request: Request, limit: int) -> bytes:
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise InvalidInput(f"The body is larger than {limit} bytes.")
    return body


def _credentials(content_type: str, body: bytes) -> tuple[str, str]:
    fields: dict[str, Any]
    try:
        if content_type.startswith("application/json"):
            fields = json.loads(body)
            if not isinstance(fields, dict):
                raise ValueError
        else:
            fields = {k: v[0] for k, v in parse_qs(body.decode(), max_num_fields=10).items()}
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("Send username and password as JSON or as a form.") from None
    username, password = fields.get("username"), fields.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise InvalidInput("Send username and password as JSON or as a form.")
    if len(username) > 128 or len(password) > 1024:
        raise InvalidInput("The username or password is too long.")
    return username, password


# -- the routes --------------------------------------------------------------------------------
# What each route may answer besides 200, for its OpenAPI operation. The session is a cookie, not
# a bearer token, so the platform cannot infer 401 and 403 from a security scheme: they are named.
def answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: {"description": _ANSWERS[status]} for status in statuses}


_ANSWERS = {
    401: "Not signed in, the session has ended, or the sign-in was refused",
    403: "A cross-site request (Origin, Sec-Fetch-Site) or a missing or wrong X-CSRF-Token",
    404: "Nothing of yours there",
    422: "The body is not what this route reads",
    429: "Too many failed sign-ins; Retry-After says when to try again",
    503: "The session store or the auth service is unavailable",
}


def json_body(**properties: dict[str, Any]) -> dict[str, Any]:
    """openapi_extra for a route that reads its JSON body itself (no pydantic model)."""
    schema = {
        "type": "object",
        "required": list(properties),
        "properties": properties,
        "additionalProperties": False,
    }
    content = {"application/json": {"schema": schema}}
    return {"requestBody": {"required": True, "content": content}}


@router.post(
    "/login",
    dependencies=[SameOrigin],
    summary="Sign in; the tokens stay here",
    responses=answers(401, 403, 422, 429, 503),
    openapi_extra=json_body(
        username={"type": "string", "minLength": 1, "maxLength": 128},
        password={"type": "string", "maxLength": 1024},
    ),
)
async def login(request: Request) -> JSONResponse:
    # No CSRF token yet (no session), so the origin check above is the login-CSRF defence.
    username, password = _credentials(
        request.headers.get("content-type", ""), await _read_body(request, MAX_LOGIN_BODY)
    )
    tokens = await _token_request(
        request, {"grant_type": "password", "username": username, "password": password}
    )
    session = await _new_session(request, tokens, username)
    store = _store(request)
    try:
        # A new id on every sign-in (no session fixation); a previous session here ends for good.
        old_id = _session_id(request)
        old = await store.get(old_id) if old_id is not None else None
        if old_id is not None:
            await store.delete(old_id)
        session_id = await store.create(session)
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if old is not None:
        await _revoke_at_auth(request, old)
    response = _json(_view(session))
    _set_cookie(request, response, session_id, store.ttl_seconds)
    return response


@router.get("/session", summary="Who am I (never a token)", responses=answers(503))
async def who_am_i(request: Request) -> JSONResponse:
    try:
        _, session = await _load(request)
    except NotSignedIn:
        return _json({"signed_in": False})
    return _json(_view(session))


@router.post(
    "/logout",
    dependencies=[SameOrigin],
    summary="Revoke the tokens, end the session",
    responses=answers(401, 403, 503),
)
async def logout(request: Request, current: CsrfSession) -> JSONResponse:
    session_id, session = current
    revoked = await _revoke_at_auth(request, session)
    store = _store(request)
    try:
        await store.delete(session_id)
        demo_id = await store.remember_revoked(session.access_token) if revoked else None
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    response = _json({"signed_in": False, "revoked": revoked, "revocation_check": demo_id})
    _clear_cookie(request, response)
    return response


async def _revoke_at_auth(request: Request, session: BffSession) -> bool:
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
        gone = await http.post(
            f"{settings.auth_url}/auth/revoke",
            data={"token": session.refresh_token, "token_type_hint": "refresh_token"},
        )
    except httpx.HTTPError as exc:
        log.warning("could not revoke a console session at auth: %r", exc)
        return False
    return out.status_code in (204, 401) and gone.status_code == 200


ApiPath = Annotated[str, Path(max_length=512, pattern=r"^[A-Za-z0-9._~/-]+$")]


# Past the session checks, the answer is the service's own, relayed: its /docs lists them.
RELAYED = {**answers(401, 403, 404, 422, 503), "default": {"description": "The service's answer"}}


@router.get("/api/{path:path}", summary="Read /api/{path} as yourself", responses=RELAYED)
@router.post(
    "/api/{path:path}",
    summary="POST to /api/{path} as yourself (CSRF token needed)",
    responses=RELAYED,
)
@router.put(
    "/api/{path:path}",
    summary="PUT to /api/{path} as yourself (CSRF token needed)",
    responses=RELAYED,
)
async def relay(path: ApiPath, request: Request) -> Response:
    if request.method != "GET":  # state-changing: same origin AND the CSRF token
        await same_origin_only(request)
        session_id, session = await signed_in_with_csrf(request)
    else:
        session_id, session = await signed_in(request)
    settings: GatewaySettings = request.app.state.settings
    full_path = "/api/" + path
    if any(segment in ("", ".", "..") for segment in path.split("/")):
        raise InvalidInput("The path must not contain '.', '..' or empty segments.")
    upstream = next(
        (
            u
            for u in routing_table(settings)
            if u.needs_token and (full_path == u.prefix or full_path.startswith(u.prefix + "/"))
        ),
        None,
    )
    if upstream is None:
        raise NotFound("No service serves this path.")

    session = await _fresh_access_token(request, session_id, session)
    verifier: TokenVerifier = request.app.state.verifier
    try:
        # The same edge checks as the proxy: a valid, unrevoked token, then the route rules;
        # the decision goes on this request's span, as the proxy and every service record theirs.
        principal = await verifier.verify(session.access_token)
    except TokenError as exc:
        record_refusal(exc, check="edge")
        await _store(request).delete(session_id)  # revoked elsewhere (logout-all): it is over
        raise NotSignedIn(f"Your session's token was refused: {exc.detail}") from exc
    # The user goes on the span before the rules run: GET /bff/trace shows a trace only to the
    # user whose gateway span this is, refusals included.
    record_allow(principal, check="edge")
    try:
        check_route(request.method, full_path, principal)
    except InsufficientScope as exc:
        record_refusal(exc, check="edge")
        raise

    body = b""
    if request.method != "GET":
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise InvalidInput("Send JSON (Content-Type: application/json).")
        body = await _read_body(request, settings.max_body_bytes)
    headers = {
        "Authorization": f"Bearer {session.access_token}",
        "Accept": "application/json",
        "X-Request-ID": request.state.request_id,
    }
    if body:
        headers["Content-Type"] = "application/json"
    if key := request.headers.get("idempotency-key"):
        headers["Idempotency-Key"] = key
    if request.client:
        headers["X-Forwarded-For"] = request.client.host
    target = upstream.base_url + full_path
    if request.url.query:
        target += "?" + request.url.query
    # The platform's instrumented client adds a CLIENT span and the W3C traceparent, so the
    # services' spans join this request's trace.
    http: httpx.AsyncClient = request.app.state.http
    try:
        answer = await http.request(request.method, target, content=body, headers=headers)
    except httpx.HTTPError as exc:
        raise upstream_error(exc, upstream.name) from exc
    if request.method == "POST" and full_path == "/api/orders" and answer.status_code < 500:
        await _remember_order(request, answer, principal.sub)
    return Response(
        answer.content,
        status_code=answer.status_code,
        media_type=answer.headers.get("content-type", "application/json"),
        headers=PRIVATE,
    )


async def _remember_order(request: Request, answer: httpx.Response, owner: str) -> None:
    try:
        order = answer.json()
        order_id = order.get("id") or order.get("order_id")
        if isinstance(order_id, str):
            await _store(request).remember_order(order_id, owner)
    except (ValueError, AttributeError, RedisError):
        pass  # only the demo button misses out


TraceId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$")]


@router.get(
    "/trace/{trace_id}",
    summary="The spans of one of your requests",
    responses=answers(401, 404),
)
async def get_trace(trace_id: TraceId, request: Request, current: Session) -> JSONResponse:
    _, session = current
    settings: GatewaySettings = request.app.state.settings
    spans = await asyncio.to_thread(
        trace_files.read_trace, settings.trace_dir, trace_id, settings.bff_trace_scan_bytes
    )
    owners = {
        str(span["attributes"].get("enduser.id"))
        for span in spans
        if span["service"] == "gateway" and span["attributes"].get("enduser.id")
    }
    # Someone else's trace is a 404, like someone else's order: not even its existence leaks.
    if not spans or ("admin" not in session.roles and session.sub not in owners):
        raise NotFound("No such trace of yours (yet): spans arrive a moment after the request.")
    return _json({"trace_id": trace_id, "spans": spans})


@router.get(
    "/demo/foreign-order",
    summary="An order id of another user (refusal demo)",
    responses=answers(401, 404, 503),
)
async def foreign_order(request: Request, current: Session) -> JSONResponse:
    _, session = current
    try:
        order_id = await _store(request).order_of_someone_else(session.sub)
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if order_id is None:
        raise NotFound("No order of another user yet: sign in as bob, order, then come back.")
    return _json({"order_id": order_id})


@router.post(
    "/demo/revocation-check",
    dependencies=[SameOrigin],
    summary="Try the revoked token at every hop (the token never leaves the gateway)",
    responses=answers(403, 404, 422, 503),
    openapi_extra=json_body(id={"type": "string", "maxLength": 64}),
)
async def revocation_check(request: Request) -> JSONResponse:
    try:
        demo_id = str(json.loads(await _read_body(request, 1024))["id"])
        token = await _store(request).revoked_token(demo_id)
    except (ValueError, KeyError, TypeError):
        raise InvalidInput('Send {"id": "<revocation_check from /bff/logout>"}.') from None
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if token is None:
        raise NotFound("Nothing to check: log out first (the check is kept for 5 minutes).")
    settings: GatewaySettings = request.app.state.settings
    # The gateway itself, over HTTP, at the very socket this request came in on (not the Host
    # header, which the client writes), then each service directly on its internal URL.
    host, port = request.scope.get("server") or ("127.0.0.1", settings.port)
    host = f"[{host}]" if ":" in host else host  # an IPv6 address in a URL
    hops = [
        ("gateway", f"http://{host}:{port}", "/api/orders"),
        ("orders", settings.url("orders"), "/api/orders"),
        ("inventory", settings.url("inventory"), "/api/inventory/products"),
        ("payments", settings.url("payments"), "/api/payments/revocation-check"),
    ]
    http: httpx.AsyncClient = request.app.state.http
    results = []
    for hop, base, path in hops:
        try:
            answer = await http.get(
                base.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"}
            )
            status, detail = answer.status_code, _problem_detail(answer)
        except httpx.HTTPError as exc:
            status, detail = 0, f"unreachable ({type(exc).__name__})"
        results.append({"hop": hop, "path": path, "status": status, "detail": detail})
    return _json({"refused_everywhere": all(r["status"] == 401 for r in results), "hops": results})


def _problem_detail(answer: httpx.Response) -> str:
    challenge = answer.headers.get("www-authenticate", "")
    try:
        detail = answer.json().get("detail", "")
    except (ValueError, AttributeError):
        detail = ""
    return str(detail or challenge)[:300]
