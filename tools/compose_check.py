"""Check the deployment files statically, as `make compose-check` does in CI (no Docker needed).

    uv run python tools/compose_check.py            # the real files; exit 1 on any failure
    uv run python tools/compose_check.py --compose broken.yml --k8s /tmp/k8s --dockerfile X

One line per check: the compose files against the compose specification (check-jsonschema's
vendored schema), the one Dockerfile (at the root, shared by every service) and CI's stand-in
images (deploy/ci/*/Dockerfile) with hadolint, the Kubernetes manifests built with kustomize (when
installed) and validated with kubernetes-validate, and a parity check: every service, setting,
port and build argument in compose and in the manifests must match what the services really
read, and each service with tables must migrate before it starts, and then not again in the
serving process (RELAYSHOP_MIGRATE_ON_START=false).
Settings are read from the code itself (each service's pydantic-settings class), so a setting
renamed in code but not in a deployment file fails here, not in production.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from ipaddress import ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import AliasChoices, AliasPath, TypeAdapter, ValidationError
from relayshop_platform.catalogue import CATALOGUE, SERVICES_WITH_TABLES
from relayshop_platform.catalogue import service as catalogue_service
from relayshop_platform.issuers import TrustedIssuers
from relayshop_platform.redis_acl import HEALTH_CHECK, RULES, redis_server_args, service_of
from relayshop_platform.settings import PlatformSettings

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # check-jsonschema, hadolint, ... live beside this Python
SERVICES = {service.name: service.port for service in CATALOGUE}  # the service catalogue
# Containers that are not relayshop services (no settings class to compare with).
INFRASTRUCTURE = {"postgres", "redis", "jaeger", "keycloak"}
# Read by libraries or the interpreter, not by a settings class: OpenTelemetry's SDK reads OTEL_*,
# Python reads PYTHON*, tracing.py reads RELAYSHOP_TRACE_FILE directly, and uvicorn reads
# FORWARDED_ALLOW_IPS (which must trust what RELAYSHOP_TRUSTED_PROXIES trusts: check_proxies).
ALLOWED_PREFIXES = ("OTEL_", "PYTHON")
ALLOWED_NAMES = {"RELAYSHOP_TRACE_FILE", "FORWARDED_ALLOW_IPS"}
UVICORN_TRUSTED_DEFAULT = "127.0.0.1,::1"
# Only these may be published on the host by docker-compose.yml (the dev override may add more).
PUBLISHED = {"gateway": {8000}, "jaeger": {16686}, "keycloak": {8080}}
K8S_VERSION = "1.32.0"  # a version kubernetes-validate ships schemas for (works offline)
_REQUIRED_VARIABLE = re.compile(r"^\$\{[A-Z0-9_]+:\?[^}]+\}$")
_PLACEHOLDER = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]+\}|\$\(([A-Z0-9_]+)\)")
# Where a separate step migrates first, the service must not load Alembic again (settings.py).
MIGRATE_ON_START = "RELAYSHOP_MIGRATE_ON_START"
# The keycloak profile: its realm, and the env file that makes gateway and auth trust it.
KEYCLOAK_DIR = ROOT / "deploy" / "keycloak"
KEYCLOAK_IMAGE = re.compile(r"quay\.io/keycloak/keycloak:\d+\.\d+\.\d+")  # pinned, never :latest
# Without the profile's env file the edge trusts no other issuer, as before the profile existed.
TRUSTED_ISSUERS_VALUE = "${TRUSTED_ISSUERS:-[]}"


def migrates_again(env: dict[str, Any]) -> bool:
    """Would a service with this environment also migrate at start? Read as the service reads it:
    pydantic's bool, and the setting's default (true) when absent or unreadable."""
    try:
        return TypeAdapter(bool).validate_python(str(env.get(MIGRATE_ON_START, "true")))
    except ValidationError:
        return True


@dataclass
class Result:
    name: str
    ok: bool
    detail: str = ""

    def line(self) -> str:
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}" + (
            f": {self.detail}" if self.detail else ""
        )


# ---------------------------------------------------------------- what the services read


@dataclass(frozen=True)
class ServiceSettings:
    env_names: frozenset[str]  # every variable the settings class reads
    required: frozenset[str]  # no default in code
    secrets: frozenset[str]  # secret_fields(): must come from a secret, never a literal
    port: int


def settings_class(service: str) -> type[PlatformSettings]:
    module = importlib.import_module(f"{service}_service.config")
    classes = [
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, PlatformSettings)
        and value.__module__ == module.__name__
    ]
    if len(classes) != 1:
        raise LookupError(f"{module.__name__} must define one settings class, found {len(classes)}")
    return classes[0]


def field_env_names(cls: type[PlatformSettings], field_name: str) -> set[str]:
    """The environment variables pydantic-settings reads for one field (case-insensitive)."""
    field = cls.model_fields[field_name]
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        names = {choice for choice in alias.choices if isinstance(choice, str)}
    elif isinstance(alias, str):
        names = {alias}
    elif isinstance(alias, AliasPath):
        names = {str(alias.path[0])}
    else:  # the env prefix applies only when no alias is given
        names = {f"{cls.model_config.get('env_prefix', '')}{field_name}"}
    return {name.upper() for name in names}


def read_settings(service: str) -> ServiceSettings:
    cls = settings_class(service)
    names: set[str] = set(cls.per_service_variables())  # RELAYSHOP_<NEIGHBOUR>_URL, ...
    required: set[str] = set()
    for field_name, field in cls.model_fields.items():
        env = field_env_names(cls, field_name)
        names |= env
        if field.is_required():
            required.add(sorted(env)[0])
    # model_construct() skips validation: we only want the names secret_fields() returns.
    secret_names = cls.model_construct().secret_fields()
    secrets = {
        sorted(field_env_names(cls, name))[-1]
        if name in cls.model_fields
        else f"RELAYSHOP_{name.upper()}"  # one of per_service_variables(): a client's secret
        for name in secret_names
    }
    port = cls.model_fields["port"].default
    return ServiceSettings(frozenset(names), frozenset(required), frozenset(secrets), port)


def is_read(name: str, settings: ServiceSettings) -> bool:
    return (
        name.upper() in settings.env_names
        or name in ALLOWED_NAMES
        or name.startswith(ALLOWED_PREFIXES)
    )


def check_urls(where: str, name: str, env: dict[str, str], *, complete: bool) -> Iterator[str]:
    """RELAYSHOP_<SERVICE>_URL must point at that service's own port, and a service must be told
    where every service it calls is (the catalogue's calls): the defaults are loopback addresses,
    right for `make run` and wrong in any container."""
    for service in CATALOGUE:
        value = env.get(service.url_variable)
        if value is not None and urlsplit(value).port != service.port:
            yield f"{where}: {service.url_variable}={value} is not port {service.port}"
        if complete and value is None and service.name in catalogue_service(name).calls:
            yield f"{where}: calls {service.name} but {service.url_variable} is not set"


def _placeholder(match: re.Match[str]) -> str:
    return "${" + (match.group(1) or match.group(2)) + "}"


def redis_acl_problems(where: str, command: list[Any]) -> Iterator[str]:
    """A Redis command line has exactly the ACL users of relayshop_platform/redis_acl.py, each
    with its service's <SERVICE>_REDIS_PASSWORD (compose's ${NAME:?message} or Kubernetes'
    $(NAME)), and the default user PING only (the healthcheck)."""
    command = [_PLACEHOLDER.sub(_placeholder, str(arg)) for arg in command]
    passwords = {name: f"${{{name.upper()}_REDIS_PASSWORD}}" for name in map(service_of, RULES)}
    expected = redis_server_args(
        passwords, default_password="${REDIS_PASSWORD}", default_rules=HEALTH_CHECK
    )
    users = command[command.index("--user") :] if "--user" in command else []
    if users != expected:
        yield f"{where}: the redis command's --user rules differ from redis_acl.py"


def check_proxies(where: str, env: dict[str, str]) -> Iterator[str]:
    """uvicorn (FORWARDED_ALLOW_IPS) and the services (RELAYSHOP_TRUSTED_PROXIES) must believe
    X-Forwarded-For from the same networks, or a client's address is read two ways."""
    ours = env.get("RELAYSHOP_TRUSTED_PROXIES")
    if ours is None:
        return
    uvicorn = env.get("FORWARDED_ALLOW_IPS", UVICORN_TRUSTED_DEFAULT)
    try:
        trusted = {ip_network(str(net), strict=False) for net in json.loads(ours)}
        allowed = {ip_network(net.strip(), strict=False) for net in uvicorn.split(",")}
    except ValueError as exc:
        yield f"{where}: trusted proxies unreadable ({exc})"
        return
    if trusted != allowed:
        yield f"{where}: FORWARDED_ALLOW_IPS={uvicorn!r} != RELAYSHOP_TRUSTED_PROXIES={ours}"


