"""The console's session and its CSRF defence (the routes are routes/bff.py).

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

import hmac
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from relayshop_platform.errors import (
    RelayshopError,
    UpstreamUnavailable,
)

from .session import BffSession, SessionStore

SECURE_COOKIE = "__Host-relayshop_session"
LOCAL_COOKIE = "relayshop_session"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
CSRF_HEADER = "x-csrf-token"
# Sent with every BFF answer: it describes one user's session, so no cache may keep it.
PRIVATE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


class NotSignedIn(RelayshopError):
    # A cookie session has no standard challenge, so no WWW-Authenticate (unlike a bearer 401).
    status = 401
    title = "Unauthorized"


class CrossSiteRefused(RelayshopError):
    status = 403
    title = "Forbidden"


def is_local(request: Request) -> bool:
    return request.url.scheme == "http" and (request.url.hostname or "") in LOCAL_HOSTS


def cookie_name(request: Request) -> str:
    return LOCAL_COOKIE if is_local(request) else SECURE_COOKIE


def set_cookie(request: Request, response: Response, session_id: str, max_age: int) -> None:
    response.set_cookie(
        cookie_name(request),
        session_id,
        max_age=max_age,
        path="/",  # required by __Host- (and no Domain attribute: host-only)
        secure=not is_local(request),
        httponly=True,
        samesite="strict",
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        cookie_name(request),
        path="/",
        secure=not is_local(request),
        httponly=True,
        samesite="strict",
    )


def private_json(body: Any, status: int = 200) -> JSONResponse:
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


def session_store(request: Request) -> SessionStore:
    store: SessionStore = request.app.state.bff_sessions
    return store


def cookie_session_id(request: Request) -> str | None:
    # Read only the cookie name this host may use: on a real host a plain "relayshop_session"
    # (which any subdomain could set) is never taken for the __Host- one.
    value = request.cookies.get(cookie_name(request))
    return value if value and len(value) <= 128 else None


async def load_session(request: Request) -> tuple[str, BffSession]:
    session_id = cookie_session_id(request)
    if session_id is None:
        raise NotSignedIn("Sign in first.")
    try:
        session = await session_store(request).get(session_id)
    except RedisError as exc:
        raise UpstreamUnavailable("The session store is unavailable.") from exc
    if session is None:
        raise NotSignedIn("Your session has ended; sign in again.")
    return session_id, session


async def signed_in(request: Request) -> tuple[str, BffSession]:
    return await load_session(request)


async def signed_in_with_csrf(request: Request) -> tuple[str, BffSession]:
    """For state-changing requests: the session AND its CSRF token in X-CSRF-Token."""
    session_id, session = await load_session(request)
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf_token.encode()):
        raise CrossSiteRefused("Missing or wrong X-CSRF-Token.")
    return session_id, session


Session = Annotated[tuple[str, BffSession], Depends(signed_in)]
CsrfSession = Annotated[tuple[str, BffSession], Depends(signed_in_with_csrf)]


def session_view(session: BffSession) -> dict[str, Any]:
    """What the page may know: never a token, only the CSRF token it must echo back."""
    return {
        "signed_in": True,
        "username": session.username,
        "sub": session.sub,
        "roles": session.roles,
        "csrf_token": session.csrf_token,
    }
