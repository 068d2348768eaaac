"""`make new-service NAME=<name>`: add a working service to relayshop, wired in everywhere.

    make new-service NAME=shipping

It writes services/<name>/ from tools/service_template/ (settings, app factory, one resource with
list/read/create routes and their role rules, an SQLModel table, its Alembic migration, tests,
README) and an end-to-end test (tests/e2e/test_<name>.py), then wires the service in:
  - the service catalogue (shared/src/relayshop_platform/catalogue.py), from which the gateway's
    route, auth's client and its secret, the test harness and .env.example follow;
  - the uv workspace (pyproject.toml, uv.lock), the Procfile and the Makefile's port;
  - docker-compose.yml and compose.override.yml, the PostgreSQL init script, and the Kubernetes
    manifests (base and demo overlay).
Everything the new service needs at deployment is what inventory, the model service, has: a
database of its own, a client, a place behind the gateway, calls to auth only. So the deployment
entries are inventory's, renamed; each one is then checked by tools/compose_check.py, like all.

The name must be a lowercase Python identifier that is not taken and not reserved; otherwise it
says why and changes nothing. Every file is computed first and written only when all of them are;
if the lockfile cannot be updated, every change is undone. docs/adding-a-service.md explains the
result.
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
from collections.abc import Callable
from pathlib import Path

from relayshop_platform.catalogue import CATALOGUE

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "tools" / "service_template"
MODEL = "inventory"  # the service whose deployment entries a new one copies (see the docstring)
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


def renamed(text: str, name: str, port: int) -> str:
    """The model service's entry, made the new service's."""
    model_port = next(s.port for s in CATALOGUE if s.name == MODEL)
    text = text.replace(MODEL.upper(), name.upper()).replace(MODEL, name)
    return re.sub(rf"\b{model_port}\b", str(port), text)


# ---------------------------------------------------------------- text surgery, one helper each


def insert_after_last(text: str, pattern: str, new: str, where: str) -> str:
    """Insert ``new`` (whole lines) after the last line matching ``pattern``."""
    matches = list(re.finditer(pattern, text, re.M))
    if not matches:
        raise ScaffoldError(f"{where}: no line matches {pattern!r}; add the service by hand")
    end = text.index("\n", matches[-1].end()) + 1
    return text[:end] + new + text[end:]


def block(text: str, start: str, where: str) -> tuple[int, int]:
    """(start, end) of a YAML block: the line ``start`` and every line indented deeper."""
    match = re.search(rf"^{re.escape(start)}\n", text, re.M)
    if match is None:
        raise ScaffoldError(f"{where}: no {start.strip()!r} block")
    indent = len(start) - len(start.lstrip())
    end = match.end()
    for line in text[match.end() :].splitlines(keepends=True):
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        end += len(line)
    return match.start(), end


def in_block(text: str, start: str, where: str, edit: Callable[[str], str]) -> str:
    begin, end = block(text, start, where)
    return text[:begin] + edit(text[begin:end]) + text[end:]


def yaml_document(text: str, kind: str, name: str, where: str) -> str:
    for document in text.split("\n---\n"):
        if re.search(rf"^kind: {kind}\n", document, re.M) and re.search(
            rf"^  name: {re.escape(name)}\n", document, re.M
        ):
            return document
    raise ScaffoldError(f"{where}: no {kind} {name}")


# ---------------------------------------------------------------- the plan


def plan(name: str, port: int) -> dict[Path, str]:
    """Every file to write (path -> its whole new content), computed before anything is written."""
    values = placeholders(name, port)
    files: dict[Path, str] = {}
    for source in sorted(TEMPLATE.rglob("*.tmpl")):
        relative = source.relative_to(TEMPLATE).with_suffix("")  # drop .tmpl
        target = (
            ROOT / "tests" / "e2e" / relative.name.replace("__name__", name)
            if relative.parts[0] == "e2e"
            else ROOT / "services" / name / str(relative).replace("__package__", f"{name}_service")
        )
        files[target] = fill(source.read_text(), values)

    def edit(path: str, change: Callable[[str], str]) -> None:
        target = ROOT / path
        files[target] = change(files.get(target) or target.read_text())

    entry = (
        f'    Service(\n        "{name}",\n        {port},\n        "/api/{name}",\n'
        "        tables=True,\n        calls=(AUTH,),\n"
        "        writers=(Role.CUSTOMER, Role.ADMIN),\n    ),\n"
    )
    edit("shared/src/relayshop_platform/catalogue.py", lambda t: _catalogue(t, entry))
    edit("pyproject.toml", lambda t: _workspace(t, name))
    edit("Procfile", lambda t: _copy_line(t, rf"^{MODEL}: .*$", name, port, "Procfile"))
    edit("Makefile", lambda t: _makefile(t, name, port))
    edit("docker-compose.yml", lambda t: _compose(t, name, port))
    edit(
        "compose.override.yml",
        lambda t: (
            t.rstrip("\n")
            + "\n\n"
            + renamed(t[slice(*block(t, f"  {MODEL}:", "override"))], name, port)
        ),
    )
    edit(
        "deploy/postgres/init-databases.sh",
        lambda t: _copy_line(t, rf"^create_service_database {MODEL} .*$", name, port, "init"),
    )
    _kubernetes(files, name, port)
    return files


def _catalogue(text: str, entry: str) -> str:
    if CATALOGUE_MARKER not in text:
        raise ScaffoldError(f"catalogue.py: {CATALOGUE_MARKER.strip()!r} not found")
    return text.replace(CATALOGUE_MARKER, entry + CATALOGUE_MARKER)


def _copy_line(text: str, pattern: str, name: str, port: int, where: str) -> str:
    match = re.search(pattern, text, re.M)
    if match is None:
        raise ScaffoldError(f"{where}: no line matches {pattern!r}")
    return insert_after_last(text, pattern, renamed(match.group(0), name, port) + "\n", where)


def _workspace(text: str, name: str) -> str:
    """relayshop-<name> in the root project's dependencies, and as a workspace source."""
    start = text.find("\ndependencies = [\n")
    end = text.find("\n]\n", start)
    if start < 0 or end < 0:
        raise ScaffoldError("pyproject.toml: no [project] dependencies list")
    text = text[:end] + f'\n    "relayshop-{name}",' + text[end:]
    return insert_after_last(
        text, r"^relayshop-\w+ = \{ workspace = true \}$",
        f"relayshop-{name} = {{ workspace = true }}\n", "pyproject.toml",
    )  # fmt: skip


