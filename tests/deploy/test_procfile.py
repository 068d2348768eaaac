"""The Procfile of `make run`: each service with tables migrates in its own short-lived process,
then serves with RELAYSHOP_MIGRATE_ON_START=false, as compose and the k8s initContainers do."""

from __future__ import annotations

from pathlib import Path

import pytest
from relayshop_platform.catalogue import SERVICES_WITH_TABLES

ROOT = Path(__file__).resolve().parents[2]


def procfile() -> dict[str, str]:
    lines = ROOT.joinpath("Procfile").read_text().splitlines()
    return dict(line.split(":", 1) for line in lines if line.strip() and not line.startswith("#"))


@pytest.mark.parametrize("service", SERVICES_WITH_TABLES)
def test_procfile_migrates_then_serves_without_alembic(service: str) -> None:
    command = procfile()[service].strip()
    migrate, _, serve = command.partition(" && ")
    assert migrate == f".venv/bin/python -m relayshop_platform.migrate {service}"
    assert serve.startswith(
        "RELAYSHOP_MIGRATE_ON_START=false "
        f"RELAYSHOP_REDIS_PASSWORD={service}-redis-demo-password exec .venv/bin/uvicorn {service}_"
    )


def test_procfile_gateway_has_no_migrate_step() -> None:
    assert "migrate" not in procfile()["gateway"]


def test_procfile_gives_every_service_its_own_redis_user() -> None:
    for service, command in procfile().items():
        if service not in ("redis", "ready"):
            assert f"RELAYSHOP_REDIS_PASSWORD={service}-redis-demo-password" in command, service
