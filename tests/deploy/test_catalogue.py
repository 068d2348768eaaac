"""The service catalogue is the one list of services: what is derived from it agrees with it.
The files written from it are checked by tests/deploy/test_generated.py, `make run`'s Procfile by
test_procfile.py, and compose and the Kubernetes manifests by tools/compose_check.py too."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from auth_service.config import AuthSettings
from gateway_service.config import GatewaySettings
from gateway_service.proxy import routing_table
from relayshop_devtools import devstack
from relayshop_platform.catalogue import (
    AUTH,
    CATALOGUE,
    GATEWAY,
    SERVICE_NAMES,
    SERVICES_WITH_TABLES,
    Service,
    callers_of,
    service,
)
from relayshop_platform.settings import PlatformSettings

ROOT = Path(__file__).resolve().parents[2]


def settings_class(entry: Service) -> type[PlatformSettings]:
    module = importlib.import_module(f"{entry.package}.config")
    return next(
        value
        for value in vars(module).values()
        if isinstance(value, type)
        and issubclass(value, PlatformSettings)
        and value.__module__ == module.__name__
    )


def test_the_catalogue_is_consistent() -> None:
    assert len(set(SERVICE_NAMES)) == len(CATALOGUE)
    assert len({entry.port for entry in CATALOGUE}) == len(CATALOGUE), "two services, one port"
    prefixes = [entry.prefix for entry in CATALOGUE if entry.prefix is not None]
    assert len(set(prefixes)) == len(prefixes)
    for entry in CATALOGUE:
        assert entry.name.isidentifier() and entry.name == entry.name.lower()
        assert set(entry.calls) <= set(SERVICE_NAMES), f"{entry.name} calls an unknown service"
        assert entry.name not in entry.calls
        assert entry.audience == f"urn:relayshop:{entry.name}"
        # Every service but auth loads auth's keys: it must be among its calls.
        assert entry.name == AUTH or AUTH in entry.calls
    assert service(GATEWAY).prefix is None and set(callers_of(GATEWAY)) == set()


def test_an_unknown_name_is_a_clear_error() -> None:
    with pytest.raises(KeyError, match="'no-such-service' is not in the service catalogue"):
        service("no-such-service")


@pytest.fixture
def default_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RELAYSHOP_<NAME>_URL from the environment (the Makefile exports some)."""
    for entry in CATALOGUE:
        monkeypatch.delenv(entry.url_variable, raising=False)


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda entry: entry.name)
def test_each_service_is_what_its_entry_says(entry: Service, default_addresses: None) -> None:
    cls = settings_class(entry)
    settings = cls()
    assert settings.service_name == entry.name
    assert settings.port == entry.port
    # Its settings hold the URLs of the services it calls, and of no other.
    assert set(settings.service_urls) == set(entry.calls) - {AUTH}
    for callee in entry.calls:
        assert settings.url(callee) == (
            settings.auth_url if callee == AUTH else service(callee).local_url
        )
    for other in set(SERVICE_NAMES) - set(entry.calls) - {AUTH}:
        with pytest.raises(KeyError, match=f"{entry.name} does not call {other}"):
            settings.url(other)
    migrations = ROOT / "services" / entry.name / "src" / entry.package / "migrations"
    assert migrations.is_dir() == entry.tables == (entry.name in SERVICES_WITH_TABLES)
    assert callable(importlib.import_module(f"{entry.package}.main").create_app)


def test_a_neighbour_url_comes_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RELAYSHOP_INVENTORY_URL", "http://inventory.internal:9004/")
    assert GatewaySettings().url("inventory") == "http://inventory.internal:9004"


def test_the_gateway_routes_every_service_with_a_prefix() -> None:
    table = routing_table(GatewaySettings())
    assert {(u.name, u.prefix) for u in table} == {
        (entry.name, entry.prefix) for entry in CATALOGUE if entry.prefix is not None
    }
    assert [u.name for u in table if not u.needs_token] == [AUTH]


def test_auth_has_one_client_per_calling_service() -> None:
    assert set(AuthSettings().service_client_secrets()) == {e.name for e in CATALOGUE if e.calls}


def test_devstack_starts_every_service_auth_first_gateway_last() -> None:
    assert set(devstack.SERVICES) == set(SERVICE_NAMES)
    assert devstack.SERVICES[0] == AUTH and devstack.SERVICES[-1] == GATEWAY
