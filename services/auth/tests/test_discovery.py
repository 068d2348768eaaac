"""Discovery documents and CORS for the docs' Authorize button."""

from __future__ import annotations


def test_openid_configuration_names_every_contract_endpoint(api) -> None:
    response = api.client.get("/auth/.well-known/openid-configuration")

    assert response.status_code == 200
    document = response.json()
    issuer = "http://localhost:8000/auth"
    assert document["issuer"] == issuer
    assert document["jwks_uri"] == f"{issuer}/.well-known/jwks.json"
    assert document["token_endpoint"] == f"{issuer}/token"
    assert document["revocation_endpoint"] == f"{issuer}/revoke"
    assert document["userinfo_endpoint"] == f"{issuer}/userinfo"
    assert set(document["grant_types_supported"]) == {
        "password",
        "refresh_token",
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:token-exchange",
    }
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_jwks_publishes_public_members_only_with_short_caching(api) -> None:
    response = api.client.get("/auth/.well-known/jwks.json")

    assert response.status_code == 200
    assert "max-age=60" in response.headers["cache-control"]
    (key,) = response.json()["keys"]
    assert set(key) == {"kty", "kid", "use", "alg", "n", "e"}
    assert (key["kty"], key["use"], key["alg"]) == ("RSA", "sig", "RS256")


def test_userinfo_returns_the_signed_in_user(api) -> None:
    token = api.login("carol")["access_token"]

    body = api.userinfo(token).json()

    assert set(body) == {"sub", "preferred_username", "roles"}
    assert (body["preferred_username"], body["roles"]) == ("carol", ["support"])


def test_userinfo_without_token_is_401_without_error_attribute(api) -> None:
    response = api.client.get("/auth/userinfo")

    assert response.status_code == 401
    assert "error=" not in response.headers["www-authenticate"]


def test_token_endpoint_allows_cross_origin_posts_from_local_docs(api) -> None:
    response = api.client.options(
        "/auth/token",
        headers={"Origin": "http://localhost:8002", "Access-Control-Request-Method": "POST"},
    )

    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:8002"
    assert "access-control-allow-credentials" not in response.headers


def test_token_endpoint_denies_cross_origin_from_elsewhere(api) -> None:
    response = api.client.options(
        "/auth/token",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )

    assert "access-control-allow-origin" not in response.headers


def test_openapi_documents_the_token_form_and_admin_routes(api) -> None:
    schema = api.client.get("/openapi.json").json()

    token = schema["paths"]["/auth/token"]["post"]
    form = token["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
    assert form["required"] == ["grant_type"]
    assert "/auth/admin/keys/rotate" in schema["paths"]
    assert "/auth/password" in schema["paths"]
