"""`make run-idp`: `make run` plus the OpenID Provider of tools/idp, trusted by gateway and auth.

Writes <data dir>/Procfile.idp: the Procfile's processes, with auth and the gateway told to trust
the provider (RELAYSHOP_TRUSTED_ISSUERS, the entry of relayshop_devtools.oidc_provider), and one
more process, idp, running tools/idp/provider.mjs on RELAYSHOP_IDP_PORT (default 9090). Then
honcho runs it, as `make run` runs the Procfile. The other services are not told: they trust
relayshop's auth alone (docs/identity-providers.md).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

from relayshop_devtools import oidc_provider
from relayshop_devtools.devstack import FEDERATING

ROOT = Path(__file__).resolve().parents[1]


def procfile(issuer: str, port: int) -> str:
    trusted = json.dumps([oidc_provider.trusted_issuer(issuer).model_dump(exclude_none=True)])
    lines = []
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and name in FEDERATING:
            # export, not a prefix: the command may run a migration first, then exec uvicorn.
            command = f" export RELAYSHOP_TRUSTED_ISSUERS={shlex.quote(trusted)};{command}"
        lines.append(f"{name}{colon}{command}")
    # The console's sign-in: its callback registered for both names of the gateway of `make run`
    # (a redirect URI is compared exactly, host included).
    consoles = ["--console", "http://localhost:8000", "--console", "http://127.0.0.1:8000"]
    provider = shlex.join(["node", "tools/idp/provider.mjs", "--port", str(port), *consoles])
    lines.append(f"idp: exec {provider}")
    return "\n".join(lines) + "\n"


def main() -> None:
    reason = oidc_provider.missing()  # installs tools/idp/node_modules when npm can
    if reason is not None:
        sys.exit(f"make run-idp: {reason}")
    port = int(os.environ.get("RELAYSHOP_IDP_PORT", "9090"))
    issuer = f"http://127.0.0.1:{port}"
    data_dir = Path(os.environ.get("RELAYSHOP_DATA_DIR", "var"))
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / "Procfile.idp"
    target.write_text(procfile(issuer, port))
    print(
        f"identity provider: {issuer} (accounts alice, sam, wendy, ada; password <name>-password)\n"
        f"  a token: .venv/bin/python -m relayshop_devtools.oidc_provider token alice "
        f"--issuer {issuer}\n"
        f"  or in the console: http://127.0.0.1:8000/, 'Sign in with relayshop-idp'",
        flush=True,
    )
    honcho = str(ROOT / ".venv/bin/honcho")
    # -d: the processes run from the repository root, whatever directory holds the Procfile.
    command = [honcho, "--no-prefix", "-f", str(target), "-d", str(ROOT), "start"]
    os.execv(honcho, command)  # noqa: S606 - our own honcho, as `make run` starts it


if __name__ == "__main__":
    main()