# ---------------------------------------------------------------- tools run as subprocesses


def run(command: list[str]) -> tuple[bool, str]:
    completed = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    output = (completed.stdout + completed.stderr).strip()
    return completed.returncode == 0, " | ".join(output.splitlines()[-6:])


def tool(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())  # safe_load resolves the `<<: *anchor` merges


# ---------------------------------------------------------------- compose


def compose_schema(files: list[Path]) -> Iterator[Result]:
    for path in files:
        ok, output = run(
            [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)]
        )
        yield Result(f"compose schema {path.name}", ok, "" if ok else output)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # the ["KEY=value"] form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(key): "" if value is None else str(value) for key, value in env.items()}


def build_args(service: dict[str, Any]) -> dict[str, str] | None:
    """The build arguments of a compose service, or None when it is not built here."""
    build = service.get("build")
    if build is None:
        return None
    args = (build.get("args") if isinstance(build, dict) else None) or {}
    if isinstance(args, list):  # the ["KEY=value"] form
        args = dict(item.split("=", 1) if "=" in item else (item, "") for item in args)
    return {str(key): "" if value is None else str(value) for key, value in args.items()}


def published_on_loopback(entry: Any) -> bool:
    host = entry.get("host_ip", "") if isinstance(entry, dict) else str(entry).rsplit(":", 2)[0]
    return str(host) == "127.0.0.1"


