"""The backend-for-frontend (BFF) of the browser console: the page signs in here, never at auth.

    POST /bff/login                 username + password -> tokens kept in Redis, a cookie out
    GET  /bff/session               who am I (username, roles) and this session's CSRF token
    POST /bff/logout                revoke the tokens at auth, drop the session, clear the cookie
                                    (and a link on to the identity provider's logout: oidc.py)
    GET|POST|PUT /bff/api/{path}    relay to /api/{path} with the session's access token
    GET  /bff/trace/{trace_id}      the spans of one of your own requests (the hop inspector)
    GET  /bff/demo/foreign-order    an order id of someone else (for the refusal demo)
    POST /bff/demo/revocation-check the old, revoked token tried at the gateway and every service

The session cookie and the CSRF checks are bff_session.py (why a BFF, and how it defends
itself, is told there); the calls to auth are bff_auth.py; the token check before a call goes on
to a service is the proxy's own, edge.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

import httpx
from fastapi import APIRouter, FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from relayshop_platform.errors import (
    InvalidInput,
    NotFound,
    TokenError,
    UpstreamUnavailable,
)
from relayshop_platform.relay import upstream_error

from .. import trace_files
from ..bff_auth import (
    fresh_access_token,
    new_session,
    revoke_at_auth,
    token_request,
    tokens_per_hop,
)
from ..bff_session import (
    PRIVATE,
    CsrfSession,
    NotSignedIn,
    SameOrigin,
    Session,
    clear_cookie,
    cookie_session_id,
    load_session,
    private_json,
    same_origin_only,
    session_store,
    session_view,
    set_cookie,
    signed_in,
    signed_in_with_csrf,
)
from ..config import GatewaySettings
from ..edge import Edge
from ..proxy import routing_table
from ..session import SessionStore, new_secret

# A 128-character username and a 1024-character password, each character up to 12 bytes once
# JSON escapes it (a surrogate pair, \\ud83d\\ude00): what an honest sign-in can weigh.
MAX_LOGIN_BODY = 16 * 1024


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One Redis client for the sessions (a router lifespan: runs after the platform's startup,
    so app.state.settings is there)."""
    settings: GatewaySettings = app.state.settings
    # Its own ACL user: the sessions' keys only, never the revocations (redis_acl.py).
    client = app.state.redis_connect("gateway-console", socket_timeout=5)
    app.state.bff_sessions = SessionStore(client, settings.bff_session_seconds)
    try:
        yield
    finally:
        await client.aclose()


router = APIRouter(prefix="/bff", tags=["console"], lifespan=lifespan)


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
    tokens = await token_request(
        request, {"grant_type": "password", "username": username, "password": password}
    )
    session = await new_session(request, tokens, username)
    store = session_store(request)
    try:
        # A new id on every sign-in (no session fixation); a previous session here ends for good.
        old_id = cookie_session_id(request)
        old = await store.get(old_id) if old_id is not None else None
        if old_id is not None:
            await store.delete(old_id)
        session_id = await store.create(session)
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if old is not None:
        await revoke_at_auth(request, old)
    response = private_json(session_view(session))
    set_cookie(request, response, session_id, store.ttl_seconds)
    return response


@router.get("/session", summary="Who am I (never a token)", responses=answers(503))
async def who_am_i(request: Request) -> JSONResponse:
    try:
        _, session = await load_session(request)
    except NotSignedIn:
        return private_json({"signed_in": False})
    return private_json(session_view(session))


@router.post(
    "/logout",
    dependencies=[SameOrigin],
    summary="Revoke the tokens, end the session",
    responses=answers(401, 403, 503),
)
async def logout(request: Request, current: CsrfSession) -> JSONResponse:
    session_id, session = current
    per_hop = await tokens_per_hop(request, session.access_token)  # before they are revoked
    revoked = await revoke_at_auth(request, session)
    store = session_store(request)
    end_session = None
    try:
        await store.delete(session_id)
        demo_id = await store.remember_revoked(per_hop) if revoked else None
        if session.idp is not None and session.idp_id_token is not None:
            # Signed in at a trusted issuer: a one-time link on to its logout (routes/oidc.py);
            # the ID token it needs stays here, the page gets an opaque id.
            link = new_secret()
            ending = {"issuer": session.idp, "id_token": session.idp_id_token}
            await store.put_once("logout", link, ending, 300)
            end_session = "/console/oidc/logout?" + urlencode({"id": link})
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    response = private_json(
        {
            "signed_in": False,
            "revoked": revoked,
            "revocation_check": demo_id,
            "end_session": end_session,
        }
    )
    clear_cookie(request, response)
    return response


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

    session = await fresh_access_token(request, session_id, session)
    edge: Edge = request.app.state.edge
    try:
        # The proxy's own edge check (edge.py): a valid, unrevoked token, the route rules, the
        # decision on this request's span (GET /bff/trace shows a trace only to the user whose
        # gateway span this is, refusals included), and the token this service gets: exchanged
        # for it alone (exchange mode) or the session's own (relay mode).
        principal, token = await edge.admit(
            request.method, full_path, session.access_token, upstream.name
        )
    except TokenError as exc:
        await session_store(request).delete(session_id)  # revoked elsewhere (logout-all): over
        raise NotSignedIn(f"Your session's token was refused: {exc.detail}") from exc

    body = b""
    if request.method != "GET":
        if not request.headers.get("content-type", "").startswith("application/json"):
            raise InvalidInput("Send JSON (Content-Type: application/json).")
        body = await _read_body(request, settings.max_body_bytes)
    headers = {
        "Authorization": f"Bearer {token}",
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
            await session_store(request).remember_order(order_id, owner)
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
    return private_json({"trace_id": trace_id, "spans": spans})


@router.get(
    "/demo/foreign-order",
    summary="An order id of another user (refusal demo)",
    responses=answers(401, 404, 503),
)
async def foreign_order(request: Request, current: Session) -> JSONResponse:
    _, session = current
    try:
        order_id = await session_store(request).order_of_someone_else(session.sub)
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if order_id is None:
        raise NotFound("No order of another user yet: sign in as bob, order, then come back.")
    return private_json({"order_id": order_id})


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
        tokens = await session_store(request).revoked_tokens(demo_id)
    except (ValueError, KeyError, TypeError):
        raise InvalidInput('Send {"id": "<revocation_check from /bff/logout>"}.') from None
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if tokens is None:
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
            # Each hop gets the token it would receive: exchanged for it, or the session's own.
            token = tokens.get(hop, tokens["gateway"])
            answer = await http.get(
                base.rstrip("/") + path, headers={"Authorization": f"Bearer {token}"}
            )
            status, detail = answer.status_code, _problem_detail(answer)
        except httpx.HTTPError as exc:
            status, detail = 0, f"unreachable ({type(exc).__name__})"
        results.append({"hop": hop, "path": path, "status": status, "detail": detail})
    return private_json(
        {"refused_everywhere": all(r["status"] == 401 for r in results), "hops": results}
    )


def _problem_detail(answer: httpx.Response) -> str:
    challenge = answer.headers.get("www-authenticate", "")
    try:
        detail = answer.json().get("detail", "")
    except (ValueError, AttributeError):
        detail = ""
    return str(detail or challenge)[:300]
