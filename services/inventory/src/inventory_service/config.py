"""Inventory's settings: the platform's, plus how long a reservation holds stock.

Every field is an environment variable ``RELAYSHOP_<FIELD>`` (``.env.example`` lists them).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from pydantic import Field
from relayshop_platform.settings import PlatformSettings, get_app_settings


class InventorySettings(PlatformSettings):
    service_name: str = "inventory"
    port: int = 8004
    client_secret: str = "inventory-demo-secret"

    # A HELD reservation that nobody commits (a crashed or abandoned order) gives its stock back
    # after this long, so stock is never lost to a saga that died halfway.
    reservation_ttl_seconds: float = Field(default=600.0, gt=0)
    # How often the background task looks for expired HELD reservations.
    reservation_sweep_seconds: float = Field(default=5.0, gt=0)


def get_settings() -> InventorySettings:
    """Fresh settings from the environment (read once per app, in create_app)."""
    return InventorySettings()


# The settings the app was built with, typed, for a handler: ``settings: Settings``.
Settings = Annotated[InventorySettings, Depends(get_app_settings)]
