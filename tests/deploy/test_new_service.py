"""Adding a service, in a copy of the repository. `make new-service`: a bad name changes nothing,
and a good one gives a service whose own tests pass, that the deployment checks accept, and that
answers through the gateway of a real stack (200 for a permitted role, 403 for another, 401
without a token). By hand: the service's folder and its catalogue entry, then `make generate`,
and nothing else changes; taken out the same way, nothing of it is left."""

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
    synced = run([UV, "sync", "--frozen", "--all-packages", "--quiet"], copy)
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


def changed(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {path for path in before.keys() | after.keys() if before.get(path) != after.get(path)}


def generated_files(fork: Path) -> set[str]:
    """What `make generate` writes in ``fork``: the lockfile, and the generator's outputs."""
    python = str(fork / ".venv/bin/python")
    listed = run([python, "-m", "relayshop_devtools.generate", "--list"], fork)
    assert listed.returncode == 0, listed.stderr
    return {"uv.lock", *listed.stdout.split()}


CATALOGUE_FILE = "shared/src/relayshop_platform/catalogue.py"


def test_a_new_service_works_everywhere(fork: Path) -> None:
    before = snapshot(fork)
    made = run(["make", "new-service", "NAME=shipping"], fork)
    assert made.returncode == 0, made.stdout + made.stderr
    assert (fork / "services/shipping/src/shipping_service/main.py").is_file()
    # Its folder, its catalogue entry, and the files generated from the catalogue: nothing else.
    outside = {
        path
        for path in changed(before, snapshot(fork))
        if not path.startswith("services/shipping/")
    }
    assert outside - generated_files(fork) == {CATALOGUE_FILE}

    # Its own tests (the end-to-end one through the gateway of a real stack of six services
    # among them), the catalogue's checks and the generated files'.
    tests = run(
        [
            str(fork / ".venv/bin/python"), "-m", "pytest", "-q", "-p", "no:cacheprovider",
            "services/shipping", "tests/deploy/test_catalogue.py",
            "tests/deploy/test_generated.py", "tests/deploy/test_procfile.py",
        ],
        fork,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert " passed" in tests.stdout and "skipped" not in tests.stdout

    # compose, the Dockerfile and the Kubernetes manifests: every entry wired and consistent.
    checked = run([str(fork / ".venv/bin/python"), "tools/compose_check.py"], fork)
    assert checked.returncode == 0, checked.stdout
    assert "shipping:" in (fork / "docker-compose.yml").read_text()
    assert (fork / "deploy/k8s/base/shipping.yaml").is_file()

    # A second time: the name is taken now.
    again = run([str(fork / ".venv/bin/python"), "tools/new_service.py", "shipping"], fork)
    assert again.returncode == 2 and "is taken" in again.stderr


def test_a_service_added_by_hand_needs_its_folder_its_entry_and_make_generate(
    fork: Path,
) -> None:
    """billing, copied from shipping's folder and renamed, as someone would without the tool."""
    if not (fork / "services/shipping").is_dir():
        pytest.fail("needs the service of test_a_new_service_works_everywhere")
    before = snapshot(fork)
    for source in (fork / "services/shipping").rglob("*"):
        if source.is_file() and not SKIP_PARTS & set(source.parts):
            relative = str(source.relative_to(fork / "services/shipping"))
            target = fork / "services/billing" / relative.replace("shipping", "billing")
            target.parent.mkdir(parents=True, exist_ok=True)
            text = source.read_text()
            for old, new in (("shipping", "billing"), ("Shipping", "Billing"),
                             ("SHIPPING", "BILLING"), ("8005", "8006")):  # fmt: skip
                text = text.replace(old, new)
            target.write_text(text)
    catalogue = fork / CATALOGUE_FILE
    marker = "    # make new-service adds its entry above this line\n"
    entry = '    Service("billing", 8006, "/api/billing", tables=True, calls=(AUTH,)),\n'
    catalogue.write_text(catalogue.read_text().replace(marker, entry + marker))

    generated = run(["make", "generate"], fork)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    outside = {
        path for path in changed(before, snapshot(fork)) if not path.startswith("services/billing/")
    }
    assert outside - generated_files(fork) == {CATALOGUE_FILE}
    assert {"docker-compose.yml", "uv.lock", ".env.example"} <= outside

    python = str(fork / ".venv/bin/python")
    check = run([python, "-m", "relayshop_devtools.generate", "--check"], fork)
    assert check.returncode == 0, check.stderr
    checked = run([python, "tools/compose_check.py"], fork)
    assert checked.returncode == 0, checked.stdout
    procfile = run([python, "-m", "relayshop_devtools.run", "--print"], fork)
    assert "billing: .venv/bin/python -m relayshop_platform.migrate billing && " in procfile.stdout
    assert "billing_service.main:create_app" in procfile.stdout
    tests = run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "services/billing/tests/test_items.py", "services/billing/tests/test_migrations.py",
         "tests/deploy/test_catalogue.py"],
        fork,
    )  # fmt: skip
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]

    # Taken out again the same way (its folder, its entry, make generate): the repository is
    # as it was, billing's manifest included.
    shutil.rmtree(fork / "services/billing")
    catalogue.write_text(catalogue.read_text().replace(entry, ""))
    generated = run(["make", "generate"], fork)
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "removed deploy/k8s/base/billing.yaml" in generated.stdout
    assert changed(before, snapshot(fork)) == set()