def compose_ports(name: str, service: dict[str, Any]) -> Iterator[tuple[str, int]]:
    """(what, port) pairs that must equal the service's port."""
    for entry in service.get("ports") or []:
        target = entry.get("target") if isinstance(entry, dict) else str(entry).split(":")[-1]
        yield "ports target", int(str(target).split("/")[0])
    test = (service.get("healthcheck") or {}).get("test") or []
    for match in re.finditer(r"127\.0\.0\.1:(\d+)|localhost:(\d+)", " ".join(map(str, test))):
        yield "healthcheck", int(match.group(1) or match.group(2))
    command = service.get("command") or []
    if isinstance(command, list) and "--port" in command:
        yield "command --port", int(command[command.index("--port") + 1])


def compose_parity(files: list[Path]) -> Iterator[Result]:
    try:
        problems = list(compose_problems(files))
    except (yaml.YAMLError, ValueError, TypeError, AttributeError) as exc:
        problems = [f"cannot read: {type(exc).__name__}: {exc}".replace("\n", " ")]
    yield Result(
        "compose parity (services, settings, ports, build args)", not problems, "; ".join(problems)
    )


def compose_problems(files: list[Path]) -> Iterator[str]:
    problems: list[str] = []
    base = files[0]
    base_services: dict[str, Any] = (load_yaml(base) or {}).get("services") or {}
    ours = {
        name for name, svc in base_services.items() if name not in INFRASTRUCTURE or "build" in svc
    }
    if ours != set(SERVICES):
        problems.append(f"{base.name}: services {sorted(ours)} != {sorted(SERVICES)}")
    if "redis" in base_services:
        command = base_services["redis"].get("command") or []
        problems += redis_acl_problems(f"{base.name}: redis", command)
    for name, service in base_services.items():
        published = {
            int(
                str(
                    entry.get("published") if isinstance(entry, dict) else str(entry).split(":")[-2]
                )
            )
            for entry in service.get("ports") or []
        }
        if published - PUBLISHED.get(name, set()):
            problems.append(f"{base.name}: {name} publishes {sorted(published)} on the host")
    for path in files:
        for name, service in ((load_yaml(path) or {}).get("services") or {}).items():
            if name not in SERVICES:
                continue
            settings = read_settings(name)
            env = environment(service)
            where = f"{path.name}: {name}"
            problems += [
                f"{where}: {key} is read by nothing" for key in env if not is_read(key, settings)
            ]
            problems += list(check_urls(where, name, env, complete=path == base))
            problems += list(check_proxies(where, env))
            if path == base and _PLACEHOLDER.sub(
                _placeholder, env.get("RELAYSHOP_REDIS_PASSWORD", "")
            ) != (f"${{{name.upper()}_REDIS_PASSWORD}}"):
                problems.append(f"{where}: RELAYSHOP_REDIS_PASSWORD is not its own Redis user's")
            problems += [
                f"{where}: {what} {port} != {SERVICES[name]}"
                for what, port in compose_ports(name, service)
                if port != SERVICES[name]
            ]
            # One Dockerfile builds every service: its SERVICE and PORT arguments choose which.
            args = build_args(service)
            if args is None and path == base:
                problems.append(f"{where}: no build section")
            for key, expected in (("SERVICE", name), ("PORT", str(SERVICES[name]))):
                if args is not None and args.get(key) != expected:
                    problems.append(f"{where}: build arg {key}={args.get(key)} != {expected}")
            if path != base:
                # A development override may publish more, on the host's loopback only.
                problems += [
                    f"{where}: port {entry} is published on every interface, not 127.0.0.1"
                    for entry in service.get("ports") or []
                    if not published_on_loopback(entry)
                ]
                continue
            command = service.get("command") or []
            migrate = f"python -m relayshop_platform.migrate {name} &&"
            if name in SERVICES_WITH_TABLES and migrate not in " ".join(map(str, command)):
                problems.append(f"{where}: the command does not start with `{migrate}`")
            if name in SERVICES_WITH_TABLES and migrates_again(env):
                problems.append(f"{where}: {MIGRATE_ON_START} must be false (the command migrates)")
            if settings.port != SERVICES[name]:
                problems.append(f"{name}: settings port {settings.port} != {SERVICES[name]}")
            for key in sorted(settings.required | settings.secrets):
                value = env.get(key)
                if value is None:
                    problems.append(f"{where}: required setting {key} is not set")
                elif key in settings.secrets and not _REQUIRED_VARIABLE.match(value):
                    problems.append(
                        f"{where}: secret {key} must be ${{VAR:?message}}, not {value!r}"
                    )
    if "keycloak" in base_services:
        problems += keycloak_problems(base, base_services)
    yield from problems