def _copy_list_line(text: str, pattern: str, name: str, port: int, where: str) -> str:
    """Like _copy_line, for a line inside a YAML flow list (["a", "b",\n "c"]): when the model's
    line closes the list, the copy closes it instead."""
    match = re.search(pattern, text, re.M)
    if match is None:
        raise ScaffoldError(f"{where}: no line matches {pattern!r}")
    line = match.group(0)
    copy = renamed(line, name, port)
    if line.rstrip().endswith("]"):
        line = line.rstrip()[:-1] + ","
    return text[: match.start()] + line + "\n" + copy + text[match.end() :]


def _makefile(text: str, name: str, port: int) -> str:
    upper = name.upper()
    text = insert_after_last(
        text, rf"^RELAYSHOP_{MODEL.upper()}_PORT \?= .*$", f"RELAYSHOP_{upper}_PORT ?= {port}\n",
        "Makefile",
    )  # fmt: skip
    text = insert_after_last(
        text, r"^RELAYSHOP_(?!GATEWAY)\w+_URL \?= .*$",
        f"RELAYSHOP_{upper}_URL ?= http://127.0.0.1:$(RELAYSHOP_{upper}_PORT)\n", "Makefile",
    )  # fmt: skip
    return insert_after_last(
        text, r"^export RELAYSHOP_\w+.*$", f"export RELAYSHOP_{upper}_PORT RELAYSHOP_{upper}_URL\n",
        "Makefile",
    )  # fmt: skip


