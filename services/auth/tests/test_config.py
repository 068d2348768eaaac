"""Settings: production refuses demo secrets and demo accounts."""

from __future__ import annotations

from pathlib import Path

import pytest
from auth_service.config import AuthSettings
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
