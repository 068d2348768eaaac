"""settings.migrate_on_start: where a step before uvicorn migrates, the service never loads Alembic.

Each app runs in a fresh interpreter (the test process itself has imported Alembic long ago), with
its lifespan entered the way uvicorn enters it, and reports what it saw as one JSON line.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

# The orders app as uvicorn starts it, then: was Alembic imported, and which tables exist?
SERVE = """
import asyncio, json, sys
from orders_service.main import create_app

async def main():
    app = create_app()
    async with app.router.lifespan_context(app):
        pass
    print(json.dumps({"alembic": "alembic" in sys.modules}))

asyncio.run(main())
"""


def run(code: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def serve(env: dict[str, str]) -> dict[str, Any]:
    completed = run(["-c", SERVE], env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as connection:
        rows = connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {name for (name,) in rows}


def test_migrate_on_start_default_upgrades_in_the_lifespan(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    seen = serve(service_env)
    assert seen["alembic"] is True
    assert {"orders", "alembic_version"} <= tables(tmp_path / "orders.db")


def test_migrate_on_start_false_leaves_the_schema_to_the_migrate_step(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    serving = {**service_env, "RELAYSHOP_MIGRATE_ON_START": "false"}
    seen = serve(serving)
    assert seen["alembic"] is False
    assert "alembic_version" not in tables(tmp_path / "orders.db")  # nobody migrated it

    # As the Procfile, devstack, compose and the k8s initContainers do: migrate, then serve.
    migrated = run(["-m", "relayshop_platform.migrate", "orders"], service_env)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    assert {"orders", "alembic_version"} <= tables(tmp_path / "orders.db")
    assert serve(serving)["alembic"] is False
