"""Login, sessions, CSRF, throttling, API tokens."""

import asyncio
import re
from contextlib import asynccontextmanager

import pytest
from sqlalchemy import select

from app.auth import lookup, service
from app.auth.models import User
from app.memory import Memory, attach


def _csrf(client) -> str:  # type: ignore[no-untyped-def]
    page = client.get("/")  # the home page, or the login page when signed out
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def _login(client, email: str, password: str):  # type: ignore[no-untyped-def]
    return client.post(
        "/login",
        data={"email": email, "password": password, "csrf_token": _csrf(client)},
        follow_redirects=False,
    )


def test_login_sets_httponly_samesite_cookie_and_logout_ends_it(client, factory) -> None:
    user = factory.user("labeler")
    response = _login(client, user.email, "correct-horse-battery")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert "rlhf_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert client.get("/api/v1/me").json()["email"] == user.email

    token = _csrf(client)
    assert (
        client.post("/logout", data={"csrf_token": token}, follow_redirects=False).status_code
        == 303
    )
    assert client.get("/api/v1/me").status_code == 401


def test_wrong_password_is_refused_and_repeated_failures_lock(client, factory) -> None:
    user = factory.user("labeler")
    for _ in range(5):
        assert _login(client, user.email, "wrong-password").status_code == 401
    locked = _login(client, user.email, "correct-horse-battery")
    assert locked.status_code == 429
    assert "too many failed logins" in locked.text


def test_login_without_csrf_token_is_forbidden(client, factory) -> None:
    user = factory.user("labeler")
    client.get("/login")
    response = client.post(
        "/login", data={"email": user.email, "password": "correct-horse-battery"}
    )
    assert response.status_code == 403


def test_cookie_session_needs_csrf_for_state_changes_but_bearer_does_not(client, factory) -> None:
    admin = factory.user("admin")
    _login(client, admin.email, "correct-horse-battery")
    body = {"name": "csrf", "kind": "rating"}
    assert client.post("/api/v1/projects", json=body).status_code == 403
    token = _csrf(client)
    assert (
        client.post("/api/v1/projects", json=body, headers={"X-CSRF-Token": token}).status_code
        == 201
    )
    client.cookies.clear()
    body["name"] = "bearer"
    assert client.post("/api/v1/projects", json=body, headers=admin.headers).status_code == 201


def test_deactivated_user_loses_session_and_tokens(client, factory, session) -> None:
    admin, labeler = factory.user("admin"), factory.user("labeler")
    _login(client, labeler.email, "correct-horse-battery")
    assert client.get("/api/v1/me").status_code == 200
    response = client.patch(
        f"/api/v1/users/{labeler.id}", json={"is_active": False}, headers=admin.headers
    )
    assert response.status_code == 200
    assert client.get("/api/v1/me").status_code == 401
    client.cookies.clear()
    assert client.get("/api/v1/me", headers=labeler.headers).status_code == 401
    assert _login(client, labeler.email, "correct-horse-battery").status_code == 401


def test_tokens_are_stored_hashed_and_can_be_revoked(client, factory, session) -> None:
    admin, labeler = factory.user("admin"), factory.user("labeler")
    created = client.post(
        f"/api/v1/users/{labeler.id}/tokens", json={"name": "script"}, headers=admin.headers
    )
    assert created.status_code == 201
    plain = created.json()["token"]
    headers = {"Authorization": f"Bearer {plain}"}
    assert client.get("/api/v1/me", headers=headers).json()["id"] == labeler.id
    from app.auth.models import ApiToken

    stored = session.get(ApiToken, created.json()["id"])
    assert stored.token_hash != plain and plain not in stored.token_hash
    client.delete(f"/api/v1/tokens/{stored.id}", headers=admin.headers)
    assert client.get("/api/v1/me", headers=headers).status_code == 401
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_password_reset_by_admin(client, factory, session) -> None:
    admin, labeler = factory.user("admin"), factory.user("labeler")
    client.patch(
        f"/api/v1/users/{labeler.id}", json={"password": "a-new-password"}, headers=admin.headers
    )
    assert _login(client, labeler.email, "correct-horse-battery").status_code == 401
    assert _login(client, labeler.email, "a-new-password").status_code == 303
    session.expire_all()
    assert session.get(User, labeler.id).password_hash.startswith("$argon2")


def test_pages_redirect_anonymous_users_to_login(client) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_an_admin_cannot_deactivate_or_demote_themselves(client, factory) -> None:
    admin = factory.user("admin")
    for change in ({"is_active": False}, {"role": "labeler"}):
        refused = client.patch(f"/api/v1/users/{admin.id}", json=change, headers=admin.headers)
        assert refused.status_code == 409, change
        assert refused.json()["detail"] == "you cannot deactivate or demote yourself"
    page = client.post(
        f"/admin/users/{admin.id}/active", data={"active": "false"}, headers=admin.headers
    )
    assert page.status_code == 409 and "you cannot deactivate or demote yourself" in page.text
    me = client.get("/api/v1/me", headers=admin.headers).json()
    assert me["is_active"] and me["role"] == "admin"


def _as_a_request(lookup_call):  # type: ignore[no-untyped-def]
    """What a request of this process resolves now (a lookup on its own event loop)."""
    from app.db_async import dispose_async_engines

    async def run():  # type: ignore[no-untyped-def]
        try:
            return await lookup_call()
        finally:
            await dispose_async_engines()

    return asyncio.run(run())