def env_file(path: Path) -> dict[str, str]:
    """A compose env file's KEY=value lines (one pair of single quotes around a value removed)."""
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key.strip()] = value.strip().removeprefix("'").removesuffix("'")
    return values


def keycloak_problems(base: Path, services: dict[str, Any]) -> Iterator[str]:
    """The keycloak service: only under its profile, a pinned image, the realm imported from
    deploy/keycloak; and the issuer its env file makes gateway and auth trust is that realm's,
    reached over the compose network, with the realm's audience, client and redirect URIs."""
    where = f"{base.name}: keycloak"
    service = services["keycloak"]
    if service.get("profiles") != ["keycloak"]:
        yield f"{where}: must run only with --profile keycloak (profiles: [keycloak])"
    if not KEYCLOAK_IMAGE.fullmatch(str(service.get("image", ""))):
        yield f"{where}: image {service.get('image')!r} is not pinned to a version"
    if "--import-realm" not in (service.get("command") or []):
        yield f"{where}: the command does not import the realm (--import-realm)"
    realm_file = KEYCLOAK_DIR / "realm-export.json"
    mounted = [str(v).split(":") for v in service.get("volumes") or []]
    if not any(
        len(parts) == 3
        and (base.parent / parts[0]).resolve() == realm_file.resolve()
        and parts[1].startswith("/opt/keycloak/data/import/")
        and parts[2] == "ro"
        for parts in mounted
    ):
        yield f"{where}: {realm_file.relative_to(ROOT)} is not mounted read-only for import"
    env = environment(service)
    hostname = env.get("KC_HOSTNAME", "")
    if env.get("KC_HOSTNAME_BACKCHANNEL_DYNAMIC") != "true":
        yield f"{where}: KC_HOSTNAME_BACKCHANNEL_DYNAMIC must be true (for keycloak:8080)"
    for name in ("gateway", "auth"):
        value = environment(services.get(name) or {}).get("RELAYSHOP_TRUSTED_ISSUERS")
        if value != TRUSTED_ISSUERS_VALUE:
            yield f"{base.name}: {name} RELAYSHOP_TRUSTED_ISSUERS must be {TRUSTED_ISSUERS_VALUE}"
    realm = json.loads(realm_file.read_text())
    issuer = f"{hostname}/realms/{realm['realm']}"
    try:
        trusted = TypeAdapter(TrustedIssuers).validate_json(
            env_file(KEYCLOAK_DIR / "keycloak.env").get("TRUSTED_ISSUERS", "")
        )
    except (OSError, ValidationError) as exc:
        yield f"keycloak.env: TRUSTED_ISSUERS: {exc}".replace("\n", " ")
        return
    entry = next((item for item in trusted if item.issuer == issuer), None)
    if entry is None:
        yield f"keycloak.env: TRUSTED_ISSUERS does not name the realm's issuer {issuer}"
        return
    expected_discovery = (
        f"http://keycloak:8080/realms/{realm['realm']}/.well-known/openid-configuration"
    )
    if entry.discovery_url != expected_discovery:
        yield f"keycloak.env: discovery_url must be {expected_discovery} (the compose network)"
    clients = {client["clientId"]: client for client in realm.get("clients", [])}
    audiences = {
        mapper.get("config", {}).get("included.custom.audience")
        for client in clients.values()
        for mapper in client.get("protocolMappers", [])
        if mapper.get("protocolMapper") == "oidc-audience-mapper"
    }
    if entry.audience not in audiences:
        yield f"keycloak.env: audience {entry.audience} is added by no audience mapper of the realm"
    for client in entry.allowed_azp or []:
        if client not in clients:
            yield f"keycloak.env: allowed_azp {client} is not a client of the realm"
    console = clients.get(entry.console_client_id or "")
    if console is None:
        yield "keycloak.env: console_client_id is not a client of the realm"
        return
    gateway = "http://localhost:8000"  # where the browser reaches the gateway (its port above)
    if f"{gateway}/console/oidc/callback" not in console.get("redirectUris", []):
        yield f"realm: {console['clientId']} does not accept {gateway}/console/oidc/callback"
    logout = console.get("attributes", {}).get("post.logout.redirect.uris", "").split("##")
    if f"{gateway}/" not in logout:
        yield f"realm: {console['clientId']} does not accept {gateway}/ after logout"


