"""The parts of docker-compose.yml, compose.override.yml and the PostgreSQL init script that
list the services (make generate).

gateway and auth are written by hand in docker-compose.yml: each is one of a kind. Every other
service of the catalogue gets the block below, the same for all; the regions of the hand-written
parts (the gateway's neighbours, auth's client secrets, PostgreSQL's and Redis's users) list
every service that needs an entry there.
"""

from __future__ import annotations

import json
from pathlib import Path

from relayshop_platform.catalogue import AUTH, GATEWAY, Service
from relayshop_platform.redis_acl import HEALTH_CHECK, acl_users, redis_server_args
from relayshop_platform.settings import neighbours

from . import regions

# A domain service's block in docker-compose.yml: {name}, {port}, and the parts that depend on
# whether it owns tables and whom it calls.
SERVICE = """\
  {name}:
    <<: *python-service
    build:
      context: .
      dockerfile: Dockerfile
      args: {{SERVICE: {name}, PORT: {port}}}
    image: relayshop-{name}
{command}\
    environment:
      <<: *common-env
      OTEL_SERVICE_NAME: {name}
{urls}\
      RELAYSHOP_REDIS_PASSWORD: {redis_password}
{database}\
      RELAYSHOP_CLIENT_SECRET: {client_secret}
    healthcheck:
      test: ["CMD", "python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:{port}/readyz', timeout=2)"]
      interval: 5s
      timeout: 3s
      retries: 12
      start_period: 10s
    # /readyz waits for auth's keys, so every service but auth starts after auth is healthy.
    depends_on:
      auth:
        condition: service_healthy
{postgres}\
      redis:
        condition: service_healthy

"""  # noqa: E501 - the healthcheck is one line in the file too

# Its block in compose.override.yml: the working copy mounted and reloaded, its port published on
# the host's loopback.
OVERRIDE = """\
  {name}:
    command: ["uvicorn", "{name}_service.main:create_app", "--factory", "--host", "0.0.0.0", "--port", "{port}",
              "--reload", "--reload-dir", "/src/shared/src", "--reload-dir", "/src/services/{name}/src"]
    environment:
      PYTHONPATH: /src/shared/src:/src/services/{name}/src
{migrate}\
    volumes:
      - ./shared/src:/src/shared/src:ro
      - ./services/{name}/src:/src/services/{name}/src:ro
    ports:
      - "127.0.0.1:{port}:{port}"
    networks:
      - backend
      - edge

"""  # noqa: E501


CALLS_COMMENT = "The services it calls (the service catalogue's calls), by their compose names."


def secret(name: str) -> str:
    """A value compose requires from .env: ``docker compose up`` stops with the message."""
    return f"${{{name}:?set {name} in .env}}"


def urls(service: Service, catalogue: tuple[Service, ...]) -> str:
    """The URLs of the services ``service`` calls, by their compose names (auth's is common)."""
    return "".join(
        f"      {n.url_variable}: http://{n.name}:{n.port}\n"
        for n in neighbours(service.name, catalogue)
    )


def service_block(service: Service, catalogue: tuple[Service, ...]) -> str:
    name, upper = service.name, service.name.upper()
    command = database = postgres = ""
    if service.tables:
        command = (
            f'    command: ["sh", "-c", "python -m relayshop_platform.migrate {name} && exec '
            f"uvicorn {service.package}.main:create_app --factory --host 0.0.0.0 "
            f'--port {service.port}"]\n'
        )
        database = (
            '      RELAYSHOP_MIGRATE_ON_START: "false"  # the command\'s first step migrated\n'
            f"      DATABASE_URL: postgresql://{name}:{secret(f'{upper}_DB_PASSWORD')}"
            f"@postgres:5432/{name}\n"
        )
        postgres = "      postgres:\n        condition: service_healthy\n"
    calls = urls(service, catalogue)
    if calls:
        calls = f"      # {CALLS_COMMENT}\n{calls}"
    return SERVICE.format(
        name=name,
        port=service.port,
        command=command,
        urls=calls,
        redis_password=secret(f"{upper}_REDIS_PASSWORD"),
        database=database,
        client_secret=secret(f"{upper}_CLIENT_SECRET"),
        postgres=postgres,
    )


def redis_command(catalogue: tuple[Service, ...]) -> str:
    """redis-server's command line: one ACL user per service (relayshop_platform/redis_acl.py),
    each with its own password from .env; the default user may only PING (the healthcheck)."""
    passwords = {s.name: secret(f"{s.name.upper()}_REDIS_PASSWORD") for s in catalogue}
    args = redis_server_args(
        passwords,
        default_password=secret("REDIS_PASSWORD"),
        default_rules=HEALTH_CHECK,
        users=acl_users(catalogue),
    )
    # One line per user, as redis-server reads them.
    lines: list[list[str]] = []
    for arg in args:
        if arg == "--user":
            lines.append([])
        lines[-1].append(json.dumps(arg))
    body = ",\n".join("      " + ", ".join(line) for line in lines)
    return f'    command: ["redis-server", "--save", "60", "1",\n{body}]\n'


def docker_compose(text: str, catalogue: tuple[Service, ...]) -> str:
    behind = [s for s in catalogue if s.name != GATEWAY]
    gateway = next(s for s in catalogue if s.name == GATEWAY)
    own = [s for s in catalogue if s.name not in (GATEWAY, AUTH)]
    return regions.fill(
        text,
        {
            "gateway-urls": urls(gateway, catalogue),
            "gateway-depends-on": "".join(
                f"      {s.name}:\n        condition: service_healthy\n" for s in behind
            ),
            "client-secrets": "".join(
                f"      RELAYSHOP_{s.name.upper()}_CLIENT_SECRET: "
                f"{secret(f'{s.name.upper()}_CLIENT_SECRET')}\n"
                for s in catalogue
                if s.calls
            ),
            "services": "".join(service_block(s, catalogue) for s in own).rstrip("\n") + "\n",
            "database-passwords": "".join(
                f"      {s.name.upper()}_DB_PASSWORD: {secret(f'{s.name.upper()}_DB_PASSWORD')}\n"
                for s in catalogue
                if s.tables
            ),
            "redis-command": redis_command(catalogue),
        },
        "docker-compose.yml",
    )


def override(text: str, catalogue: tuple[Service, ...]) -> str:
    migrate = '      RELAYSHOP_MIGRATE_ON_START: "true"\n'
    return regions.fill(
        text,
        {
            "services": "".join(
                OVERRIDE.format(name=s.name, port=s.port, migrate=migrate if s.tables else "")
                for s in catalogue
                if s.name != GATEWAY
            ).rstrip("\n")
            + "\n"
        },
        "compose.override.yml",
    )


def init_databases(text: str, catalogue: tuple[Service, ...]) -> str:
    return regions.fill(
        text,
        {
            "databases": "".join(
                f'create_service_database {s.name} "${s.name.upper()}_DB_PASSWORD"\n'
                for s in catalogue
                if s.tables
            )
        },
        "init-databases.sh",
    )


def outputs(root: Path, catalogue: tuple[Service, ...]) -> dict[Path, str]:
    edits = {
        "docker-compose.yml": docker_compose,
        "compose.override.yml": override,
        "deploy/postgres/init-databases.sh": init_databases,
    }
    return {root / path: edit((root / path).read_text(), catalogue) for path, edit in edits.items()}
