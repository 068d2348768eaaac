"""The sweeper: a background task that gives back the stock of abandoned reservations.

An order saga that dies between "reserve" and "commit" (a crash, a lost network) leaves a HELD
reservation behind. Every ``reservation_sweep_seconds`` this task releases the HELD reservations
older than ``reservation_ttl_seconds``: a PeriodicTask (relayshop_platform.tasks), which
create_service_app starts when the service is ready and cancels at shutdown. Several replicas may
sweep at once: each release is a conditional UPDATE, so stock still comes back exactly once.
"""

from __future__ import annotations

from typing import cast

from fastapi import FastAPI
from relayshop_platform.tasks import PeriodicTask

from .config import InventorySettings
from .stock import release_expired


async def sweep(app: FastAPI) -> None:
    await release_expired(app.state.sessionmaker)


sweeper = PeriodicTask(
    "inventory-sweeper",
    sweep,
    every=lambda settings: cast(InventorySettings, settings).reservation_sweep_seconds,
    run_at_start=False,  # nothing can have expired the moment the service starts
)
