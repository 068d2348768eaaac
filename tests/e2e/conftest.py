"""One real stack (five services + Redis as processes) shared by the end-to-end tests.

RELAYSHOP_TEST_REDIS_URL / RELAYSHOP_TEST_POSTGRES_URL move it onto a system Redis and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from relayshop_devtools.devstack import Client, Stack, make_stack


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from make_stack(tmp_path_factory.mktemp("e2e-stack"))


@pytest.fixture(scope="session")
def client(stack: Stack) -> Client:
    return Client(stack)
