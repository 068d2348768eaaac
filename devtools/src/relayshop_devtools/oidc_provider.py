"""The OpenID Provider of tools/idp (npm oidc-provider): start it, trust it, get tokens from it.

Development and tests only. ``make run-idp`` starts it beside the stack; the tests of tests/idp
start it with ``OidcProvider``. Its demo accounts sign in through its development login page with
PKCE, as a browser would (``console_token``); its machine client uses client_credentials
(``reporting_token``).

    python -m relayshop_devtools.oidc_provider token alice [--issuer http://127.0.0.1:9090]

prints an access token for alice that the gateway of ``make run-idp`` accepts.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import secrets
import shutil
import subprocess
import threading
import time
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

import httpx
from relayshop_platform.issuers import TrustedIssuer

from .devstack import stop_process
from .repository import ROOT

__all__ = [
    "CONSOLE",
    "IDP_DIR",
    "OidcProvider",
    "console_token",
    "missing",
    "pkce_pair",
    "reporting_token",
    "trusted_issuer",
]

IDP_DIR = ROOT / "tools/idp"
RESOURCE = "urn:relayshop:gateway"
CONSOLE = "relayshop-console"
CALLBACK = "http://localhost:8000/console/oidc/callback"
REPORTING = ("relayshop-reporting", "relayshop-reporting-demo-secret")
READY = "relayshop-idp ready "


def trusted_issuer(issuer: str) -> TrustedIssuer:
    """The RELAYSHOP_TRUSTED_ISSUERS entry for the provider (tools/idp/provider.mjs says the
    same): RFC 9068 tokens (typ at+jwt, the default), relayshop's role names in ``roles``, and
    the console's "Sign in with relayshop-idp" through its public client."""
    return TrustedIssuer(
        issuer=issuer,
        audience=RESOURCE,
        roles_claim="roles",
        allowed_azp=[CONSOLE, REPORTING[0]],
        console_client_id=CONSOLE,
        name="relayshop-idp",
    )


def missing() -> str | None:
    """Why the provider cannot run here, or None when it can (after installing its packages)."""
    if shutil.which("node") is None:
        return "node is not installed: the OpenID Provider of tools/idp runs on Node.js"
    if not (IDP_DIR / "node_modules").is_dir():
        if shutil.which("npm") is None:
            return "tools/idp/node_modules is absent and npm is not installed (make idp-deps)"
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],  # noqa: S607
            cwd=IDP_DIR,
            check=True,
            capture_output=True,
        )
    return None


class OidcProvider:
    """tools/idp/provider.mjs as a child process on ``port``, ready once it says so."""

    def __init__(self, port: int, consoles: tuple[str, ...] = ()) -> None:
        self.port = port
        # The gateways whose console may sign in here (provider.mjs --console): their callback
        # and page are registered with relayshop-console. None given: http://localhost:8000.
        self.consoles = consoles
        self.issuer = ""
        self.output: list[str] = []
        self._process: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 30.0) -> OidcProvider:
        self._process = subprocess.Popen(  # noqa: S603 - our own script
            [  # noqa: S607
                "node",
                str(IDP_DIR / "provider.mjs"),
                "--port",
                str(self.port),
                *(argument for url in self.consoles for argument in ("--console", url)),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        ready = threading.Event()
        process = self._process

        def read() -> None:  # keeps draining the pipe, so the provider never blocks on it
            assert process.stdout is not None
            for line in process.stdout:
                self.output.append(line)
                if line.startswith(READY):
                    self.issuer = line.split()[-1]
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.1):
            if process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the provider did not start:\n" + "".join(self.output))
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process)
        self._process = None

    def __enter__(self) -> OidcProvider:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def pkce_pair() -> tuple[str, str]:
    """An RFC 7636 code verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def console_token(issuer: str, username: str, password: str | None = None) -> str:
    """Sign ``username`` in as the console would: authorization code with PKCE S256 through the
    provider's development login page, then the code redeemed for an access token."""
    verifier, challenge = pkce_pair()
    with httpx.Client(timeout=10) as browser:
        authorize = {
            "client_id": CONSOLE,
            "response_type": "code",
            "redirect_uri": CALLBACK,
            "scope": "openid",
            "state": secrets.token_urlsafe(8),
            "resource": RESOURCE,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        login_page = browser.get(f"{issuer}/auth", params=authorize).headers["location"]
        password = password or f"{username}-password"  # the demo accounts' (provider.mjs)
        form = {"prompt": "login", "login": username, "password": password}
        signed_in = browser.post(httpx.URL(issuer).join(login_page), data=form)
        if "location" not in signed_in.headers:  # 401: unknown login or wrong password
            raise RuntimeError(f"sign-in refused: {signed_in.status_code} {signed_in.text}")
        resume = signed_in.headers["location"]
        callback = browser.get(httpx.URL(issuer).join(resume)).headers["location"]
        code = parse_qs(urlsplit(callback).query)["code"][0]
        response = browser.post(
            f"{issuer}/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": CALLBACK,
                "client_id": CONSOLE,
                "code_verifier": verifier,
            },
        )
        response.raise_for_status()
        return str(response.json()["access_token"])


def reporting_token(issuer: str) -> str:
    """The machine client's own token (client_credentials, RFC 6749 section 4.4): role support."""
    response = httpx.post(
        f"{issuer}/token",
        data={"grant_type": "client_credentials", "scope": "relayshop", "resource": RESOURCE},
        auth=REPORTING,
        timeout=10,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    token = commands.add_parser("token", help="print an access token of a demo account")
    token.add_argument("username", help="alice, sam, wendy or ada; 'reporting' for the machine")
    token.add_argument("--issuer", default="http://127.0.0.1:9090")
    arguments = parser.parse_args()
    if arguments.username == "reporting":
        print(reporting_token(arguments.issuer))
    else:
        print(console_token(arguments.issuer, arguments.username))


if __name__ == "__main__":
    main()
