"""Settings: production refuses demo secrets and demo accounts; one client secret per catalogue
service that calls another (RELAYSHOP_<CLIENT>_CLIENT_SECRET)."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth_service.config import AuthSettings
from auth_service.seed import DemoAccountsInProduction
from pydantic import ValidationError
from relayshop_platform.catalogue import CATALOGUE

STRONG = {
    "RELAYSHOP_CLIENT_SECRET": "s3cret-auth-0123456789",
    "RELAYSHOP_GATEWAY_CLIENT_SECRET": "s3cret-gateway-0123456789",
    "RELAYSHOP_ORDERS_CLIENT_SECRET": "s3cret-orders-0123456789",
    "RELAYSHOP_PAYMENTS_CLIENT_SECRET": "s3cret-payments-0123456789",
    "RELAYSHOP_INVENTORY_CLIENT_SECRET": "s3cret-inventory-0123456789",
}


@pytest.fixture
def strong_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)


def test_production_refuses_demo_client_secrets(
    strong_secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYSHOP_ORDERS_CLIENT_SECRET", "orders-demo-secret")
    with pytest.raises(ValidationError, match="orders_client_secret"):
        AuthSettings(env="production", seed_demo_users=False)


def test_production_refuses_demo_accounts(strong_secrets: None) -> None:
    with pytest.raises(ValidationError, match="demo accounts"):
        AuthSettings(env="production")


def test_production_accepts_strong_secrets_without_demo_accounts(strong_secrets: None) -> None:
    settings = AuthSettings(env="production", seed_demo_users=False)

    assert (
        settings.service_client_secrets()["payments"] == STRONG["RELAYSHOP_PAYMENTS_CLIENT_SECRET"]
    )


def test_one_client_per_calling_service_with_its_demo_secret() -> None:
    secrets = AuthSettings().service_client_secrets()

    assert set(secrets) == {service.name for service in CATALOGUE if service.calls}
    assert "auth" not in secrets  # auth calls nobody: it needs no client of its own here
    assert all(secret == f"{client}-demo-secret" for client, secret in secrets.items())


def test_keys_dir_defaults_under_the_data_dir(tmp_path: Path) -> None:
    assert AuthSettings(data_dir=tmp_path).key_directory == tmp_path / "keys"


def test_unset_env_means_production(monkeypatch: pytest.MonkeyPatch, strong_secrets: None) -> None:
    monkeypatch.delenv("RELAYSHOP_ENV", raising=False)

    assert AuthSettings(seed_demo_users=False).env == "production"
    for name in STRONG:
        monkeypatch.delenv(name)
    with pytest.raises(ValidationError, match="demo"):
        AuthSettings()  # the demo secrets and accounts of the defaults: refused


def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYSHOP_ENV", "production")
    monkeypatch.setenv("RELAYSHOP_SEED_DEMO_USERS", "false")
    for name, value in STRONG.items():
        monkeypatch.setenv(name, value)


def test_production_refuses_to_start_while_demo_accounts_exist(
    monkeypatch: pytest.MonkeyPatch, make_api
) -> None:
    make_api()  # a demo run seeded alice, bob, carol, walt and admin into this database
    production(monkeypatch)

    with pytest.raises(DemoAccountsInProduction, match="admin, alice, bob, carol, walt"):
        make_api()


def test_production_starts_once_demo_passwords_are_changed(
    monkeypatch: pytest.MonkeyPatch, make_api
) -> None:
    demo = make_api()
    for username in ("alice", "bob", "carol", "walt", "admin"):
        token = demo.login(username)["access_token"]
        change = {"current_password": f"{username}-password", "new_password": "a-real-passw0rd"}
        assert demo.post("/auth/password", token, json=change).status_code == 204
    production(monkeypatch)

    api = make_api()

    assert api.sign_in("admin", "a-real-passw0rd").status_code == 200


def test_production_refuses_a_demo_redis_password(strong_secrets: None) -> None:
    with pytest.raises(ValidationError, match="redis_password"):
        AuthSettings(
            env="production", seed_demo_users=False, redis_password="auth-redis-demo-password"
        )
