"""The gateway's settings: the platform's, plus the limits of the proxy path.

Every field is an environment variable ``RELAYSHOP_<FIELD>`` (``.env.example`` lists them).
The upstream URLs themselves (``RELAYSHOP_AUTH_URL``, ``..._ORDERS_URL``, ...) come from the base.
"""

from __future__ import annotations

from relayshop_platform.settings import PlatformSettings


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


def get_settings() -> GatewaySettings:
    # Not cached: every create_app() reads the environment afresh (tests start several gateways).
    return GatewaySettings()
