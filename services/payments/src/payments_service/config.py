"""Payments' settings: the platform's (inventory_url, the HTTP timeouts, its own client secret).

Every field is an environment variable ``RELAYSHOP_<FIELD>`` (``.env.example`` lists them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import Field, model_validator
from relayshop_platform.settings import PlatformSettings, get_app_settings


class PaymentsSettings(PlatformSettings):
    service_name: str = "payments"
    port: int = 8003
    client_secret: str = "payments-demo-secret"

    # Fault injection for the end-to-end fault suite (tests/e2e/test_faults.py): a charge is
    # done (captured, stock committed) and answered this much later, a slow dependency for
    # orders. Refused in production.
    fault_answer_delay_seconds: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _no_faults_in_production(self) -> PaymentsSettings:
        if self.env == "production" and self.fault_answer_delay_seconds:
            raise ValueError("RELAYSHOP_FAULT_* settings are for tests; production refuses them")
        return self


def get_settings() -> PaymentsSettings:
    """Fresh settings from the environment (read once per app, in create_app)."""
    return PaymentsSettings()


# The settings the app was built with, typed, for a handler: ``settings: Settings``.
Settings = Annotated[PaymentsSettings, Depends(get_app_settings)]
