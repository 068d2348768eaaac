"""The orders service's settings: the platform's, plus how long an idempotent replay waits.

Every field is an environment variable ``RELAYSHOP_<FIELD>`` (see settings.PlatformSettings).
"""

from __future__ import annotations

from relayshop_platform.settings import PlatformSettings


class OrdersSettings(PlatformSettings):
    service_name: str = "orders"
    port: int = 8002
    # orders' own OAuth client (client_credentials), proving "this call comes from orders".
    client_secret: str = "orders-demo-secret"
    # A request repeating an Idempotency-Key while the first one is still running waits this long
    # for the first one's answer, then gets 409 "still being placed" (and may simply retry).
    idempotent_replay_wait_seconds: float = 10.0


def get_settings() -> OrdersSettings:
    # Not cached: create_app() reads it once per app, and tests build apps with different env.
    return OrdersSettings()
