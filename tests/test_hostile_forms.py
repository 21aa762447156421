"""Form posts that fail validation re-render their form with the error; the last admin stays."""

import pytest
from sqlalchemy import select

from tests.test_pages import PASSWORD, login

HTML = {"Accept": "text/html"}


@pytest.fixture
def admin(factory):  # type: ignore[no-untyped-def]
    return factory.user("admin")


RUN_FORMS = [
    {"kind": "policy", "model": "0", "snapshot_id": "0"},
    {"kind": "sft", "model": "m", "snapshot_id": "99999999999999999999"},
    {"kind": "sft", "model": "m", "snapshot_id": "abc"},
    {"kind": "sft", "model": "m", "snapshot_id": "1", "extra_config": '{"lr": NaN}'},
    {"kind": "sft", "model": "m\x00", "snapshot_id": "1"},
    {},
]
SNAPSHOT_FORMS = [
    {"kind": "rankings", "split": "abc"},
    {"kind": "rankings", "split": "nan"},
    {"kind": "bogus"},
    {"kind": "sft", "include_top_ranked": "true", "method": "all"},
]


def test_the_run_and_snapshot_forms_come_back_with_their_errors(client, admin, factory) -> None:  # type: ignore[no-untyped-def]
    project = factory.project()
    token = login(client, admin)
    for form in RUN_FORMS:
        page = client.post("/admin/runs", data=form | {"csrf_token": token}, headers=HTML)
        assert page.status_code == 422, (form, page.text[-500:])
        assert 'id="run-form"' in page.text and 'class="flash bad"' in page.text
    url = f"/admin/projects/{project.id}/snapshots"
    for form in SNAPSHOT_FORMS:
        page = client.post(url, data=form | {"csrf_token": token}, headers=HTML)
        assert page.status_code == 422, (form, page.text[-500:])
        assert "Snapshots" in page.text and 'role="alert"' in page.text


def test_project_user_member_and_model_forms_come_back_with_errors(client, admin, factory) -> None:  # type: ignore[no-untyped-def]
    project = factory.project()
    token = login(client, admin)
    posts = [
        ("/admin/projects", {"name": "", "kind": "ranking"}, "project_new"),
        ("/admin/projects", {"name": "x\x00", "kind": "ranking"}, "project_new"),
        (f"/admin/projects/{project.id}", {"name": "ok", "k": "99999999999999999999"}, "project"),
        (f"/admin/projects/{project.id}", {"name": "ok", "is_archived": "maybe"}, None),
        (f"/admin/projects/{project.id}/members", {"user_id": "abc"}, "project"),
        (f"/admin/projects/{project.id}/members", {"user_id": "-5"}, "project"),
        (f"/admin/projects/{project.id}/import", {"format": "auto"}, "project"),
        ("/admin/users", {"email": "a@b.c\x00", "role": "labeler", "password": "p" * 10}, "u"),
        ("/admin/users", {"email": "a@b.c"}, "users"),
        (f"/admin/users/{admin.id}/password", {"password": "short"}, "users"),
        (f"/admin/users/{admin.id}/tokens", {"name": "n" * 101}, "users"),
        ("/admin/models", {"name": " ", "path": "p"}, "models"),
        (f"/admin/projects/{project.id}/exclusions", {"user_id": "abc"}, "leaderboard"),
        (f"/admin/projects/{project.id}/exclusions", {"user_id": "1", "reason": "r" * 2001}, "l"),
    ]
    for url, form, _ in posts:
        page = client.post(url, data=form | {"csrf_token": token}, headers=HTML)
        assert page.status_code in (200, 422), (url, form, page.status_code)
        assert page.headers["content-type"].startswith("text/html"), (url, form)
        assert "<form" in page.text, (url, form)
    archived = client.get(f"/api/v1/projects/{project.id}", headers=admin.headers).json()
    assert archived["is_archived"] is False  # "maybe" is not a checked box


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(session, factory) -> None:  # type: ignore[no-untyped-def]
    from app.auth import service
    from app.errors import Conflict

    admin = factory.user("admin")
    with pytest.raises(Conflict, match="last active admin"):
        service.set_role(session=session, user=admin, role="labeler")
    with pytest.raises(Conflict, match="last active admin"):
        service.set_active(session=session, user=admin, active=False)
    session.rollback()
    other = factory.user("admin")
    service.set_role(session=session, user=admin, role="labeler")
    session.commit()
    with pytest.raises(Conflict):
        service.set_active(session=session, user=other, active=False)


def test_api_pages_and_cli_go_through_the_last_admin_rule(client, session, factory) -> None:  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from app.auth.models import User
    from app.cli import app as cli

    admin = factory.user("admin")
    second = factory.user("admin")
    # The API: deactivating the other admin is fine, and then it is the last one.
    answer = client.patch(
        f"/api/v1/users/{second.id}", json={"is_active": False}, headers=admin.headers
    )
    assert answer.status_code == 200
    runner = CliRunner()
    done = runner.invoke(cli, ["users", "update", admin.email, "--role", "labeler"])
    assert done.exit_code == 2 and "last active admin" in done.output
    done = runner.invoke(cli, ["users", "update", admin.email, "--inactive"])
    assert done.exit_code == 2
    done = runner.invoke(cli, ["users", "update", second.email, "--active"])
    assert done.exit_code == 0, done.output
    done = runner.invoke(cli, ["users", "update", admin.email, "--role", "labeler", "--json"])
    assert done.exit_code == 0 and '"role": "labeler"' in done.output
    # Pages: the second admin (now the only one) cannot deactivate itself or be deactivated.
    token = login(client, second)
    page = client.post(
        f"/admin/users/{second.id}/active", data={"active": "false", "csrf_token": token}
    )
    assert page.status_code == 409
    session.expire_all()
    roles = dict(session.execute(select(User.email, User.role).where(User.is_active)).all())
    assert roles[second.email] == "admin"


def test_revoking_the_last_way_in_as_admin_needs_force(client, session, factory) -> None:  # type: ignore[no-untyped-def]
    from app.auth import service

    admin = factory.user("admin")
    admin.password_hash = None  # signs in with its token only
    session.commit()
    token_id = service.list_tokens(session=session, user_id=admin.id)[0].id
    answer = client.delete(f"/api/v1/tokens/{token_id}", headers=admin.headers)
    assert answer.status_code == 409 and "nobody could sign in" in answer.json()["detail"]
    assert client.get("/api/v1/me", headers=admin.headers).status_code == 200
    other = client.post(f"/api/v1/users/{admin.id}/tokens", json={}, headers=admin.headers)
    assert client.delete(f"/api/v1/tokens/{token_id}", headers=admin.headers).status_code == 200
    spare = other.json()["id"]
    spare_headers = {"Authorization": f"Bearer {other.json()['token']}"}
    forced = client.delete(f"/api/v1/tokens/{spare}?force=true", headers=spare_headers)
    assert forced.status_code == 200 and forced.json()["revoked_at"]
    assert PASSWORD  # the password login of other admins is untouched by any of this
