"""Background work that runs every few seconds for as long as a service runs.

    sweeper = PeriodicTask(
        "inventory-sweeper",
        release_expired_reservations,                  # async def (app: FastAPI) -> None
        every=lambda settings: settings.reservation_sweep_seconds,
        run_at_start=False,
    )
    create_service_app(settings, ..., background=[sweeper])

create_service_app starts each task once the service is ready (after ``on_startup``) and cancels
it first at shutdown, while the database and the HTTP client it uses are still open. One round
that fails (a database or a neighbour down for a moment) is logged with its traceback and the
next round runs as planned: a hiccup never ends the task for the life of the process. Several
replicas run their tasks side by side, so each round must be safe to run concurrently (the
inventory sweeper's conditional UPDATE, the orders reconciler's leases).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI

from .settings import PlatformSettings

# What a service uses; the rest is this module's own business.
__all__ = [
    "PeriodicTask",
    "RunningTasks",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    work: Callable[[FastAPI], Awaitable[None]]
    # Seconds between two rounds, read from the service's settings when the task starts.
    every: Callable[[PlatformSettings], float]
    # True: the first round runs at once (recover what a crash left); False: after one interval.
    run_at_start: bool = True

    async def run_forever(self, app: FastAPI) -> None:
        interval = self.every(app.state.settings)
        if not self.run_at_start:
            await asyncio.sleep(interval)
        while True:
            try:
                await self.work(app)
            except Exception:
                log.exception(
                    "%s: a round failed; the next one runs in %.1f s", self.name, interval
                )
            await asyncio.sleep(interval)


class RunningTasks:
    """The asyncio tasks of a service's PeriodicTasks, started and cancelled together."""

    def __init__(self) -> None:
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, app: FastAPI, tasks: list[PeriodicTask]) -> None:
        self._tasks = [asyncio.create_task(t.run_forever(app), name=t.name) for t in tasks]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
