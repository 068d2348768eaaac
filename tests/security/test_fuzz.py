"""Fuzzing: schemathesis, every check, against each service's own OpenAPI document, per role.

For every service (and the gateway's own routes) and each role (customer, support, warehouse,
admin), ``schemathesis run`` runs all its phases (coverage, fuzzing, stateful) with a real token
and every check on (``[checks] enabled = true`` in schemathesis.toml, the same as ``--checks
all``), and every check must pass, among them:
- not_a_server_error              no 5xx, whatever the input;
- status_code_conformance         every status answered is documented (401, 403, 404, 413, ...);
- response_schema_conformance     a documented answer has the documented body ...
- content_type_conformance        ... and media type (problem+json for errors);
- negative_data_rejection,        what the schema calls invalid is refused, what it calls valid
  positive_data_acceptance        is accepted;
- ignored_auth                    an operation that declares a token refuses a request without;
- unsupported_method,             a method a path does not serve is 405, and Allow names the
  allow_header_conformance        ones it does (RFC 9110 section 15.5.6).
The deliberate exceptions, each with its reason, are in schemathesis.toml beside this file.

Each request carries the user's token as the service under test receives it in the stack's token
mode, and at payments and inventory the orders service's own token for them beside it: in exchange
mode the user's token is exchanged along gateway -> orders -> service, so its nearest actor is
orders, the caller whose token goes beside it. So every operation, public or internal, is fuzzed
past its token checks (audience, caller, actor), and what the fuzzer finds is about the operation.
Bounded for speed (a few examples per operation) and seeded, so a failure is reproducible;
schemathesis runs as a command, as a user would run it, in its own process.
conftest.py runs this file last, because the fuzzer signs out, rotates keys and sets stock.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from relayshop_devtools.devstack import PASSWORDS
from relayshop_platform.catalogue import SERVICE_NAMES, exchange_targets

ROLES = {"customer": "alice", "support": "carol", "warehouse": "walt", "admin": "admin"}
SERVICES = SERVICE_NAMES  # every service of the catalogue
CONFIG = Path(__file__).with_name("schemathesis.toml")
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES = 5
SEED = 19


def sign_in(http: httpx.Client, gateway: str, username: str) -> str:
    """A fresh sign-in for each run: the fuzzer may have signed the last one out."""
    answer = http.post(
        f"{gateway}/auth/token",
        data={"grant_type": "password", "username": username, "password": PASSWORDS[username]},
    )
    assert answer.status_code == 200, answer.text
    token: str = answer.json()["access_token"]
    return token


def schemathesis_run(base_url: str, headers: dict[str, str], workdir: Path) -> tuple[int, str]:
    command = [str(SCHEMATHESIS), "--config-file", str(CONFIG), "--no-color", "run"]
    command += [f"{base_url}/openapi.json", "--max-examples", str(EXAMPLES)]
    command += ["--seed", str(SEED), "--generation-database", "none", "--workers", "1"]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    # In a directory of its own: schemathesis keeps a cache in the working directory.
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)
    return result.returncode, result.stdout + result.stderr


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("role", ROLES)
def test_schemathesis_finds_nothing_with_every_check(
    service: str,
    role: str,
    targets: dict[str, str],
    http: httpx.Client,
    service_tokens: Any,
    received: Any,
    tally: Any,
    tmp_path: Path,
) -> None:
    token = sign_in(http, targets["gateway"], ROLES[role])
    headers = {
        # Failed sign-ins the fuzzer causes count against an address of its own.
        "X-Forwarded-For": "203.0.113.77",
    }
    if service in exchange_targets("orders"):
        # payments and inventory: their internal operations are called by orders.
        headers["Authorization"] = f"Bearer {received(token, 'orders', service)}"
        headers["X-Service-Token"] = service_tokens["orders", service]
    else:
        headers["Authorization"] = f"Bearer {received(token, service)}"
    status, output = schemathesis_run(targets[service], headers, tmp_path)
    generated = re.search(r"(\d+) generated", output)
    assert generated is not None, output
    tally.add(service, int(generated.group(1)))
    assert status == 0, output
    assert re.search(r"\d+ generated, \d+ passed", output), output  # tests ran, none failed
