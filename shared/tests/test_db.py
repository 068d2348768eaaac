"""db.create_engine on SQLite: the pool takes a connection back with no transaction left open,
and without a ROLLBACK hop to aiosqlite's thread when the transaction was already committed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from relayshop_platform.db import create_engine
from sqlalchemy import text


@pytest.fixture
def rollbacks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every ROLLBACK sent to SQLite through aiosqlite, counted."""
    calls: list[str] = []
    original = aiosqlite.Connection.rollback

    async def counted(self: aiosqlite.Connection) -> None:
        calls.append("rollback")
        await original(self)

    monkeypatch.setattr(aiosqlite.Connection, "rollback", counted)
    return calls


async def test_a_committed_connection_goes_back_without_a_rollback(
    tmp_path: Path, rollbacks: list[str]
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (v INTEGER)"))
        rollbacks.clear()  # SQLAlchemy's own, once, after it first looked at the database
        for value in range(3):
            async with engine.connect() as connection:
                await connection.execute(text("INSERT INTO t VALUES (:v)"), {"v": value})
                await connection.commit()
        assert rollbacks == []
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 3
    finally:
        await engine.dispose()


async def test_a_connection_is_never_pooled_inside_a_transaction(
    tmp_path: Path, rollbacks: list[str]
) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (v INTEGER)"))
        rollbacks.clear()  # SQLAlchemy's own, once, after it first looked at the database
        # Written, never committed, and the connection handed back to the pool as it is: the
        # pool's reset must roll the write back.

        def write_and_hand_back(sync_connection: Any) -> None:
            pooled = sync_connection.engine.pool.connect()
            cursor = pooled.cursor()
            cursor.execute("INSERT INTO t VALUES (1)")
            cursor.close()
            assert pooled.driver_connection.in_transaction
            pooled.close()  # back to the pool: its reset runs here

        async with engine.connect() as connection:
            await connection.run_sync(write_and_hand_back)
        assert rollbacks == ["rollback"]
        async with engine.connect() as other:
            assert (await other.execute(text("SELECT count(*) FROM t"))).scalar() == 0
    finally:
        await engine.dispose()