def _compose(text: str, name: str, port: int) -> str:
    upper = name.upper()
    model = text[slice(*block(text, f"  {MODEL}:", "docker-compose.yml"))]
    begin, _ = block(text, "  postgres:", "docker-compose.yml")
    text = text[:begin] + renamed(model, name, port) + text[begin:]

    def auth(part: str) -> str:
        secret = f"{upper}_CLIENT_SECRET"
        line = f"      RELAYSHOP_{secret}: ${{{secret}:?set {secret} in .env}}\n"
        return insert_after_last(part, r"^      RELAYSHOP_\w+_CLIENT_SECRET: .*$", line, "auth")

    def gateway(part: str) -> str:
        part = insert_after_last(
            part, r"^      RELAYSHOP_\w+_URL: http://.*$",
            f"      RELAYSHOP_{upper}_URL: http://{name}:{port}\n", "gateway environment",
        )  # fmt: skip
        return insert_after_last(
            part, r"^        condition: service_healthy$",
            f"      {name}:\n        condition: service_healthy\n", "gateway depends_on",
        )  # fmt: skip

    def postgres(part: str) -> str:
        password = f"{upper}_DB_PASSWORD"
        line = f"      {password}: ${{{password}:?set {password} in .env}}\n"
        return insert_after_last(part, r"^      [A-Z0-9_]+_DB_PASSWORD: .*$", line, "postgres")

    # Its own Redis ACL user, with the rules of relayshop_platform/redis_acl.py (the model's).
    text = _copy_list_line(text, rf'^\s*"--user", "{MODEL}",.*$', name, port, "redis command")
    text = in_block(text, "  auth:", "docker-compose.yml", auth)
    text = in_block(text, "  gateway:", "docker-compose.yml", gateway)
    return in_block(text, "  postgres:", "docker-compose.yml", postgres)


def _kubernetes(files: dict[Path, str], name: str, port: int) -> None:
    base, demo = ROOT / "deploy/k8s/base", ROOT / "deploy/k8s/overlays/demo"
    model = (base / f"{MODEL}.yaml").read_text()
    _, rest = model.split("\n", 1)  # its first line describes inventory
    files[base / f"{name}.yaml"] = f"# {name} ({port}): made by make new-service.\n" + renamed(
        rest, name, port
    )
    kustomization = (base / "kustomization.yaml").read_text()
    files[base / "kustomization.yaml"] = _copy_line(
        kustomization, rf"^  - {MODEL}\.yaml$", name, port, "kustomization.yaml"
    )
    gateway = (base / "gateway.yaml").read_text()
    files[base / "gateway.yaml"] = insert_after_last(
        gateway, r"^              value: http://\w+:\d+$",
        f"            - name: RELAYSHOP_{name.upper()}_URL\n"
        f"              value: http://{name}:{port}\n", "gateway.yaml",
    )  # fmt: skip
    policies = (base / "network-policies.yaml").read_text()
    # auth admits the new service; the new service admits the gateway only (orders' policy).
    auth_policy = yaml_document(policies, "NetworkPolicy", "auth-ingress", "network-policies")
    allow = (
        "        - podSelector:\n            matchLabels:\n"
        f"              app.kubernetes.io/name: {name}\n"
    )
    new_auth = insert_after_last(
        auth_policy + "\n", r"^              app.kubernetes.io/name: \w+$", allow, "auth-ingress"
    ).rstrip("\n")
    new_auth = re.sub(
        r"^(# auth accepts calls from .*) only\.$", rf"\1, {name} only.", new_auth, flags=re.M
    )
    orders_policy = yaml_document(policies, "NetworkPolicy", "orders-ingress", "network-policies")
    orders_port = next(s.port for s in CATALOGUE if s.name == "orders")
    own = orders_policy.replace("orders", name).replace(str(orders_port), str(port))
    files[base / "network-policies.yaml"] = (
        policies.replace(auth_policy, new_auth).rstrip("\n") + "\n---\n" + own.strip("\n") + "\n"
    )
    secrets = (demo / "secrets.yaml").read_text()
    secrets = _copy_line(secrets, rf"^  {MODEL.upper()}_DB_PASSWORD: .*$", name, port, "secrets")
    secrets = _copy_line(
        secrets, rf"^  RELAYSHOP_{MODEL.upper()}_CLIENT_SECRET: .*$", name, port, "secrets"
    )
    secrets = _copy_line(secrets, rf"^  {MODEL.upper()}_REDIS_PASSWORD: .*$", name, port, "secrets")
    own_secret = yaml_document(secrets, "Secret", f"{MODEL}-secrets", "secrets.yaml")
    files[demo / "secrets.yaml"] = (
        secrets.rstrip("\n") + "\n---\n" + renamed(own_secret, name, port).strip("\n") + "\n"
    )
    # Redis and PostgreSQL admit the services listed in their NetworkPolicies: the new one too.
    for path in (demo / "redis.yaml", ROOT / "deploy/postgres/postgres.yaml"):
        text = path.read_text()
        files[path] = re.sub(
            rf'^(\s*values: \[.*"{MODEL}")\]$', rf'\1, "{name}"]', text, flags=re.M
        )
    # Redis: the new service's ACL user, and its password from the demo Secret.
    redis = files[demo / "redis.yaml"]
    redis = _copy_list_line(redis, rf'^\s*"--user", "{MODEL}",.*$', name, port, "redis.yaml")
    variable = f"{MODEL.upper()}_REDIS_PASSWORD"
    entry = re.search(rf"^            - name: {variable}\n(?:^              .*\n)+", redis, re.M)
    if entry is None:
        raise ScaffoldError(f"redis.yaml: no {variable} in the environment")
    files[demo / "redis.yaml"] = (
        redis[: entry.end()] + renamed(entry.group(0), name, port) + redis[entry.end() :]
    )