# ---------------------------------------------------------------- the Dockerfile


def dockerfiles(files: list[Path]) -> Iterator[Result]:
    for path in files:
        ok, output = run([tool("hadolint"), str(path)])
        yield Result(
            f"hadolint {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", ok, output
        )


# ---------------------------------------------------------------- Kubernetes


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def listed_resources(directory: Path) -> Iterator[Path]:
    """Without kustomize: the files a kustomization lists, through directories (no patches)."""
    kustomization = load_yaml(directory / "kustomization.yaml") or {}
    for entry in kustomization.get("resources") or []:
        path = (directory / entry).resolve()
        if path.is_dir():
            yield from listed_resources(path)
        else:
            yield path


def kubernetes_documents(directory: Path) -> tuple[list[dict[str, Any]], str]:
    command = kustomize_command()
    if command is not None:
        completed = subprocess.run(  # noqa: S603
            [*command, str(directory)], capture_output=True, text=True, check=False
        )
        if completed.returncode != 0:
            raise ValueError(completed.stderr.strip().splitlines()[-1])
        return [
            doc for doc in yaml.safe_load_all(completed.stdout) if doc
        ], "built with " + command[0]
    documents = []
    for path in listed_resources(directory):
        if not path.exists():
            raise ValueError(f"{path} is listed but does not exist")
        documents += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents, "kustomize not installed: skipped build"


