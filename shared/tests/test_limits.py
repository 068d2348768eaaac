"""RequestLimits and the documented problem answers: oversized, malformed, described truthfully."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel
from relayshop_platform.errors import PROBLEM_JSON, install_error_handlers
from relayshop_platform.limits import MAX_BODY_BYTES, MAX_HEADER_BYTES, RequestLimits
from relayshop_platform.security import oauth2_scheme


class Item(BaseModel):
    name: str


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestLimits)

    @app.post("/items/{item_id}")
    async def create(item_id: str, item: Item) -> Item:
        return item

    @app.get("/items/{item_id}", dependencies=[Depends(oauth2_scheme)])
    async def read(item_id: str) -> Item:
        return Item(name=item_id)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {}

    return TestClient(app)


def test_oversized_header_section_is_431(client: TestClient) -> None:
    response = client.post(
        "/items/1", json={"name": "x"}, headers={"x-pad": "p" * MAX_HEADER_BYTES}
    )
    assert response.status_code == 431
    assert response.headers["content-type"] == PROBLEM_JSON


def test_declared_oversized_body_is_413(client: TestClient) -> None:
    response = client.post(
        "/items/1",
        content=b" " * (MAX_BODY_BYTES + 1),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["title"] == "Content Too Large"


def test_chunked_oversized_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    response = client.post(
        "/items/1", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_control_character_in_path_is_400(client: TestClient) -> None:
    response = client.post("/items/a%00b", json={"name": "x"})
    assert response.status_code == 400


def test_request_within_limits_passes(client: TestClient) -> None:
    response = client.post("/items/1", json={"name": "x"}, headers={"x-pad": "p" * 1000})
    assert response.status_code == 200


def test_openapi_documents_errors_as_problem_json(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    answer = schema["paths"]["/items/{item_id}"]["post"]["responses"]["422"]
    assert answer["content"] == {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    invalid = client.post("/items/1", json={"name": 1})
    assert invalid.status_code == 422 and invalid.headers["content-type"] == PROBLEM_JSON


@pytest.mark.parametrize("method", ["OPTIONS", "DELETE", "PATCH"])
def test_wrong_method_is_405_naming_every_method(client: TestClient, method: str) -> None:
    # Two routes serve /items/{item_id}: Allow must name both (RFC 9110 section 15.5.6), not
    # only the first route that matched the path.
    response = client.request(method, "/items/1")
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.headers["content-type"] == PROBLEM_JSON
    assert client.request(method, "/healthz").headers["allow"] == "GET"


def test_openapi_documents_every_answer_the_platform_gives(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    read, create = paths["/items/{item_id}"]["get"], paths["/items/{item_id}"]["post"]
    health = paths["/healthz"]["get"]
    # A token is checked: 401 and 403. A path parameter: 400 and 404. A body: 400 and 413.
    assert {"401", "403", "400", "404", "431"} <= set(read["responses"])
    assert {"400", "404", "413", "431"} <= set(create["responses"])
    assert not {"401", "403"} & set(create["responses"])  # no token checked there
    assert set(health["responses"]) == {"200", "431"}
    # The path parameter's schema refuses what limits.py refuses with 400.
    (parameter,) = read["parameters"]
    assert parameter["schema"]["pattern"] == "^[^\\x00-\\x1f\\x7f]*$"
    assert read["responses"]["401"]["content"] == {
        PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}
    }
