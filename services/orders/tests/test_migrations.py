"""Alembic migrations (relayshop_platform.migrate): for every service with tables, the revisions
build exactly the schema its models describe, on SQLite and on PostgreSQL, and a database made
by the first release's create_all is adopted and upgraded in place."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from relayshop_platform.db import create_engine
from relayshop_platform.migrate import alembic_config, owned_metadata, run_migrations
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

# Runs on SQLite and on PostgreSQL (the root conftest's database_url).
pytestmark = pytest.mark.databases


def tables_of(service: str) -> MetaData:
    if service == "orders":
        from orders_service.models import Order

        return owned_metadata(Order)
    if service == "payments":
        from payments_service.models import Payment

        return owned_metadata(Payment)
    if service == "inventory":
        from inventory_service.models import Product, Reservation

        return owned_metadata(Product, Reservation)
    from auth_service.models import AccessTokenRecord, Client, RefreshToken, User, UserSession

    return owned_metadata(User, Client, UserSession, RefreshToken, AccessTokenRecord)


def empty_database(database_url: str | None, tmp_path: Path) -> str:
    """A URL with no tables at all: a new SQLite file, or this module's PostgreSQL database with
    its schema dropped (each service owns a database of its own, so no two may share one)."""
    if database_url is None:
        return f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}"

    async def drop_everything() -> None:
        engine = create_engine(database_url)
        async with engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(drop_everything())
    return database_url


async def differences(url: str, metadata: MetaData) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
            )
    finally:
        await engine.dispose()


@pytest.mark.parametrize("service", ["auth", "orders", "payments", "inventory"])
def test_migrations_build_the_schema_the_models_describe(
    service: str, database_url: str | None, tmp_path: Path
) -> None:
    url = empty_database(database_url, tmp_path)

    asyncio.run(run_migrations(url, f"{service}_service:migrations"))
    asyncio.run(run_migrations(url, f"{service}_service:migrations"))  # again: a no-op

    assert asyncio.run(differences(url, tables_of(service))) == []


def test_migrations_adopt_a_database_made_by_create_all(
    database_url: str | None, tmp_path: Path
) -> None:
    url = empty_database(database_url, tmp_path)

    async def first_release_started() -> None:
        """The tables of the first release (revision 0001 is exactly them), with no version."""

        def build(connection: Connection) -> None:
            config = alembic_config("orders_service:migrations")
            config.attributes["connection"] = connection
            command.upgrade(config, "0001")
            connection.execute(text("DROP TABLE alembic_version"))
            connection.execute(
                text(
                    "INSERT INTO orders (id, owner_sub, status, items, payment_method,"
                    " created_at, updated_at) VALUES ('o-1', 'alice', 'CONFIRMED', '[]',"
                    " 'pm_card_visa', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )

        engine = create_engine(url)
        async with engine.begin() as connection:
            await connection.run_sync(build)
        await engine.dispose()

    asyncio.run(first_release_started())
    asyncio.run(run_migrations(url, "orders_service:migrations"))

    async def read() -> list[Any]:
        engine = create_engine(url)
        async with engine.connect() as connection:
            rows = (await connection.execute(text("SELECT id, lease_id FROM orders"))).all()
        await engine.dispose()
        return [tuple(row) for row in rows]

    assert asyncio.run(read()) == [("o-1", None)]  # the data is still there, in the new schema
    assert asyncio.run(differences(url, tables_of("orders"))) == []