def kubernetes(k8s: Path) -> Iterator[Result]:
    import kubernetes_validate

    directories = sorted(path.parent for path in k8s.rglob("kustomization.yaml"))
    if not directories:
        yield Result(f"kustomizations under {k8s}", False, "none found")
    for directory in directories:
        name = f"k8s {directory.relative_to(k8s)}"
        try:
            documents, how = kubernetes_documents(directory)
        except (ValueError, yaml.YAMLError) as exc:
            yield Result(f"{name} build", False, str(exc))
            continue
        errors = []
        for doc in documents:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                errors.append(
                    f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {exc.message}"
                )
        yield Result(
            f"{name} validates ({len(documents)} objects, {how})", not errors, "; ".join(errors)
        )
        # The base has no Secrets (each cluster brings its own): check completeness on overlays.
        yield kubernetes_parity(name, documents, complete="overlays" in directory.parts)


def kubernetes_parity(name: str, documents: list[dict[str, Any]], *, complete: bool) -> Result:
    problems: list[str] = []
    by_kind: dict[tuple[str, str], dict[str, Any]] = {
        (doc["kind"], doc["metadata"]["name"]): doc for doc in documents
    }
    deployments = {n for (kind, n) in by_kind if kind == "Deployment"}
    redis = by_kind.get(("StatefulSet", "redis"))
    if redis is not None:
        args = redis["spec"]["template"]["spec"]["containers"][0].get("args") or []
        problems += redis_acl_problems("redis", args)
    if deployments - INFRASTRUCTURE != set(SERVICES):
        problems.append(f"Deployments {sorted(deployments)} != {sorted(SERVICES)}")
    for service, port in SERVICES.items():
        deployment = by_kind.get(("Deployment", service))
        if deployment is None:
            continue
        settings = read_settings(service)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        env: dict[str, str] = {}
        from_secret: set[str] = set()
        for item in container.get("env") or []:
            env[item["name"]] = str(item.get("value", ""))
            if "secretKeyRef" in (item.get("valueFrom") or {}):
                from_secret.add(item["name"])
        for source in container.get("envFrom") or []:
            kind, ref = (
                ("ConfigMap", source["configMapRef"])
                if "configMapRef" in source
                else ("Secret", source["secretRef"])
            )
            referenced = by_kind.get((kind, ref["name"]))
            if referenced is None:
                if complete:
                    problems.append(f"{service}: {kind} {ref['name']} is missing")
                continue
            data = {**(referenced.get("data") or {}), **(referenced.get("stringData") or {})}
            for key, value in data.items():
                env[source.get("prefix", "") + key] = str(value)
                if kind == "Secret":
                    from_secret.add(source.get("prefix", "") + key)
        problems += [
            f"{service}: {key} is read by nothing" for key in env if not is_read(key, settings)
        ]
        problems += list(check_urls(service, service, env, complete=True))
        problems += list(check_proxies(service, env))
        if complete:
            problems += [
                f"{service}: required setting {key} is not set"
                for key in sorted(settings.required | settings.secrets)
                if key not in env
            ]
        problems += [
            f"{service}: secret {key} must come from a Secret"
            for key in sorted(settings.secrets & env.keys() - from_secret)
        ]
        ports = [p["containerPort"] for p in container.get("ports") or []]
        if ports != [port]:
            problems.append(f"{service}: containerPort {ports} != [{port}]")
        kube_service = by_kind.get(("Service", service))
        if kube_service is None:
            problems.append(f"{service}: no Service")
        elif [p["port"] for p in kube_service["spec"]["ports"]] != [port]:
            problems.append(f"{service}: Service port != {port}")
        problems += list(hardening(service, deployment, container))
        problems += list(migration(service, deployment, container))
    return Result(
        f"{name} parity (services, settings, ports, hardening, migrations)",
        not problems,
        "; ".join(problems),
    )


