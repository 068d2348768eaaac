"""Schema migrations with Alembic: one environment per service, run as a command before serving.

    python -m relayshop_platform.migrate orders                 # upgrade orders' database to head
    python -m relayshop_platform.migrate orders --revision "add a column"
                                                                # autogenerate the next revision

Each service that owns tables keeps its environment in ``src/<name>_service/migrations/``:
``env.py`` (three lines: its own tables, handed to run_env below), ``script.py.mako`` and
``versions/``. Wherever a service runs as its own process, this module runs first, as a short-lived
process: ``python -m relayshop_platform.migrate orders && exec uvicorn ...`` in the Procfile of
``make run``, in devstack's stacks and in compose's commands, an initContainer on Kubernetes. So a
schema change never races the service's first request, and the service, started with
``RELAYSHOP_MIGRATE_ON_START=false``, never imports Alembic (about 10 MB resident). Left at its
default (true), create_service_app upgrades in the lifespan instead, calling
run_migrations(engine, "orders_service:migrations"): an app built in-process by a test.

Why these choices:
- Alembic is synchronous and our engines are async: the upgrade runs inside
  ``AsyncConnection.run_sync`` and env.py uses the connection it is given (Alembic's cookbook,
  "Using Asyncio with Alembic"), so SQLite (aiosqlite) and PostgreSQL (asyncpg) work alike.
- SQLModel.metadata is one global registry: in a test run that imports every service it holds
  every service's tables. env.py therefore compares against ``owned_metadata(...)``, a copy of
  only the tables this service owns, so autogenerate never adds another service's table.
- On PostgreSQL the upgrade holds a transaction-scoped advisory lock: two replicas starting at
  once run it one after the other (the second finds nothing to do) instead of both creating tables.
- A database created before migrations existed (``create_all`` of the first release) has tables
  but no ``alembic_version``: it is stamped at the first revision, which describes exactly those
  tables, and then upgraded like any other.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import zlib
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel.sql.sqltypes import AutoString

from .catalogue import SERVICES_WITH_TABLES
from .db import create_engine
from .logs import setup_logging
from .settings import PlatformSettings

VERSION_TABLE = "alembic_version"
log = logging.getLogger(__name__)


def alembic_config(migrations: str) -> Config:
    """An Alembic Config without an alembic.ini: ``migrations`` is "package:directory"."""
    config = Config()
    config.set_main_option("script_location", migrations)
    return config


async def run_migrations(
    database: AsyncEngine | str, migrations: str, *, revision_message: str | None = None
) -> None:
    """Upgrade the database to the newest revision (then autogenerate one, if asked)."""
    engine = create_engine(database) if isinstance(database, str) else database
    try:
        async with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                # Held until this transaction ends; keyed by the environment's name.
                await connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"),
                    {"key": zlib.crc32(migrations.encode())},
                )
            await connection.run_sync(_upgrade, migrations, revision_message)
    finally:
        if isinstance(database, str):
            await engine.dispose()


def _upgrade(connection: Connection, migrations: str, revision_message: str | None) -> None:
    config = alembic_config(migrations)
    config.attributes["connection"] = connection  # env.py runs on this connection (run_env)
    tables = set(inspect(connection).get_table_names())
    if tables and VERSION_TABLE not in tables:
        base = ScriptDirectory.from_config(config).get_base()
        if base is not None:
            command.stamp(config, base)  # adopt a database made by create_all (module doc)
    command.upgrade(config, "head")
    if revision_message is not None:
        # Numbered revisions (0001, 0002, ...) read better in a reference project than hashes.
        head = ScriptDirectory.from_config(config).get_current_head()
        rev_id = f"{int(head) + 1:04d}" if head and head.isdigit() else None
        command.revision(config, message=revision_message, autogenerate=True, rev_id=rev_id)


def owned_metadata(*models: Any) -> MetaData:
    """A MetaData holding only these models' tables (see the module doc: the global registry)."""
    metadata = MetaData()
    for model in models:
        model.__table__.to_metadata(metadata)
    return metadata


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's env.py: migrate on the connection run_migrations opened."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError(
            "Run migrations with `python -m relayshop_platform.migrate <service>`, "
            "not with the alembic command (it would not know the service's database)."
        )
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table there, and is a plain
        # ALTER on PostgreSQL, so one revision file serves both.
        render_as_batch=True,
        compare_type=True,
        render_item=_render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def _render_item(kind: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Write SQLModel's string type as plain ``sa.String``: a revision file must not import the
    models' library, it has to keep working after the models change."""
    if kind == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m relayshop_platform.migrate",
        description="Upgrade a service's database to the newest schema revision.",
    )
    parser.add_argument("service", choices=SERVICES_WITH_TABLES)
    parser.add_argument(
        "--revision",
        metavar="MESSAGE",
        help="after upgrading, autogenerate a new revision from the service's models",
    )
    args = parser.parse_args(argv)
    # The same DATABASE_URL (or SQLite file under RELAYSHOP_DATA_DIR) the service itself uses.
    settings = PlatformSettings(service_name=args.service)
    # This step writes to the service's own log (compose, devstack), so in the service's format.
    setup_logging(settings)
    url = settings.effective_database_url
    asyncio.run(
        run_migrations(url, f"{args.service}_service:migrations", revision_message=args.revision)
    )
    log.info("database schema is up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
