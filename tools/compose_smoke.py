"""`make compose-smoke`: start the real `docker compose` stack, use it through the gateway, stop it.

    make compose-smoke                      # as root, on Debian or Ubuntu (what CI runs)

What it does, each step printed with its duration:
  1. tools: Debian's docker.io (the engine), debootstrap, and Compose v2, installed when missing;
  2. engine: a Docker daemon, started for this run when none answers, and stopped at the end;
  3. bases: the base images, built locally because CI reaches no image registry (see below);
  4. build: the five service images, `docker compose build`, from the project's one Dockerfile;
  5. up: `docker compose up --wait` (every healthcheck green, migrations run first);
  6. then, through the published gateway only: /readyz, a password token, an order CONFIRMED, a
     request without a token refused with 401; and the traces of the token request and of the
     order (their X-Trace-Id) received by the collector from every service they crossed;
  7. `docker compose down -v`, whatever happened.
When something is unhealthy or a check fails, it prints `docker compose ps` and the logs of the
containers that are not healthy (all of them when it cannot tell), and exits 1.

Base images, built here and named for what they are (never pulled, never pushed):
  relayshop-local/debian-python:bookworm  `debootstrap --variant=minbase bookworm` from Debian's
        archive (the mirror apt uses on this machine) plus Debian's python3, `docker import`ed, with
        this machine's extra CA certificates (/usr/local/share/ca-certificates) added at build time
        so that uv can reach PyPI from inside a build. The certificates stay in the local image.
  relayshop-local/uv:<version>            uv from its wheel on PyPI, the version the Dockerfile pins
  relayshop-local/postgres-standin:15, relayshop-local/redis-standin:7.0   deploy/ci/postgres, redis
deploy/ci/compose.ci.yml passes them as the Dockerfile's PYTHON_IMAGE and UV_IMAGE arguments and
in place of the postgres, redis and jaeger images; users' files keep the official ones. A base is
rebuilt only when its recipe changes (a label records it), so a warm run goes straight to the build.

Compose v2 is not in Debian bookworm (which has v1, 1.29, which does not understand the compose
file as users run it): it comes from Debian's next release (trixie), the docker-compose package,
built by Debian from source and signed by Debian's archive key, installed alone with an APT pin
that takes nothing else from trixie.
"""

# This tool runs docker, apt-get, debootstrap and tar by name, with arguments of its own only.
# ruff: noqa: S603, S607

from __future__ import annotations

import argparse
import hashlib
import io
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
from relayshop_devtools.devstack import free_port

