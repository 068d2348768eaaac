"""The orders service's settings: the platform's, plus the saga's time limits and the reconciler.

Every field is an environment variable ``RELAYSHOP_<FIELD>`` (see settings.PlatformSettings).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import Field, model_validator
from relayshop_platform.settings import PlatformSettings, get_app_settings


class OrdersSettings(PlatformSettings):
    service_name: str = "orders"
    port: int = 8002
    # orders' own OAuth client (client_credentials), proving "this call comes from orders".
    client_secret: str = "orders-demo-secret"
    # A request repeating an Idempotency-Key while the first one is still running waits this long
    # for the first one's answer, then gets 409 "still being placed" (and may simply retry).
    idempotent_replay_wait_seconds: float = 10.0

    # The lease of a saga (leases.py): the request placing an order stops calling neighbours
    # after this long, and only then may the reconciler take a PENDING order over. The same
    # limit bounds each round of the reconciler on one order.
    saga_timeout_seconds: float = Field(default=30.0, gt=0)
    # How often the reconciler looks for PENDING orders whose lease has run out (it also runs
    # once at start), and how many it takes per round.
    reconcile_interval_seconds: float = Field(default=10.0, gt=0)
    reconcile_batch_size: int = Field(default=50, ge=1, le=1000)

    # Fault injection for the end-to-end fault suite (tests/e2e/test_faults.py): orders sleeps
    # this long between "reserve" and "charge", so a test knows when to kill it mid-saga.
    # Refused in production.
    fault_delay_before_charge_seconds: float = Field(default=0.0, ge=0)

    @model_validator(mode="after")
    def _no_faults_in_production(self) -> OrdersSettings:
        if self.env == "production" and self.fault_delay_before_charge_seconds:
            raise ValueError("RELAYSHOP_FAULT_* settings are for tests; production refuses them")
        return self


def get_settings() -> OrdersSettings:
    """Fresh settings from the environment (read once per app, in create_app)."""
    return OrdersSettings()


# The settings the app was built with, typed, for a handler: ``settings: Settings``.
Settings = Annotated[OrdersSettings, Depends(get_app_settings)]
