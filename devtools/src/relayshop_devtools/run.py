"""`make run` and `make run-idp`: the system on this machine, one process per service (honcho).

The Procfile is written from the service catalogue at each start (<data dir>/Procfile), so a
service added to the catalogue runs without another file to edit:

    redis      the embedded Redis, one ACL user per service (relayshop_platform.redis_acl)
    <service>  for each service behind the gateway: its migrations first, in a short-lived
               process (python -m relayshop_platform.migrate, as compose and the Kubernetes
               initContainers do), then uvicorn with RELAYSHOP_MIGRATE_ON_START=false, so Alembic
               never loads in the serving process
    gateway    last, as it calls every other one
    ready      waits for the gateway's /readyz, then prints where things are (banner.py)

Each service listens on its catalogue port, or on RELAYSHOP_<NAME>_PORT when that is set, in the
environment or in .env (read as honcho reads it); the services calling it are told:
RELAYSHOP_<NAME>_URL follows. Each signs in to Redis as its own
user with a demo password. No service speaks WebSocket: --ws none keeps uvicorn from loading
the websockets library.

``--idp`` (make run-idp) adds the OpenID Provider of tools/idp on RELAYSHOP_IDP_PORT (default
9090) and makes auth and the gateway trust it; the other services trust relayshop's auth alone
(docs/identity-providers.md).

    .venv/bin/python -m relayshop_devtools.run [--idp] [--print]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from honcho.environ import parse as parse_dotenv
from relayshop_platform.catalogue import CATALOGUE, GATEWAY, Service

from . import oidc_provider
from .devstack import FEDERATING
from .embedded_redis import demo_password

PYTHON = ".venv/bin/python"
UVICORN = ".venv/bin/uvicorn"


def port_variable(service: Service) -> str:
    return f"RELAYSHOP_{service.name.upper()}_PORT"


def port(service: Service, env: Mapping[str, str]) -> int:
    return int(env.get(port_variable(service), service.port))


def command(service: Service, env: Mapping[str, str], trusted: str | None = None) -> str:
    """One service's line: migrate if it has tables, then exec uvicorn on its port."""
    serve = [
        UVICORN, f"{service.package}.main:create_app", "--factory", "--host", "127.0.0.1",
        "--port", str(port(service, env)), "--no-access-log", "--ws", "none",
    ]  # fmt: skip
    if service.name == GATEWAY:
        serve += ["--workers", env.get("RELAYSHOP_GATEWAY_WORKERS", "1"), "--no-proxy-headers"]
    settings = {"RELAYSHOP_REDIS_PASSWORD": demo_password(service.name)}
    if trusted is not None and service.name in FEDERATING:
        settings["RELAYSHOP_TRUSTED_ISSUERS"] = trusted
    line = " ".join(f"{k}={shlex.quote(v)}" for k, v in settings.items())
    line += " exec " + shlex.join(serve)
    if service.tables:
        migrate = shlex.join([PYTHON, "-m", "relayshop_platform.migrate", service.name])
        line = f"{migrate} && RELAYSHOP_MIGRATE_ON_START=false {line}"
    return line


def procfile(
    env: Mapping[str, str],
    catalogue: Sequence[Service] = CATALOGUE,
    *,
    trusted: str | None = None,
    idp: str | None = None,
) -> str:
    data_dir = env.get("RELAYSHOP_DATA_DIR", "var")
    redis = shlex.join(
        [PYTHON, "-m", "relayshop_devtools.embedded_redis",
         "--port", env.get("RELAYSHOP_REDIS_PORT", "6390"), "--dir", f"{data_dir}/redis"]
    )  # fmt: skip
    ordered = [s for s in catalogue if s.name != GATEWAY] + [
        s for s in catalogue if s.name == GATEWAY
    ]
    lines = [f"redis: exec {redis}"]
    lines += [f"{s.name}: {command(s, env, trusted)}" for s in ordered]
    if idp is not None:
        lines.append(f"idp: exec {idp}")
    lines.append(f"ready: exec {PYTHON} -m relayshop_devtools.banner")
    return "\n".join(lines) + "\n"


def neighbour_urls(
    env: Mapping[str, str], catalogue: Sequence[Service] = CATALOGUE
) -> dict[str, str]:
    """Where each service listens, for the services that call it (and the tools), unless set."""
    return {
        s.url_variable: env.get(s.url_variable) or f"http://127.0.0.1:{port(s, env)}"
        for s in catalogue
    }


def identity_provider(env: Mapping[str, str]) -> tuple[str, str]:
    """The trusted-issuers setting for auth and the gateway, and the provider's command."""
    reason = oidc_provider.missing()  # installs tools/idp/node_modules when npm can
    if reason is not None:
        sys.exit(f"make run-idp: {reason}")
    idp_port = int(env.get("RELAYSHOP_IDP_PORT", "9090"))
    issuer = f"http://127.0.0.1:{idp_port}"
    trusted = json.dumps([oidc_provider.trusted_issuer(issuer).model_dump(exclude_none=True)])
    # The console's sign-in: its callback registered for both names of the gateway of `make run`
    # (a redirect URI is compared exactly, host included).
    gateway = port(next(s for s in CATALOGUE if s.name == GATEWAY), env)
    consoles = [f"http://localhost:{gateway}", f"http://127.0.0.1:{gateway}"]
    provider = ["node", "tools/idp/provider.mjs", "--port", str(idp_port)]
    for console in consoles:
        provider += ["--console", console]
    print(
        f"identity provider: {issuer} (accounts alice, sam, wendy, ada; password <name>-password)\n"
        f"  a token: {PYTHON} -m relayshop_devtools.oidc_provider token alice --issuer {issuer}\n"
        f"  or in the console: http://127.0.0.1:{gateway}/, 'Sign in with relayshop-idp'",
        flush=True,
    )
    return trusted, shlex.join(provider)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make run", description=__doc__.split("\n")[0])
    parser.add_argument("--idp", action="store_true", help="an OpenID Provider beside it")
    parser.add_argument("--print", action="store_true", help="print the Procfile, start nothing")
    args = parser.parse_args(argv)
    # As honcho will see it: the environment, then .env over it (honcho reads .env the same way).
    dotenv = Path(".env")
    env = {**os.environ, **(parse_dotenv(dotenv.read_text()) if dotenv.is_file() else {})}
    trusted = provider = None
    if args.idp and not args.print:
        trusted, provider = identity_provider(env)
    text = procfile(env, trusted=trusted, idp=provider)
    if args.print:
        print(text, end="")
        return
    root = Path.cwd()
    data_dir = Path(env.get("RELAYSHOP_DATA_DIR", "var"))
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / ("Procfile.idp" if args.idp else "Procfile")
    target.write_text(text)
    env.update(neighbour_urls(env))
    env.setdefault("RELAYSHOP_ENV", "development")
    runner = str(root / ".venv/bin/honcho")
    # -d: the processes run from the repository root, whatever directory holds the Procfile.
    command = [runner, "--no-prefix", "-f", str(target), "-d", str(root), "start"]
    os.execve(runner, command, env)  # noqa: S606 - our own honcho, as the Makefile installs it


if __name__ == "__main__":
    main()
