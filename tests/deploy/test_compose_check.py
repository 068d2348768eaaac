"""tools/compose_check.py: the real deployment files pass, and each kind of broken copy fails.

Each test copies one real file to tmp_path, breaks it the way a real mistake would, and runs the
checker in-process on the copy (subprocesses only for hadolint, check-jsonschema and kustomize).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from types import ModuleType

import pytest
from relayshop_devtools.repository import load_tool

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
OVERRIDE = ROOT / "compose.override.yml"


def load_checker() -> ModuleType:
    return load_tool("compose_check")


checker = load_checker()


def broken_copy(tmp_path: Path, source: Path, old: str, new: str, name: str | None = None) -> Path:
    text = source.read_text()
    assert old in text, f"{old!r} not in {source.name}: the test needs updating"
    target = tmp_path / (name or source.name)
    target.write_text(text.replace(old, new, 1))
    return target


def copy_k8s(tmp_path: Path) -> Path:
    """deploy/k8s copied to tmp_path/k8s, with ../postgres beside it (the demo overlay uses it)."""
    shutil.copytree(ROOT / "deploy" / "k8s", tmp_path / "k8s")
    shutil.copytree(ROOT / "deploy" / "postgres", tmp_path / "postgres")
    return tmp_path / "k8s"


def compose_failures(capsys: pytest.CaptureFixture[str], *files: Path) -> list[str]:
    results = [*checker.compose_schema(list(files)), *checker.compose_parity(list(files))]
    return [result.line() for result in results if not result.ok]


def test_check_passes_on_real_files(capsys: pytest.CaptureFixture[str]) -> None:
    exit_code = checker.main([])
    output = capsys.readouterr().out
    assert exit_code == 0, output
    assert "FAIL" not in output
    assert " 0 failed" in output


def test_schema_fails_on_invalid_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compose = broken_copy(tmp_path, COMPOSE, "  read_only: true\n", "  read_onyl: true\n")
    failures = compose_failures(capsys, compose)
    assert any("compose schema" in line for line in failures), failures


def test_schema_fails_on_wrong_type(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compose = broken_copy(tmp_path, COMPOSE, "    internal: true\n", "    internal: [true]\n")
    failures = compose_failures(capsys, compose)
    assert any("compose schema" in line for line in failures), failures


def test_parity_fails_on_setting_nothing_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A setting renamed in code but not in compose: the old name is silently ignored at run time.
    compose = broken_copy(
        tmp_path, COMPOSE, "RELAYSHOP_TRUSTED_PROXIES:", "RELAYSHOP_TRUSTED_PROXY:"
    )
    failures = compose_failures(capsys, compose)
    assert any("RELAYSHOP_TRUSTED_PROXY is read by nothing" in line for line in failures), failures


def test_parity_fails_on_unread_variable_in_override(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    override = broken_copy(
        tmp_path, OVERRIDE, "      PYTHONPATH:", "      RELAYSHOP_RELOAD: 'true'\n      PYTHONPATH:"
    )
    failures = compose_failures(capsys, COMPOSE, override)
    assert any("RELAYSHOP_RELOAD is read by nothing" in line for line in failures), failures


def test_parity_fails_on_override_port_on_every_interface(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    override = broken_copy(tmp_path, OVERRIDE, '"127.0.0.1:8003:8003"', '"8003:8003"')
    failures = compose_failures(capsys, COMPOSE, override)
    assert any("port 8003:8003 is published on every interface" in line for line in failures), (
        failures
    )


def test_parity_fails_when_compose_redis_acl_drifts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # orders allowed to publish: one word, and a compromised orders could forge revocations.
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        '"--user", "orders", "reset", "on", ">${ORDERS_REDIS_PASSWORD:?set ORDERS_REDIS_PASSWORD '
        'in .env}", "resetchannels",',
        '"--user", "orders", "reset", "on", ">${ORDERS_REDIS_PASSWORD:?set ORDERS_REDIS_PASSWORD '
        'in .env}", "resetchannels", "+publish",',
    )
    failures = compose_failures(capsys, compose)
    assert any("--user rules differ" in line for line in failures), failures
    shared = broken_copy(
        tmp_path,
        COMPOSE,
        "RELAYSHOP_REDIS_PASSWORD: ${ORDERS_REDIS_PASSWORD:?",
        "RELAYSHOP_REDIS_PASSWORD: ${AUTH_REDIS_PASSWORD:?",
    )
    failures = compose_failures(capsys, shared)
    assert any("orders: RELAYSHOP_REDIS_PASSWORD is not" in line for line in failures), failures
    k8s = copy_k8s(tmp_path)
    redis = k8s / "overlays" / "demo" / "redis.yaml"
    old = '">$(ORDERS_REDIS_PASSWORD)", "resetchannels",'
    assert old in redis.read_text()
    redis.write_text(redis.read_text().replace(old, old + ' "+publish",'))
    failures = [result.line() for result in checker.kubernetes(k8s) if not result.ok]
    assert any("redis: the redis command's --user rules differ" in line for line in failures), (
        failures
    )


def test_parity_fails_on_missing_required_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        "      RELAYSHOP_CLIENT_SECRET:"
        " ${ORDERS_CLIENT_SECRET:?set ORDERS_CLIENT_SECRET in .env}\n",
        "",
    )
    failures = compose_failures(capsys, compose)
    assert any(
        "orders: required setting RELAYSHOP_CLIENT_SECRET is not set" in line for line in failures
    ), failures


def test_parity_fails_on_secret_with_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        "${ORDERS_CLIENT_SECRET:?set ORDERS_CLIENT_SECRET in .env}",
        "${ORDERS_CLIENT_SECRET:-orders-demo-secret}",
    )
    failures = compose_failures(capsys, compose)
    assert any("CLIENT_SECRET must be ${VAR:?message}" in line for line in failures), failures


def test_parity_fails_on_wrong_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        "RELAYSHOP_PAYMENTS_URL: http://payments:8003",
        "RELAYSHOP_PAYMENTS_URL: http://payments:8030",
    )
    failures = compose_failures(capsys, compose)
    assert any("RELAYSHOP_PAYMENTS_URL" in line for line in failures), failures


def test_parity_fails_when_a_caller_is_not_told_where_its_callee_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # payments calls inventory (the service catalogue): without the URL it would call loopback.
    text = COMPOSE.read_text()
    start = text.index("      OTEL_SERVICE_NAME: payments")
    line = "      RELAYSHOP_INVENTORY_URL: http://inventory:8004\n"
    compose = tmp_path / "docker-compose.yml"
    compose.write_text(text[:start] + text[start:].replace(line, "", 1))
    failures = compose_failures(capsys, compose)
    assert any(
        "payments: calls inventory but RELAYSHOP_INVENTORY_URL is not set" in line
        for line in failures
    ), failures


def test_parity_fails_on_a_neighbour_url_the_service_does_not_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # inventory calls nobody but auth: an orders URL in its environment is read by nothing.
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        "      OTEL_SERVICE_NAME: inventory\n",
        "      OTEL_SERVICE_NAME: inventory\n      RELAYSHOP_ORDERS_URL: http://orders:8002\n",
    )
    failures = compose_failures(capsys, compose)
    assert any("inventory: RELAYSHOP_ORDERS_URL is read by nothing" in line for line in failures)


def test_parity_fails_on_extra_published_port(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        "\n    image: relayshop-orders\n",
        '\n    image: relayshop-orders\n    ports: ["8002:8002"]\n',
    )
    failures = compose_failures(capsys, compose)
    assert any("orders publishes [8002]" in line for line in failures), failures


def test_hadolint_fails_on_violation(tmp_path: Path) -> None:
    source = ROOT / "Dockerfile"
    dockerfile = broken_copy(
        tmp_path,
        source,
        "FROM ${UV_IMAGE} AS uv",
        "FROM ghcr.io/astral-sh/uv:latest AS uv",
    )
    results = list(checker.dockerfiles([dockerfile]))
    assert not results[0].ok and "DL3007" in results[0].detail, results[0].line()


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # Copy-pasted from orders: payments' image would run the orders service.
        (
            "args: {SERVICE: payments, PORT: 8003}",
            "args: {SERVICE: orders, PORT: 8003}",
            "payments: build arg SERVICE=orders != payments",
        ),
        (
            "args: {SERVICE: payments, PORT: 8003}",
            "args: {SERVICE: payments, PORT: 8002}",
            "payments: build arg PORT=8002 != 8003",
        ),
        (
            "args: {SERVICE: payments, PORT: 8003}",
            "args: {PORT: 8003}",
            "payments: build arg SERVICE=None != payments",
        ),
    ],
)
def test_parity_fails_on_wrong_build_arg(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: str, new: str, expected: str
) -> None:
    compose = broken_copy(tmp_path, COMPOSE, old, new)
    failures = compose_failures(capsys, compose)
    assert any(expected in line for line in failures), failures


def test_parity_fails_when_compose_skips_migrations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        "python -m relayshop_platform.migrate inventory && exec uvicorn",
        "uvicorn",
    )
    failures = compose_failures(capsys, compose)
    assert any("inventory: the command does not start" in line for line in failures), failures


def test_parity_fails_when_a_migrated_service_would_migrate_again(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The command migrates first; without the setting, Alembic would also load in uvicorn.
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        '      RELAYSHOP_MIGRATE_ON_START: "false"  # the command\'s first step migrated\n',
        "",
    )
    failures = compose_failures(capsys, compose)
    assert any("auth: RELAYSHOP_MIGRATE_ON_START must be false" in line for line in failures), (
        failures
    )


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            '"relayshop_platform.migrate", "orders"]',
            '"relayshop_platform.migrate", "payments"]',
            "orders: no initContainer runs python -m relayshop_platform.migrate orders",
        ),
        (
            "          image: relayshop-orders:0.1.0\n          command:",
            "          image: relayshop-orders:0.0.9\n          command:",
            "orders: the migrate initContainer's image differs",
        ),
        (
            '- name: RELAYSHOP_MIGRATE_ON_START\n              value: "false"',
            '- name: RELAYSHOP_MIGRATE_ON_START\n              value: "true"',
            "orders: RELAYSHOP_MIGRATE_ON_START must be false (the initContainer migrates)",
        ),
    ],
)
def test_kubernetes_parity_fails_on_wrong_migrate_init_container(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    k8s = copy_k8s(tmp_path)
    broken_copy(k8s / "base", k8s / "base" / "orders.yaml", old, new)
    failures = [result.line() for result in checker.kubernetes(k8s) if not result.ok]
    assert any(expected in line for line in failures), failures


def test_kubernetes_parity_fails_on_unread_config_key(tmp_path: Path) -> None:
    k8s = copy_k8s(tmp_path)
    config = k8s / "base" / "config.yaml"
    config.write_text(config.read_text().replace("RELAYSHOP_ISSUER:", "RELAYSHOP_ISSUER_URL:"))
    failures = [result.line() for result in checker.kubernetes(k8s) if not result.ok]
    assert any("RELAYSHOP_ISSUER_URL is read by nothing" in line for line in failures), failures


def test_parity_fails_when_uvicorn_trusts_other_proxies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    compose = broken_copy(
        tmp_path,
        COMPOSE,
        'FORWARDED_ALLOW_IPS: "172.30.99.10/32"',
        'FORWARDED_ALLOW_IPS: "10.0.0.0/8"',
    )
    failures = compose_failures(capsys, compose)
    assert any("FORWARDED_ALLOW_IPS='10.0.0.0/8'" in line for line in failures), failures
    k8s = copy_k8s(tmp_path)
    config = k8s / "base" / "config.yaml"
    config.write_text(config.read_text().replace('FORWARDED_ALLOW_IPS: "10.0.0.0/8"', ""))
    failures = [result.line() for result in checker.kubernetes(k8s) if not result.ok]
    assert any("FORWARDED_ALLOW_IPS='127.0.0.1,::1'" in line for line in failures), failures


def test_kubernetes_fails_on_invalid_manifest(tmp_path: Path) -> None:
    k8s = copy_k8s(tmp_path)
    orders = k8s / "base" / "orders.yaml"
    orders.write_text(orders.read_text().replace("containerPort: 8002", "containerPort: eight"))
    failures = [result.line() for result in checker.kubernetes(k8s) if not result.ok]
    assert any("validates" in line for line in failures), failures


def test_keycloak_must_stay_behind_its_profile(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Without its profile, a plain `docker compose up` would start Keycloak too.
    compose = broken_copy(tmp_path, COMPOSE, "    profiles: [keycloak]\n", "")
    failures = compose_failures(capsys, compose)
    assert any("--profile keycloak" in line for line in failures), failures


def test_keycloak_image_must_be_pinned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    compose = broken_copy(
        tmp_path, COMPOSE, "quay.io/keycloak/keycloak:26.6.0", "quay.io/keycloak/keycloak:latest"
    )
    failures = compose_failures(capsys, compose)
    assert any("is not pinned" in line for line in failures), failures


def test_gateway_and_auth_trust_nothing_without_the_keycloak_env_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A default that trusts Keycloak would change `docker compose up` without the profile.
    compose = broken_copy(
        tmp_path, COMPOSE, "'${TRUSTED_ISSUERS:-[]}'", "'${TRUSTED_ISSUERS:-[{}]}'"
    )
    failures = compose_failures(capsys, compose)
    assert any("gateway RELAYSHOP_TRUSTED_ISSUERS must be" in line for line in failures), failures
