"""`make new-service NAME=<name>`: add a working service to relayshop.

    make new-service NAME=shipping

It writes services/<name>/ from tools/service_template/ (settings, app factory, one resource with
list/read/create routes and their role and scope rules, an SQLModel table, its Alembic migration,
its tests, an end-to-end test through the gateway, a README) and the service's entry in the
catalogue (shared/src/relayshop_platform/catalogue.py): a database of its own, a place behind the
gateway at /api/<name>, calls to auth only. Then it does what `make generate` does: the lockfile
and the virtualenv take the new workspace member, and every file derived from the catalogue
(compose, Kubernetes, the PostgreSQL init script, .env.example) is written again. Everything else
(the gateway's route, auth's client, the scopes, `make run`, the test stacks) reads the catalogue.

The name must be a lowercase Python identifier that is not taken and not reserved; otherwise it
says why and changes nothing. If a later step fails, every change is undone.
docs/adding-a-service.md explains the result, and how to do the same by hand.
"""

# Runs uv and tools by name, with arguments of its own.
# ruff: noqa: S603

from __future__ import annotations

import argparse
import datetime
import keyword
import re
import shutil
import subprocess
import sys
from pathlib import Path

from relayshop_platform.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tools" / "service_template"
RESERVED = {
    "api", "app", "common", "docs", "internal", "platform", "relayshop", "service", "services",
    "shared", "system", "test", "tests", "tools",
}  # fmt: skip
CATALOGUE_MARKER = "    # make new-service adds its entry above this line\n"


class ScaffoldError(Exception):
    pass


def check_name(name: str) -> None:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or not name.isidentifier():
        raise ScaffoldError(
            f"{name!r} is not a valid service name: use lowercase letters, digits and _, "
            "starting with a letter (it becomes the Python package <name>_service)"
        )
    if keyword.iskeyword(name) or name in RESERVED:
        raise ScaffoldError(f"{name!r} is reserved; choose another name")
    if name in {service.name for service in CATALOGUE}:
        raise ScaffoldError(f"{name!r} is taken: it is already in the service catalogue")
    if (ROOT / "services" / name).exists():
        raise ScaffoldError(f"services/{name} already exists")


def placeholders(name: str, port: int) -> dict[str, str]:
    return {
        "{{name}}": name,
        "{{Name}}": "".join(part.capitalize() for part in name.split("_")),
        "{{NAME}}": name.upper(),
        "{{port}}": str(port),
        "{{date}}": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    }


def fill(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def plan(name: str, port: int) -> dict[Path, str]:
    """Every file to write (path -> its whole new content), computed before anything is written."""
    values = placeholders(name, port)
    files: dict[Path, str] = {}
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).with_suffix("")  # drop .tmpl
        target = ROOT / "services" / name / str(relative).replace("__package__", f"{name}_service")
        files[target] = fill(source.read_text(), values)

    catalogue = ROOT / "shared/src/relayshop_platform/catalogue.py"
    entry = (
        f'    Service(\n        "{name}",\n        {port},\n        "/api/{name}",\n'
        "        tables=True,\n        calls=(AUTH,),\n"
        "        writers=(Role.CUSTOMER, Role.ADMIN),\n    ),\n"
    )
    text = catalogue.read_text()
    if CATALOGUE_MARKER not in text:
        raise ScaffoldError(f"catalogue.py: {CATALOGUE_MARKER.strip()!r} not found")
    files[catalogue] = text.replace(CATALOGUE_MARKER, entry + CATALOGUE_MARKER)
    return files


def run(command: list[str]) -> str:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ScaffoldError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")
    return result.stdout


def apply(files: dict[Path, str], name: str) -> list[Path]:
    """Write ``files``, then what `make generate` writes; undo it all if a step fails. Returns
    the generated files that changed."""
    # What uv and the generator rewrite is kept too, so that a failure undoes everything.
    generated = [ROOT / "uv.lock"]
    originals = {path: path.read_text() for path in [*files, *generated] if path.exists()}
    uv = shutil.which("uv") or str(ROOT / "var/tools/bin/uv")
    bin_dir = Path(sys.executable).parent
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        run([uv, "lock", "--quiet"])
        run([uv, "sync", "--frozen", "--all-packages", "--quiet"])
        folder = str(ROOT / "services" / name)
        run([str(bin_dir / "ruff"), "format", "--quiet", folder])
        run([str(bin_dir / "ruff"), "check", "--fix", "--quiet", folder])  # imports sorted
        # New processes: they import the new catalogue and the service's settings, installed a
        # moment ago. First what the generator will write, kept as it is, then the writing.
        generate = [sys.executable, "-m", "relayshop_devtools.generate", "--root", str(ROOT)]
        listed = [ROOT / line for line in run([*generate, "--list"]).split()]
        originals |= {path: path.read_text() for path in listed if path.exists()}
        generated += listed
        run(generate)
    except BaseException:
        for path in [*files, *generated]:
            if path in originals:
                path.write_text(originals[path])
            elif path.exists():
                path.unlink()
        shutil.rmtree(ROOT / "services" / name, ignore_errors=True)
        subprocess.run([uv, "sync", "--frozen", "--all-packages", "--quiet"], cwd=ROOT, check=False)
        raise
    return [path for path in generated if path.read_text() != originals.get(path)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("name", help="the new service's name, e.g. shipping")
    parser.add_argument("--port", type=int, help="default: the next port after the last one")
    args = parser.parse_args(argv)
    try:
        check_name(args.name)
        port = args.port or max(service.port for service in CATALOGUE) + 1
        if port in {service.port for service in CATALOGUE}:
            raise ScaffoldError(f"port {port} is taken")
        files = plan(args.name, port)
        regenerated = apply(files, args.name)
    except ScaffoldError as error:
        print(f"make new-service: {error}", file=sys.stderr)
        return 2
    print(f"{args.name}: services/{args.name}, port {port}, routed at /api/{args.name}")
    for path in sorted(files):
        print(f"  wrote {path.relative_to(ROOT)}")
    for path in sorted(regenerated):
        print(f"  generated {path.relative_to(ROOT)}")
    print(f"Next: make test, then make run (docs/adding-a-service.md). GET /api/{args.name}/items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
