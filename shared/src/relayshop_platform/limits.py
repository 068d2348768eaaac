"""Bounded work for hostile requests: oversized header sections (431) and bodies (413), and
paths with control characters (400).

    app.add_middleware(RequestLimits)        every service (create_service_app does it)
    header_section_too_large(scope["headers"])   the gateway's proxy path asks the same question

Why here and not in uvicorn: uvicorn's default HTTP parser (httptools) has no header size limit,
and both of its parsers answer an oversized request with a bare 400, while RFC 6585 section 5
defines 431 for it. So the limit is checked once the request is parsed, before any route work.

Bodies: a declared Content-Length above the limit is refused at once, without reading a byte;
a chunked body is counted while the route reads it and cut off at the limit (RFC 9110 15.5.14).
The route's own read sees a 413 HTTPException, which FastAPI re-raises untouched and the
platform's error handlers turn into a problem document.

Paths: a percent-encoded NUL or other control character (``/api/orders/abc%00``) is never part of
an honest id, and PostgreSQL refuses NUL in text with an error that would surface as a 500. It is
refused here, once, for every path parameter of every route.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import (
    CONTROL_CHARACTERS,
    BadRequest,
    ContentTooLarge,
    HeaderFieldsTooLarge,
    send_problem,
)

# The whole header section (names + values). 16 KiB is what h11 and many proxies allow, twice an
# access token at the verifier's 8 KiB cap plus ordinary headers.
MAX_HEADER_BYTES = 16 * 1024
# No relayshop request body comes near this: an order of 100 lines is a few kilobytes.
MAX_BODY_BYTES = 1024 * 1024
_CONTROL_CHARACTERS = re.compile(f"[{CONTROL_CHARACTERS}]")


def header_section_size(headers: Iterable[tuple[bytes, bytes]]) -> int:
    return sum(len(name) + len(value) for name, value in headers)


def header_section_too_large(
    headers: Iterable[tuple[bytes, bytes]], limit: int = MAX_HEADER_BYTES
) -> bool:
    return header_section_size(headers) > limit


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class RequestLimits:
    """Plain ASGI middleware: 431 for an oversized header section, 413 for an oversized body."""

    def __init__(
        self,
        app: ASGIApp,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.app = app
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        if header_section_too_large(headers, self.max_header_bytes):
            limit = self.max_header_bytes
            detail = f"The request's headers exceed {limit} bytes."
            await send_problem(send, HeaderFieldsTooLarge(detail), close=True)
            return
        if _CONTROL_CHARACTERS.search(scope["path"]):
            detail = "The path must not contain control characters."
            await send_problem(send, BadRequest(detail), close=True)
            return
        declared = content_length(headers)
        if declared is not None and declared > self.max_body_bytes:
            detail = f"The request body is larger than {self.max_body_bytes} bytes."
            await send_problem(send, ContentTooLarge(detail), close=True)
            return
        await self.app(scope, self._counting(receive), send)

    def _counting(self, receive: Receive) -> Receive:
        """``receive`` that refuses a (chunked) body once it grows past the limit."""
        received = 0
        limit = self.max_body_bytes

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"The request body is larger than {limit} bytes.")
            return message

        return counted