ROOT = Path(__file__).resolve().parents[1]
CI = ROOT / "deploy/ci"
COMPOSE_FILES = [ROOT / "docker-compose.yml", CI / "compose.ci.yml"]
PROJECT = "relayshop-smoke"
SERVICES = ("gateway", "auth", "orders", "payments", "inventory")
WORK = ROOT / "var/compose-smoke"
PYTHON_BASE = "relayshop-local/debian-python:bookworm"
POSTGRES_IMAGE = "relayshop-local/postgres-standin:15"
REDIS_IMAGE = "relayshop-local/redis-standin:7.0"
EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")
RECIPE_LABEL = "org.relayshop.recipe"
ORDER = {"items": [{"sku": "KB-001", "quantity": 1}], "payment_method": "pm_card_visa"}
TRIXIE_SOURCES = """\
# Compose v2 for relayshop's compose smoke test (tools/compose_smoke.py): only docker-compose is
# taken from trixie, see /etc/apt/preferences.d/relayshop-trixie-compose.
Types: deb
URIs: {mirror}
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
TRIXIE_PIN = """\
# Nothing comes from trixie unless asked for by name (docker-compose/trixie).
Package: *
Pin: release n=trixie
Pin-Priority: 1
"""


class SmokeFailed(Exception):
    pass


START = time.monotonic()


@contextmanager
def step(name: str) -> Iterator[None]:
    began = time.monotonic()
    print(f"[{began - START:6.1f} s] {name} ...", flush=True)
    try:
        yield
    except BaseException:
        print(f"[{time.monotonic() - START:6.1f} s] {name}: FAILED", flush=True)
        raise
    print(f"[{time.monotonic() - START:6.1f} s] {name}: ok ({time.monotonic() - began:.1f} s)")


def run(command: list[str], *, quiet: bool = False, **kwargs: Any) -> str:
    """Run a command; on failure raise with its output (printed as it runs unless quiet)."""
    result = subprocess.run(
        command,
        stdout=subprocess.PIPE if quiet else None,
        stderr=subprocess.STDOUT if quiet else None,
        text=True,
        check=False,
        **kwargs,
    )
    if result.returncode != 0:
        output = f"\n{result.stdout}" if quiet and result.stdout else ""
        raise SmokeFailed(f"{' '.join(command)} exited {result.returncode}{output}")
    return result.stdout or ""


def succeeds(command: list[str]) -> bool:
    return subprocess.run(command, capture_output=True, check=False).returncode == 0


# ---------------------------------------------------------------- 1. tools


def docker_cli() -> str:
    # Debian's client from docker.io matches Debian's daemon; a newer client elsewhere on PATH
    # wants the buildx plugin for BuildKit builds.
    return "/usr/bin/docker" if Path("/usr/bin/docker").exists() else "docker"


def compose_v2() -> bool:
    result = subprocess.run(
        [docker_cli(), "compose", "version", "--short"], capture_output=True, text=True, check=False
    )
    match = re.match(r"v?(\d+)\.(\d+)", result.stdout.strip())
    # 2.24 is the first with `!override`, which deploy/ci/compose.ci.yml uses.
    return (
        result.returncode == 0 and match is not None and (int(match[1]), int(match[2])) >= (2, 24)
    )


def apt_install(*packages: str) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], env=env)


def debian_mirror(apt: Path = Path("/etc/apt")) -> str:
    """The Debian archive apt uses on this machine (deb822 .sources files or sources.list)."""
    for path in sorted((apt / "sources.list.d").glob("*.sources")):
        for stanza in path.read_text().split("\n\n"):
            fields = dict(
                line.split(":", 1) for line in stanza.splitlines() if ":" in line and line[0] != "#"
            )
            if (
                "bookworm" in fields.get("Suites", "").split()
                and "main" in fields.get("Components", "").split()
            ):
                return fields["URIs"].split()[0]
    for path in [apt / "sources.list", *sorted((apt / "sources.list.d").glob("*.list"))]:
        if path.exists():
            for line in path.read_text().splitlines():
                match = re.match(r"deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s+.*\bmain\b", line)
                if match:
                    return match[1]
    raise SmokeFailed("apt has no Debian bookworm main archive configured")


def install_tools() -> None:
    missing = [
        package
        for package, binary in (("docker.io", "/usr/sbin/dockerd"), ("debootstrap", "debootstrap"))
        if not shutil.which(binary)
    ]
    if missing or not compose_v2():
        if os.geteuid() != 0:
            raise SmokeFailed(f"missing {missing or ['docker compose v2']}; run as root")
        if not compose_v2():
            Path("/etc/apt/sources.list.d/relayshop-trixie-compose.sources").write_text(
                TRIXIE_SOURCES.format(mirror=debian_mirror())
            )
            Path("/etc/apt/preferences.d/relayshop-trixie-compose").write_text(TRIXIE_PIN)
        run(["apt-get", "update", "-qq"])
        if missing:
            apt_install(*missing)
        if not compose_v2():
            apt_install("docker-compose/trixie")
    if not compose_v2():
        raise SmokeFailed("`docker compose` is not Compose v2 >= 2.24")
    print("       " + run([docker_cli(), "compose", "version"], quiet=True).strip())


# ---------------------------------------------------------------- 2. engine


def engine_answers() -> bool:
    return succeeds([docker_cli(), "info"])


@contextmanager
def engine() -> Iterator[None]:
    """Use the daemon that answers; otherwise start one for this run and stop it afterwards."""
    if engine_answers():
        print("       a Docker daemon is already running: using it, and leaving it running")
        yield
        return
    if os.geteuid() != 0:
        raise SmokeFailed("no Docker daemon answers and only root can start one")
    WORK.mkdir(parents=True, exist_ok=True)
    log = (WORK / "dockerd.log").open("ab")
    daemon = subprocess.Popen(
        ["dockerd", "--pidfile", str(WORK / "dockerd.pid")], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 60
        while not engine_answers():
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SmokeFailed(f"dockerd did not start; see {WORK / 'dockerd.log'}")
            time.sleep(0.5)
        print(f"       started dockerd (pid {daemon.pid}), log in {WORK / 'dockerd.log'}")
        yield
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        print("       stopped dockerd")


# ---------------------------------------------------------------- 3. base images


def image_recipe(image: str) -> str | None:
    result = subprocess.run(
        [
            docker_cli(),
            "image",
            "inspect",
            "-f",
            f'{{{{ index .Config.Labels "{RECIPE_LABEL}" }}}}',
            image,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() if result.returncode == 0 else None


def fingerprint(*parts: str | bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def extra_certificates() -> list[Path]:
    return sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []


def python_base() -> str:
    packages = "python3,python-is-python3,ca-certificates"
    certificates = extra_certificates()
    mirror = debian_mirror()
    recipe = fingerprint(mirror, packages, *(path.read_bytes() for path in certificates))
    if image_recipe(PYTHON_BASE) == recipe:
        print(f"       {PYTHON_BASE}: up to date")
        return PYTHON_BASE
    with tempfile.TemporaryDirectory(prefix="relayshop-rootfs-") as scratch:
        rootfs = Path(scratch) / "rootfs"
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={packages}",
                "bookworm",
                str(rootfs),
                mirror,
            ],
            quiet=True,
        )
        # The machine's extra certificate authorities, so that uv reaches PyPI from a build.
        for path in certificates:
            shutil.copy(path, rootfs / "usr/local/share/ca-certificates" / path.name)
        run(["chroot", str(rootfs), "update-ca-certificates"], quiet=True)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run(
            [
                docker_cli(),
                "import",
                "--change",
                "ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
                "--change",
                'CMD ["python3"]',
                "--change",
                f"LABEL {RECIPE_LABEL}={recipe}",
                "-",
                PYTHON_BASE,
            ],
            stdin=tar.stdout,
            quiet=True,
        )
        tar.wait()
    print(f"       {PYTHON_BASE}: debootstrapped and imported")
    return PYTHON_BASE


def pinned_uv_version() -> str:
    match = re.search(r"^ARG UV_IMAGE=\S+:(\S+)$", (ROOT / "Dockerfile").read_text(), re.M)
    if not match:
        raise SmokeFailed("the Dockerfile has no `ARG UV_IMAGE=<image>:<version>` line")
    return match[1]


def uv_base() -> str:
    version = pinned_uv_version()
    image = f"relayshop-local/uv:{version}"
    recipe = fingerprint("uv", version)
    if image_recipe(image) == recipe:
        print(f"       {image}: up to date")
        return image
    with tempfile.TemporaryDirectory(prefix="relayshop-uv-") as scratch:
        # pip as this machine has it configured (the project's own virtualenv has no pip).
        run(
            [
                "python3",
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary",
                ":all:",
                "--platform",
                "manylinux_2_17_x86_64",
                "--python-version",
                "3.11",
                f"uv=={version}",
                "-d",
                scratch,
            ],
            quiet=True,
        )
        wheel = next(Path(scratch).glob("uv-*.whl"))
        # The official uv image is `FROM scratch` with /uv and /uvx: the same, from the wheel.
        archive = Path(scratch) / "uv.tar"
        with zipfile.ZipFile(wheel) as zipped, tarfile.open(archive, mode="w") as tar:
            for name in ("uv", "uvx"):
                data = zipped.read(f"uv-{version}.data/scripts/{name}")
                info = tarfile.TarInfo(name)
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
        run(
            [
                docker_cli(),
                "import",
                "--change",
                f"LABEL {RECIPE_LABEL}={recipe}",
                str(archive),
                image,
            ],
            quiet=True,
        )
    print(f"       {image}: from the uv {version} wheel on PyPI")
    return image


def standin(image: str, folder: Path, base: str) -> str:
    files = sorted(path for path in folder.rglob("*") if path.is_file())
    recipe = fingerprint(base, image_recipe(base) or "", *(path.read_bytes() for path in files))
    if image_recipe(image) == recipe:
        print(f"       {image}: up to date")
        return image
    run(
        [
            docker_cli(),
            "build",
            "--quiet",
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--label",
            f"{RECIPE_LABEL}={recipe}",
            "-t",
            image,
            str(folder),
        ],
        quiet=True,
        env={**os.environ, "DOCKER_BUILDKIT": "1"},
    )
    print(f"       {image}: built from {folder.relative_to(ROOT)}")
    return image


# ---------------------------------------------------------------- 4-7. the stack


def secrets_env_file(directory: Path) -> Path:
    """A fresh value for every secret docker-compose.yml requires (`${NAME:?...}`)."""
    names = sorted(set(re.findall(r"\$\{([A-Z0-9_]+):\?", COMPOSE_FILES[0].read_text())))
    path = directory / "smoke.env"
    path.write_text("".join(f"{name}={secrets.token_hex(24)}\n" for name in names))
    path.chmod(0o600)
    return path


class Stack:
    def __init__(self, env_file: Path, env: dict[str, str]) -> None:
        self.env = env
        self.base = [
            docker_cli(),
            "compose",
            "--project-name",
            PROJECT,
            "--env-file",
            str(env_file),
        ]
        for path in COMPOSE_FILES:
            self.base += ["-f", str(path)]

    def compose(self, *args: str, quiet: bool = False) -> str:
        return run([*self.base, *args], quiet=quiet, env=self.env, cwd=ROOT)

    def report(self) -> None:
        """`docker compose ps`, then the logs of every container that is not healthy."""
        print("---- docker compose ps", flush=True)
        subprocess.run([*self.base, "ps", "--all"], env=self.env, cwd=ROOT, check=False)
        listing = subprocess.run(
            [*self.base, "ps", "--all", "--format", "{{.Service}} {{.State}} {{.Health}}"],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split("\n")
        rows = [line.split() for line in listing if line.strip()]
        unhealthy = [row[0] for row in rows if row[1:] not in (["running", "healthy"],)]
        for service in unhealthy or [row[0] for row in rows]:
            print(f"---- logs of {service}", flush=True)
            subprocess.run(
                [*self.base, "logs", "--no-color", "--tail", "80", service],
                env=self.env,
                cwd=ROOT,
                check=False,
            )


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SmokeFailed(what)
    print(f"       {what}")


def trace_services(http: httpx.Client, traces: str, trace_id: str, expected: set[str]) -> set[str]:
    """The services that sent spans of one trace, once all expected have (or after 60 s)."""
    # Each service exports its spans in batches, every few seconds: wait for the last of them.
    deadline, seen = time.monotonic() + 60, set[str]()
    while time.monotonic() < deadline:
        response = http.get(f"{traces}/api/traces/{trace_id}")
        if response.status_code == 200:
            processes = response.json()["data"][0]["processes"].values()
            seen = {process["serviceName"] for process in processes}
            if seen >= expected:
                break
        time.sleep(1)
    return seen


def use_the_system(gateway: str, traces: str) -> None:
    with httpx.Client(timeout=30) as http:
        with step("through the gateway: /readyz"):
            response = http.get(f"{gateway}/readyz")
            check(response.status_code == 200, f"GET /readyz: {response.status_code}")
        with step("through the gateway: a password token for alice"):
            response = http.post(
                f"{gateway}/auth/token",
                data={"grant_type": "password", "username": "alice", "password": "alice-password"},
            )
            check(response.status_code == 200, f"POST /auth/token: {response.status_code}")
            token = response.json()["access_token"]
            token_trace = response.headers["x-trace-id"]
        with step("through the gateway: an order, CONFIRMED"):
            response = http.post(
                f"{gateway}/api/orders", json=ORDER, headers={"Authorization": f"Bearer {token}"}
            )
            body = response.json()
            check(
                response.status_code == 201 and body.get("status") == "CONFIRMED",
                f"POST /api/orders: {response.status_code} {body.get('status')}",
            )
            order_trace = response.headers["x-trace-id"]
        with step("through the gateway: no token, refused"):
            response = http.get(f"{gateway}/api/orders")
            check(
                response.status_code == 401,
                f"GET /api/orders without a token: {response.status_code}",
            )
        with step("traces: received from every service"):
            for what, trace_id, expected in (
                ("the token request", token_trace, {"gateway", "auth"}),
                ("the order", order_trace, {"gateway", "orders", "inventory", "payments"}),
            ):
                seen = trace_services(http, traces, trace_id, expected)
                check(seen >= expected, f"trace of {what}: spans from {', '.join(sorted(seen))}")
            every = set(http.get(f"{traces}/api/services").json()["data"])
            check(every >= set(SERVICES), f"services that sent spans: {', '.join(sorted(every))}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--keep", action="store_true", help="leave the stack running (no `down -v`) to look at it"
    )
    args = parser.parse_args(argv)
    # dockerd, debootstrap and chroot live in sbin, which a non-login shell may not have on PATH.
    os.environ["PATH"] = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # in order with docker's
    try:
        with step("tools: docker.io, debootstrap, Compose v2"):
            install_tools()
        with ExitStack() as daemon:
            with step("engine: a Docker daemon"):
                daemon.enter_context(engine())
            return smoke(keep=args.keep)
    except SmokeFailed as failure:
        print(f"compose smoke test FAILED: {failure}", flush=True)
        return 1


def ci_variables(
    python: str, uv: str, postgres: str, redis: str, gateway_port: int, traces_port: int
) -> dict[str, str]:
    """What deploy/ci/compose.ci.yml reads (`${RELAYSHOP_CI_...}`)."""
    return {
        "RELAYSHOP_CI_PYTHON_IMAGE": python,
        "RELAYSHOP_CI_UV_IMAGE": uv,
        "RELAYSHOP_CI_POSTGRES_IMAGE": postgres,
        "RELAYSHOP_CI_REDIS_IMAGE": redis,
        "RELAYSHOP_CI_GATEWAY_PORT": str(gateway_port),
        "RELAYSHOP_CI_TRACES_PORT": str(traces_port),
    }


def smoke(*, keep: bool) -> int:
    with step("bases: local base images (no registry)"):
        python = python_base()
        uv = uv_base()
        postgres = standin(POSTGRES_IMAGE, CI / "postgres", python)
        redis = standin(REDIS_IMAGE, CI / "redis", python)
    gateway_port, traces_port = free_port(), free_port()
    env = {
        **os.environ,
        "DOCKER_BUILDKIT": "1",
        **ci_variables(python, uv, postgres, redis, gateway_port, traces_port),
    }
    with tempfile.TemporaryDirectory(prefix="relayshop-smoke-") as scratch:
        stack = Stack(secrets_env_file(Path(scratch)), env)
        try:
            with step("build: the five service images (docker compose build)"):
                stack.compose("build", *SERVICES)
            with step("up: docker compose up --wait"):
                try:
                    stack.compose("up", "--detach", "--wait", "--wait-timeout", "180")
                except SmokeFailed:
                    stack.report()
                    raise
            try:
                use_the_system(
                    f"http://127.0.0.1:{gateway_port}", f"http://127.0.0.1:{traces_port}"
                )
            except (SmokeFailed, httpx.HTTPError, KeyError, ValueError) as error:
                stack.report()
                raise SmokeFailed(f"{type(error).__name__}: {error}") from error
        finally:
            if keep:
                print(f"       left running: gateway http://127.0.0.1:{gateway_port}")
            else:
                with step("down: docker compose down -v"):
                    stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "20")
    print(f"compose smoke test passed in {time.monotonic() - START:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
