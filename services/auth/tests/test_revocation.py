"""Revoke (RFC 7009), logout, logout-all, admin revoke, password change, and Redis being down."""

from __future__ import annotations

import jwt
from relayshop_devtools.devstack import free_port


def assert_refused(api, access_token: str) -> None:
    response = api.userinfo(access_token)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def sub_of(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["sub"])


def test_revoke_access_token_makes_userinfo_refuse_it(api) -> None:
    tokens = api.login("alice")
    assert api.userinfo(tokens["access_token"]).status_code == 200

    response = api.post("/auth/revoke", data={"token": tokens["access_token"]})

    assert response.status_code == 200
    assert_refused(api, tokens["access_token"])
    assert api.userinfo(api.login("alice")["access_token"]).status_code == 200


def test_revoke_refresh_token_ends_its_session(api) -> None:
    tokens = api.login("alice")

    response = api.post(
        "/auth/revoke",
        data={"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
    )

    assert response.status_code == 200
    assert api.refresh(tokens["refresh_token"]).status_code == 400
    assert_refused(api, tokens["access_token"])


def test_revoke_answers_200_for_unknown_or_foreign_tokens(api, test_key) -> None:
    for token in ("unknown", "a.b.c", test_key.mint()):
        assert api.post("/auth/revoke", data={"token": token}).status_code == 200


def test_revoke_without_token_is_invalid_request(api) -> None:
    response = api.post("/auth/revoke", data={"token_type_hint": "access_token"})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_logout_revokes_the_token_and_its_session(api) -> None:
    tokens = api.login("alice")
    refreshed = api.refresh(tokens["refresh_token"]).json()  # a second live access token

    response = api.post("/auth/logout", refreshed["access_token"])

    assert response.status_code == 204
    assert_refused(api, refreshed["access_token"])
    assert_refused(api, tokens["access_token"])
    assert api.refresh(refreshed["refresh_token"]).status_code == 400


def test_logout_without_token_is_401(api) -> None:
    response = api.post("/auth/logout")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_logout_all_ends_every_session_of_the_user(api) -> None:
    phone, laptop = api.login("alice"), api.login("alice")
    bob = api.login("bob")

    assert api.post("/auth/logout-all", laptop["access_token"]).status_code == 204

    for session in (phone, laptop):
        assert_refused(api, session["access_token"])
        assert api.refresh(session["refresh_token"]).status_code == 400
    assert api.userinfo(bob["access_token"]).status_code == 200
    assert api.userinfo(api.login("alice")["access_token"]).status_code == 200  # sign in again


def test_admin_revoke_user_ends_that_users_sessions(api) -> None:
    bob = api.login("bob")
    admin = api.login("admin")

    response = api.post(
        f"/auth/admin/users/{sub_of(bob['access_token'])}/revoke", admin["access_token"]
    )

    assert response.status_code == 204
    assert_refused(api, bob["access_token"])
    assert api.refresh(bob["refresh_token"]).status_code == 400
    assert api.userinfo(admin["access_token"]).status_code == 200


def test_admin_revoke_user_is_forbidden_for_non_admins(api) -> None:
    alice, bob = api.login("alice"), api.login("bob")

    response = api.post(
        f"/auth/admin/users/{sub_of(bob['access_token'])}/revoke", alice["access_token"]
    )

    assert response.status_code == 403
    assert api.userinfo(bob["access_token"]).status_code == 200


def test_admin_revoke_unknown_user_is_404(api) -> None:
    admin = api.login("admin")

    assert api.post("/auth/admin/users/nobody/revoke", admin["access_token"]).status_code == 404


def test_password_change_ends_every_session_and_swaps_the_password(api) -> None:
    old = api.login("alice")

    response = api.post(
        "/auth/password",
        old["access_token"],
        json={"current_password": "alice-password", "new_password": "a-much-better-one"},
    )

    assert response.status_code == 204
    assert_refused(api, old["access_token"])
    assert api.refresh(old["refresh_token"]).status_code == 400
    assert api.sign_in("alice").status_code == 400
    assert api.sign_in("alice", "a-much-better-one").status_code == 200


def test_password_change_accepts_a_form(api) -> None:
    token = api.login("bob")["access_token"]

    response = api.post(
        "/auth/password",
        token,
        data={"current_password": "bob-password", "new_password": "bobs-new-password"},
    )

    assert response.status_code == 204


def test_password_change_refuses_wrong_current_password(api) -> None:
    token = api.login("alice")["access_token"]

    response = api.post(
        "/auth/password",
        token,
        json={"current_password": "wrong", "new_password": "a-much-better-one"},
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert api.userinfo(token).status_code == 200


def test_password_change_refuses_bad_body_without_echoing_it(api) -> None:
    token = api.login("alice")["access_token"]

    for body in (
        {"current_password": "alice-password", "new_password": "short"},
        {"current_password": "alice-password"},
        ["not", "an", "object"],
    ):
        response = api.post("/auth/password", token, json=body)
        assert response.status_code == 422
        assert "alice-password" not in response.text
    bad_json = api.post(
        "/auth/password", token, content=b"{nope", headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 422


def test_revoke_answers_503_when_redis_is_down(monkeypatch, make_api) -> None:
    token = make_api().login("alice")["access_token"]
    # Same data dir (same keys and database), but Redis is a closed port now.
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    down = make_api()

    response = down.post("/auth/revoke", data={"token": token})

    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    # And sign-in fails closed instead of dropping the brute-force throttle.
    assert down.sign_in("alice").status_code == 503
