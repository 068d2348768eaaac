"""PeriodicTask: rounds at the set interval, a failed round never ends the task, stop cancels."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from relayshop_platform.settings import PlatformSettings
from relayshop_platform.tasks import PeriodicTask, RunningTasks


def app_with_settings() -> FastAPI:
    app = FastAPI()
    app.state.settings = PlatformSettings(env="test")
    return app


async def test_rounds_repeat_and_a_failed_round_does_not_end_the_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rounds: list[int] = []

    async def work(app: FastAPI) -> None:
        rounds.append(len(rounds))
        if len(rounds) == 2:
            raise RuntimeError("the database blinked")

    task = PeriodicTask("test-task", work, every=lambda settings: 0.01)
    running = RunningTasks()
    running.start(app_with_settings(), [task])
    async with asyncio.timeout(5):
        while len(rounds) < 5:
            await asyncio.sleep(0.01)
    await running.stop()

    assert rounds[:5] == [0, 1, 2, 3, 4]  # the third round came after the failed second
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 1 and "test-task: a round failed" in failures[0].getMessage()
    assert failures[0].exc_info is not None  # with its traceback


async def test_run_at_start_false_waits_one_interval_first() -> None:
    started: list[float] = []

    async def work(app: FastAPI) -> None:
        started.append(asyncio.get_running_loop().time())

    loop = asyncio.get_running_loop()
    begin = loop.time()
    running = RunningTasks()
    running.start(
        app_with_settings(),
        [PeriodicTask("late", work, every=lambda settings: 0.2, run_at_start=False)],
    )
    await asyncio.sleep(0.1)
    assert started == []  # not yet: the first round waits one interval
    async with asyncio.timeout(5):
        while not started:
            await asyncio.sleep(0.01)
    await running.stop()
    assert started[0] - begin >= 0.19


async def test_stop_cancels_a_round_in_progress() -> None:
    state = SimpleNamespace(cancelled=False)

    async def slow(app: FastAPI) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            state.cancelled = True
            raise

    running = RunningTasks()
    running.start(app_with_settings(), [PeriodicTask("slow", slow, every=lambda settings: 1.0)])
    await asyncio.sleep(0.05)
    async with asyncio.timeout(2):
        await running.stop()
    assert state.cancelled
