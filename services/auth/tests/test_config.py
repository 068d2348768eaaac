"""Settings: production refuses demo secrets and demo accounts."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth_service.config import AuthSettings
from auth_service.seed import DemoAccountsInProduction
from pydantic import ValidationError

STRONG = {
    "client_secret": "s3cret-auth-0123456789",
    "gateway_client_secret": "s3cret-gateway-0123456789",
    "orders_client_secret": "s3cret-orders-0123456789",
    "payments_client_secret": "s3cret-payments-0123456789",
    "inventory_client_secret": "s3cret-inventory-0123456789",
}


def test_production_refuses_demo_client_secrets() -> None:
    with pytest.raises(ValidationError, match="orders_client_secret"):
        AuthSettings(
            env="production",
            seed_demo_users=False,
            **{**STRONG, "orders_client_secret": "orders-demo-secret"},
        )


def test_production_refuses_demo_accounts() -> None:
    with pytest.raises(ValidationError, match="demo accounts"):
        AuthSettings(env="production", **STRONG)


def test_production_accepts_strong_secrets_without_demo_accounts() -> None:
    settings = AuthSettings(env="production", seed_demo_users=False, **STRONG)

    assert settings.service_client_secrets()["payments"] == STRONG["payments_client_secret"]


def test_keys_dir_defaults_under_the_data_dir(tmp_path: Path) -> None:
    assert AuthSettings(data_dir=tmp_path).key_directory == tmp_path / "keys"


def test_unset_env_means_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RELAYSHOP_ENV", raising=False)

    assert AuthSettings(seed_demo_users=False, **STRONG).env == "production"
    with pytest.raises(ValidationError, match="demo"):
        AuthSettings()  # the demo secrets and accounts of the defaults: refused


def production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYSHOP_ENV", "production")
    monkeypatch.setenv("RELAYSHOP_SEED_DEMO_USERS", "false")
    for name, value in STRONG.items():
        monkeypatch.setenv(f"RELAYSHOP_{name.upper()}", value)


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


def test_production_refuses_a_demo_redis_password() -> None:
    with pytest.raises(ValidationError, match="redis_password"):
        AuthSettings(
            env="production",
            seed_demo_users=False,
            redis_password="auth-redis-demo-password",
            **STRONG,
        )