# ---------------------------------------------------------------- apply


def run(command: list[str]) -> None:
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ScaffoldError(f"{' '.join(command)} failed:\n{result.stdout}{result.stderr}")


def apply(files: dict[Path, str], name: str) -> None:
    # What uv and env_example.py rewrite is kept too, so that a failure undoes everything.
    generated = [ROOT / "uv.lock", ROOT / ".env.example"]
    originals = {path: path.read_text() for path in [*files, *generated] if path.exists()}
    uv = shutil.which("uv") or str(ROOT / "var/tools/bin/uv")
    try:
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        run([uv, "lock", "--quiet"])
        run([uv, "sync", "--frozen", "--quiet"])
        bin_dir = Path(sys.executable).parent
        new = [str(ROOT / "services" / name), str(ROOT / "tests" / "e2e" / f"test_{name}.py")]
        run([str(bin_dir / "ruff"), "format", "--quiet", *new])
        run([str(bin_dir / "ruff"), "check", "--fix", "--quiet", *new])  # imports sorted
        env_example = subprocess.run(
            [sys.executable, str(ROOT / "tools/env_example.py")],
            cwd=ROOT, capture_output=True, text=True, check=True,
        )  # fmt: skip
        (ROOT / ".env.example").write_text(env_example.stdout)
    except BaseException:
        for path in [*files, *generated]:
            if path in originals:
                path.write_text(originals[path])
            elif path.exists():
                path.unlink()
        shutil.rmtree(ROOT / "services" / name, ignore_errors=True)
        subprocess.run([uv, "sync", "--frozen", "--quiet"], cwd=ROOT, check=False)  # the venv too
        raise


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
        apply(files, args.name)
    except ScaffoldError as error:
        print(f"make new-service: {error}", file=sys.stderr)
        return 2
    print(f"{args.name}: services/{args.name}, port {port}, routed at /api/{args.name}")
    for path in sorted(files):
        print(f"  wrote {path.relative_to(ROOT)}")
    print(f"Next: make test, then make run (docs/adding-a-service.md). GET /api/{args.name}/items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