def _change(session, change: str, user) -> None:  # type: ignore[no-untyped-def]
    """Make `change` to `user` through the auth service, without committing."""
    if change == "revoke":
        token = service.list_tokens(session=session, user_id=user.id)[0]
        service.revoke_token(session=session, token_id=token.id, force=True)
    elif change == "deactivate":
        service.set_active(session=session, user=user, active=False)
    else:
        service.set_role(session=session, user=user, role="labeler")


def _access(memory, user) -> str | None:  # type: ignore[no-untyped-def]
    """The role the user's API token is accepted with now by the process of `memory`
    (None: refused)."""
    found = _as_a_request(lambda: lookup.user_for_token(memory, user.token))
    return None if found is None else found.role


@pytest.mark.parametrize("change", ["revoke", "deactivate", "demote"])
def test_a_change_takes_effect_at_its_commit_though_read_just_before(
    factory, session, change
) -> None:  # type: ignore[no-untyped-def]
    """A request that reads the user between the change's flush and its commit caches the old
    row; the commit must still end the access at once in this process (not after the TTL)."""
    factory.user("admin")
    user = factory.user("admin")
    memory = Memory()
    attach(session, memory)  # the session of a request of this process
    assert _access(memory, user) == "admin"
    _change(session, change, user)
    session.flush()
    assert _access(memory, user) == "admin"  # not committed yet: the old row, now kept
    session.commit()
    assert _access(memory, user) == (None if change != "demote" else "labeler")


def test_a_lookup_reading_while_a_change_commits_does_not_cache_the_old_row(
    factory, session, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    user = factory.user("labeler")
    memory = Memory()
    attach(session, memory)
    real = lookup.read_connection

    @asynccontextmanager
    async def read_then_commit(engine):  # type: ignore[no-untyped-def]
        async with real(engine) as conn:
            yield conn
        # The row is read; the revocation commits before the lookup stores its answer.
        _change(session, "revoke", user)
        session.commit()

    monkeypatch.setattr(lookup, "read_connection", read_then_commit)
    assert _access(memory, user) == "labeler"  # read before the revocation committed
    monkeypatch.setattr(lookup, "read_connection", real)
    assert _access(memory, user) is None


def _signed_in(client, user) -> str:  # type: ignore[no-untyped-def]
    """Sign in on a fresh browser; returns its session cookie."""
    client.cookies.clear()
    assert _login(client, user.email, "correct-horse-battery").status_code == 303
    return client.cookies["rlhf_session"]


def _me(client, cookie: str) -> int:  # type: ignore[no-untyped-def]
    """The status of GET /api/v1/me for a browser that sends only this session cookie."""
    client.cookies.clear()
    client.cookies.set("rlhf_session", cookie)
    return client.get("/api/v1/me").status_code


def test_logout_ends_the_session_on_the_server_not_only_in_the_browser(
    client, factory, session
) -> None:  # type: ignore[no-untyped-def]
    user = factory.user("labeler")
    other = _signed_in(client, user)  # the user's other browser
    copied = _signed_in(client, user)
    assert _me(client, copied) == 200  # and cached
    client.cookies.clear()
    client.cookies.set("rlhf_session", copied)
    out = client.post("/logout", data={"csrf_token": _csrf(client)}, follow_redirects=False)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert _me(client, copied) == 401  # a copy of the cookie is refused at once
    assert _me(client, other) == 200  # the other browser stays signed in

    from app.auth.models import LoginSession
    from app.deps import cookie_signer

    key = cookie_signer().load_session(other)["k"]
    stored = session.scalars(select(LoginSession.key_hash)).all()
    assert len(stored) == 1 and not any(key in digest for digest in stored)  # hashed


@pytest.mark.parametrize("change", [{"password": "a-new-password"}, {"is_active": False}])
def test_a_new_password_or_deactivation_ends_every_session(
    client, factory, session, change
) -> None:  # type: ignore[no-untyped-def]
    from app.auth.models import LoginSession

    admin, user = factory.user("admin"), factory.user("labeler")
    cookies = [_signed_in(client, user), _signed_in(client, user)]
    assert [_me(client, c) for c in cookies] == [200, 200]
    client.cookies.clear()
    changed = client.patch(f"/api/v1/users/{user.id}", json=change, headers=admin.headers)
    assert changed.status_code == 200
    assert [_me(client, c) for c in cookies] == [401, 401]
    session.rollback()
    rows = select(LoginSession.id).where(LoginSession.user_id == user.id)
    assert session.scalars(rows).all() == []


def test_a_session_cookie_is_a_sign_in_the_server_knows(client, factory) -> None:  # type: ignore[no-untyped-def]
    """A validly signed cookie is not enough: its key must name a live sign-in of that user."""
    from app.deps import cookie_signer

    user, other = factory.user("labeler"), factory.user("labeler")
    cookie = _signed_in(client, user)
    data = cookie_signer().load_session(cookie)
    signer = cookie_signer()
    assert _me(client, signer.dump_session(user.id, data["e"], data["k"])) == 200
    assert _me(client, signer.dump_session(user.id, data["e"], "made-up")) == 401
    assert _me(client, signer.dump_session(other.id, 0, data["k"])) == 401  # not theirs
    assert _me(client, signer._session.dumps({"u": user.id, "e": data["e"]})) == 401  # no key
