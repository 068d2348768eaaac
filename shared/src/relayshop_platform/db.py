"""Each service owns its database: SQLite under the data dir by default, PostgreSQL by URL.

``postgresql://`` URLs are rewritten to the asyncpg driver so a plain URL from compose works.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

# What a service uses; the rest is this module's own business.
__all__ = [
    "DbSession",
    "create_engine",
    "create_sessionmaker",
]


def async_url(url: str) -> str:
    for plain, driver in (
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
        ("sqlite:///", "sqlite+aiosqlite:///"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain) :]
    return url


# Connections per SQLite file database (see create_engine).
SQLITE_POOL_SIZE = 2


def create_engine(url: str) -> AsyncEngine:
    url = async_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1]
        kwargs["connect_args"] = {"timeout": 30}
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # SQLite runs one writer at a time, so more connections only add waiters in its busy
            # handler, which sleeps and polls (1, 2, 5, 10 ... ms) and shows up as p99 latency.
            # Two long-lived connections (one can read while the other writes) and no overflow
            # make extra sessions wait in the pool's queue instead, woken the moment a connection
            # is free. (Overflow connections would also be opened and closed per request: a new
            # aiosqlite thread and the PRAGMAs each.) Measured with tools/bench.py, place order,
            # runs back to back: p99 340-370 ms with 4 connections, 235-250 ms with 2 (210-255 ms
            # with 1, but then one slow read holds up every write).
            kwargs.update(pool_size=SQLITE_POOL_SIZE, max_overflow=0)
        # The pool rolls back every connection it takes back, even after a COMMIT; each call to
        # aiosqlite is a hop to its thread and back. _rollback_if_needed (below) only does it
        # when a transaction is open: one hop less per transaction (inventory's reserve: 8, not 9).
        kwargs["pool_reset_on_return"] = None
    else:
        kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
    engine = create_async_engine(url, **kwargs)
    if url.startswith("sqlite"):

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers run beside the one writer; busy_timeout waits instead of failing.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            # With WAL, NORMAL still never corrupts the database; a power loss (not a crash of
            # the process) may forget the last commits. FULL would fsync on every commit.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine.sync_engine, "reset")
        def _rollback_if_needed(dbapi_connection: Any, _record: Any, _state: Any) -> None:
            # The pool's own reset, kept for what it is for: a connection never goes back to the
            # pool inside a transaction, whatever the session did (or failed to do) with it.
            if dbapi_connection.driver_connection.in_transaction:
                dbapi_connection.rollback()

    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessionmaker() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(get_session)]
