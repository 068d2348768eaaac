"""The sweeper: a background task that gives back the stock of abandoned reservations.

An order saga that dies between "reserve" and "commit" (a crash, a lost network) leaves a HELD
reservation behind. Every ``reservation_sweep_seconds`` this task releases the HELD reservations
older than ``reservation_ttl_seconds``. Started by main.py at startup, cancelled at shutdown.
Several replicas may sweep at once: each release is a conditional UPDATE, so stock still comes
back exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import FastAPI

from .config import InventorySettings
from .stock import release_expired

log = logging.getLogger("inventory.expiry")


async def sweep_forever(app: FastAPI) -> None:
    settings: InventorySettings = app.state.settings
    while True:
        await asyncio.sleep(settings.reservation_sweep_seconds)
        try:
            await release_expired(app.state.sessionmaker)
        except Exception:
            # A database hiccup must not end the sweeper for the life of the process.
            log.exception("releasing expired reservations failed; retrying next round")


def start_sweeper(app: FastAPI) -> None:
    app.state.sweeper = asyncio.create_task(sweep_forever(app), name="inventory-sweeper")


async def stop_sweeper(app: FastAPI) -> None:
    task: asyncio.Task[None] | None = getattr(app.state, "sweeper", None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
