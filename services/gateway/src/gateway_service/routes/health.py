"""GET /readyz for the whole system: the gateway is ready when everything behind it is.

Registered before the platform's own /readyz, so this one answers (FastAPI takes the first match).
200 only when every upstream's /readyz answers 200, the revocation mirror is in sync with Redis
and the signing keys are loaded; otherwise 503 with a JSON body naming what is down.
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from relayshop_platform.catalogue import GATEWAY, service

from ..config import GatewaySettings

router = APIRouter(tags=["health"])


async def _probe(http: httpx.AsyncClient, url: str, seconds: float) -> str:
    try:
        response = await http.get(url, timeout=seconds)
    except httpx.HTTPError as exc:
        # The wrapped aiohttp error names the real cause (httpx-aiohttp calls a refusal a timeout).
        return f"down ({type(exc.__cause__ or exc).__name__})"
    return "ok" if response.status_code == 200 else f"down (status {response.status_code})"


# Out of the schema: the platform's /readyz (shadowed, never called) already documents the path,
# and two operations on one path would clash in openapi.json.
@router.get("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    state = request.app.state
    settings: GatewaySettings = state.settings
    upstreams = {name: settings.url(name) for name in service(GATEWAY).calls}
    answers = await asyncio.gather(
        *(
            _probe(state.http, f"{url.rstrip('/')}/readyz", settings.readiness_timeout_seconds)
            for url in upstreams.values()
        )
    )
    checks = dict(zip(upstreams, answers, strict=True))
    checks["redis"] = "ok" if state.revocations.healthy else "down"
    checks["jwks"] = "ok" if state.jwks is None or state.jwks.loaded else "down (no signing keys)"
    down = sorted(name for name, value in checks.items() if value != "ok")
    return JSONResponse(
        {"status": "not ready" if down else "ready", "down": down, "checks": checks},
        status_code=503 if down else 200,
    )
