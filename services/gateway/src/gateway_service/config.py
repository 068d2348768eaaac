"""The gateway's settings: the platform's, plus the limits of the proxy path.

Every field is an environment variable ``RELAYSHOP_<FIELD>`` (``.env.example`` lists them).
The upstreams' URLs (``RELAYSHOP_AUTH_URL``, ``RELAYSHOP_ORDERS_URL``, ...: the service catalogue's
``calls`` of the gateway) are read by the base: ``settings.url("orders")``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends
from pydantic import Field
from relayshop_platform.settings import PlatformSettings, get_app_settings


class GatewaySettings(PlatformSettings):
    service_name: str = "gateway"
    port: int = 8000
    client_secret: str = "gateway-demo-secret"

    # Largest request body the gateway forwards; bigger ones get 413 before (Content-Length)
    # or while (chunked) they stream, so one client cannot tie up an upstream with a huge upload.
    max_body_bytes: int = 1024 * 1024
    # Per upstream call: the whole exchange (total) and the TCP connect on its own. A refused
    # connection fails at once (503); the connect timeout covers a host that never answers (504).
    upstream_timeout_seconds: float = 10.0
    upstream_connect_timeout_seconds: float = 1.0
    # Connection pool of the proxy's one aiohttp session, per upstream (and 4x that in total).
    max_connections_per_upstream: int = 256
    # Shorter than uvicorn's default keep-alive (5 s): see proxy.create_upstream_session.
    upstream_keepalive_seconds: float = 4.0
    # How long GET /readyz waits for each upstream's /readyz.
    readiness_timeout_seconds: float = 2.0
    # Continue a client's W3C trace context (traceparent, tracestate)? Off at the edge: every
    # request starts its own trace here (main.GatewayASGI). Turn on only behind a proxy of yours
    # that sets the header itself.
    trust_client_trace_context: bool = False

    # The browser console's backend-for-frontend session (routes/bff.py, session.py).
    # How long a console session lives: keep it equal to auth's RELAYSHOP_REFRESH_TOKEN_TTL_SECONDS,
    # since the session is worth nothing once its refresh token has expired.
    bff_session_seconds: int = Field(default=14 * 24 * 3600, ge=60)
    # Refresh the access token when it has less than this left, so it never expires mid-request.
    bff_refresh_margin_seconds: float = Field(default=30.0, ge=0)
    # The hop inspector reads at most this many bytes from the end of each span file.
    bff_trace_scan_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)

    @property
    def trace_dir(self) -> Path:
        """Where every service's span file is (<data_dir>/traces/<service>.jsonl by default;
        the services of one machine share the data directory)."""
        own = self.effective_trace_file
        return own.parent if own is not None else self.data_dir / "traces"


def get_settings() -> GatewaySettings:
    """Fresh settings from the environment (read once per app, in create_app)."""
    return GatewaySettings()


# The settings the app was built with, typed, for a handler: ``settings: Settings``.
Settings = Annotated[GatewaySettings, Depends(get_app_settings)]
