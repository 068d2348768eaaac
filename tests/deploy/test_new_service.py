"""`make new-service`: in a copy of the repository, a bad name changes nothing, and a good one
gives a service whose own tests pass, that the deployment checks accept, and that answers through
the gateway of a real stack (200 for a permitted role, 403 for another, 401 without a token)."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV = shutil.which("uv") or str(ROOT / "var/tools/bin/uv")
SKIP_PARTS = {".venv", "var", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}


def run(command: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(UV).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)
    return subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def snapshot(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not SKIP_PARTS & set(path.relative_to(root).parts)
    }


@pytest.fixture(scope="module")
def fork(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository as a fork starts from it (tracked and new files), with its own venv."""
    copy = tmp_path_factory.mktemp("fork") / "relayshop"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    synced = run([UV, "sync", "--frozen", "--quiet"], copy)
    assert synced.returncode == 0, synced.stderr
    return copy


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("orders", "is taken"),
        ("gateway", "is taken"),
        ("class", "is reserved"),
        ("shared", "is reserved"),
        ("Shipping", "not a valid service name"),
        ("ship-ping", "not a valid service name"),
        ("9lives", "not a valid service name"),
    ],
)
def test_a_bad_name_is_refused_and_changes_nothing(fork: Path, name: str, reason: str) -> None:
    before = snapshot(fork)
    result = run([str(fork / ".venv/bin/python"), "tools/new_service.py", name], fork)
    assert result.returncode == 2
    assert reason in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert snapshot(fork) == before


def test_a_new_service_works_everywhere(fork: Path) -> None:
    made = run(["make", "new-service", "NAME=shipping"], fork)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (fork / "services/shipping/src/shipping_service/main.py").is_file()

    # Its own tests, the catalogue's checks, .env.example, and the end-to-end test through the
    # gateway of a real stack (six services now) that the scaffold wrote.
    tests = run(
        [
            str(fork / ".venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "services/shipping", "tests/e2e/test_shipping.py", "tests/deploy/test_catalogue.py",
            "tests/deploy/test_env_example.py",
        ],
        fork,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout

    # compose, the Dockerfile and the Kubernetes manifests: every entry wired and consistent.
    checked = run([str(fork / ".venv/bin/python"), "tools/compose_check.py"], fork)
    assert checked.returncode == 0, checked.stdout
    assert "shipping" in (fork / "docker-compose.yml").read_text()
    assert (fork / "deploy/k8s/base/shipping.yaml").is_file()

    # A second time: the name is taken now.
    again = run([str(fork / ".venv/bin/python"), "tools/new_service.py", "shipping"], fork)
    assert again.returncode == 2 and "is taken" in again.stderr