def hardening(service: str, deployment: dict[str, Any], container: dict[str, Any]) -> Iterable[str]:
    pod = deployment["spec"]["template"]["spec"]
    if not (pod.get("securityContext") or {}).get("runAsNonRoot"):
        yield f"{service}: runAsNonRoot is not set"
    if not (container.get("securityContext") or {}).get("readOnlyRootFilesystem"):
        yield f"{service}: readOnlyRootFilesystem is not set"
    for probe in ("livenessProbe", "readinessProbe"):
        if probe not in container:
            yield f"{service}: no {probe}"
    if "requests" not in (container.get("resources") or {}):
        yield f"{service}: no resource requests"


def migration(service: str, deployment: dict[str, Any], container: dict[str, Any]) -> Iterable[str]:
    """A service with tables migrates in an initContainer: its own command, image, settings and
    restrictions (compose runs the same command before uvicorn)."""
    if service not in SERVICES_WITH_TABLES:
        return
    command = ["python", "-m", "relayshop_platform.migrate", service]
    init = [
        candidate
        for candidate in deployment["spec"]["template"]["spec"].get("initContainers") or []
        if candidate.get("command") == command
    ]
    if not init:
        yield f"{service}: no initContainer runs {' '.join(command)}"
        return
    for key in ("image", "envFrom", "securityContext"):
        if init[0].get(key) != container.get(key):
            yield f"{service}: the migrate initContainer's {key} differs from the service's"
    env = {item["name"]: str(item.get("value", "")) for item in container.get("env") or []}
    if migrates_again(env):
        yield f"{service}: {MIGRATE_ON_START} must be false (the initContainer migrates)"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--compose",
        type=Path,
        action="append",
        help="compose file; repeat for overrides (default: both of ours)",
    )
    parser.add_argument(
        "--dockerfile",
        type=Path,
        action="append",
        help="Dockerfile to check; repeat (default: the one at the repository root)",
    )
    parser.add_argument(
        "--k8s", type=Path, default=ROOT / "deploy" / "k8s", help="manifests directory"
    )
    args = parser.parse_args(argv)
    compose = args.compose or [ROOT / "docker-compose.yml", ROOT / "compose.override.yml"]
    # The one Dockerfile of the services, and CI's stand-ins for PostgreSQL and Redis.
    docker = args.dockerfile or [ROOT / "Dockerfile", *sorted(ROOT.glob("deploy/ci/*/Dockerfile"))]

    results: list[Result] = []
    for check in (
        lambda: compose_schema(compose),
        lambda: compose_parity(compose),
        lambda: dockerfiles(docker),
        lambda: kubernetes(args.k8s),
    ):
        try:
            for result in check():
                print(result.line(), flush=True)
                results.append(result)
        except Exception as exc:  # a crash in one check is a failure, and the others still run
            result = Result("check crashed", False, f"{type(exc).__name__}: {exc}")
            print(result.line(), flush=True)
            results.append(result)
    failed = sum(not result.ok for result in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
