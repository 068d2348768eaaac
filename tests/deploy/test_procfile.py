"""`make run`'s Procfile, written from the service catalogue at each start
(relayshop_devtools.run): every service on its port, each with tables migrating in its own
short-lived process before it serves with RELAYSHOP_MIGRATE_ON_START=false (as compose and the
Kubernetes initContainers do), each with its own Redis user."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from relayshop_devtools import run
from relayshop_devtools.devstack import FEDERATING
from relayshop_platform.catalogue import CATALOGUE, GATEWAY, SERVICE_NAMES, Service
from relayshop_platform.roles import Role


def entries(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines())


def test_every_service_runs_on_its_catalogue_port_gateway_last() -> None:
    procfile = entries(run.procfile({}))
    assert list(procfile) == [
        "redis",
        *(n for n in SERVICE_NAMES if n != GATEWAY),
        GATEWAY,
        "ready",
    ]
    for service in CATALOGUE:
        argv = shlex.split(procfile[service.name].rpartition(" exec ")[2])
        assert argv[:3] == [".venv/bin/uvicorn", f"{service.package}.main:create_app", "--factory"]
        assert argv[argv.index("--port") + 1] == str(service.port)
        assert argv[argv.index("--host") + 1] == "127.0.0.1"


@pytest.mark.parametrize("service", [s for s in CATALOGUE if s.tables], ids=lambda s: s.name)
def test_a_service_with_tables_migrates_then_serves_without_alembic(service: Service) -> None:
    migrate, _, serve = entries(run.procfile({}))[service.name].partition(" && ")
    assert migrate == f".venv/bin/python -m relayshop_platform.migrate {service.name}"
    assert serve.startswith(
        "RELAYSHOP_MIGRATE_ON_START=false "
        f"RELAYSHOP_REDIS_PASSWORD={service.name}-redis-demo-password exec .venv/bin/uvicorn "
    )


def test_the_gateway_has_no_migrate_step_and_ignores_proxy_headers() -> None:
    gateway = entries(run.procfile({}))[GATEWAY]
    assert "migrate" not in gateway and gateway.endswith("--workers 1 --no-proxy-headers")


def test_a_port_from_the_environment_is_used_and_its_callers_are_told() -> None:
    env = {"RELAYSHOP_ORDERS_PORT": "9102", "RELAYSHOP_DATA_DIR": "/tmp/x"}
    procfile = entries(run.procfile(env))
    assert "--port 9102" in procfile["orders"]
    assert "--dir /tmp/x/redis" in procfile["redis"]
    urls = run.neighbour_urls(env)
    assert urls["RELAYSHOP_ORDERS_URL"] == "http://127.0.0.1:9102"
    assert urls["RELAYSHOP_PAYMENTS_URL"] == "http://127.0.0.1:8003"
    # A URL set by hand wins over the port.
    assert (
        run.neighbour_urls({**env, "RELAYSHOP_ORDERS_URL": "http://o:1"})["RELAYSHOP_ORDERS_URL"]
        == "http://o:1"
    )


def test_only_auth_and_the_gateway_trust_the_identity_provider() -> None:
    trusted = json.dumps([{"issuer": "http://127.0.0.1:9090"}])
    procfile = entries(run.procfile({}, trusted=trusted, idp="node tools/idp/provider.mjs"))
    assert procfile["idp"] == "exec node tools/idp/provider.mjs"
    for name in SERVICE_NAMES:
        assert ("RELAYSHOP_TRUSTED_ISSUERS=" in procfile[name]) == (name in FEDERATING), name


def test_a_service_added_to_the_catalogue_runs_without_another_edit() -> None:
    shipping = Service("shipping", 8005, "/api/shipping", tables=True, calls=("auth",),
                       writers=(Role.ADMIN,))  # fmt: skip
    procfile = entries(run.procfile({}, (*CATALOGUE, shipping)))
    assert procfile["shipping"].startswith(
        ".venv/bin/python -m relayshop_platform.migrate shipping && "
    )
    assert "shipping_service.main:create_app" in procfile["shipping"]
    assert "--port 8005" in procfile["shipping"]
    assert list(procfile)[-2:] == [GATEWAY, "ready"]


def test_a_port_in_dotenv_is_used_as_honcho_would_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RELAYSHOP_PAYMENTS_PORT", "9203")
    (tmp_path / ".env").write_text("# ports\nRELAYSHOP_ORDERS_PORT=9102\n")
    run.main(["--print"])
    procfile = entries(capsys.readouterr().out)
    assert "--port 9102" in procfile["orders"]  # from .env
    assert "--port 9203" in procfile["payments"]  # from the environment
    assert "--port 8004" in procfile["inventory"]  # the catalogue's
