"""Payments' settings: the platform's (inventory_url, the HTTP timeouts, its own client secret).

Every field is an environment variable ``RELAYSHOP_<FIELD>`` (``.env.example`` lists them).
"""

from __future__ import annotations

from relayshop_platform.settings import PlatformSettings


class PaymentsSettings(PlatformSettings):
    service_name: str = "payments"
    port: int = 8003
    client_secret: str = "payments-demo-secret"


def get_settings() -> PaymentsSettings:
    """Fresh settings from the environment (read once per app, in create_app)."""
    return PaymentsSettings()
