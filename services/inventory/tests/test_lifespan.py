"""The platform's lifespan (relayshop_platform.app), seen through a real service app."""

from __future__ import annotations

import gc

from fastapi.testclient import TestClient
from inventory_service.main import create_app
from relayshop_devtools.testing import wait_ready


def test_startup_freezes_the_long_lived_objects_and_shutdown_thaws_them(
    service_env: dict[str, str],
) -> None:
    assert gc.get_freeze_count() == 0
    with TestClient(create_app()) as client:
        wait_ready(client)
        # The app, its routes and models sit in the permanent generation while it serves...
        assert gc.get_freeze_count() > 10_000
        assert client.get("/readyz").status_code == 200
    # ...and go back to the collector when it stops (tests build many apps in one process).
    assert gc.get_freeze_count() == 0
