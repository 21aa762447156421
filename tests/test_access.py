"""Walk every route of the app: anonymous, labeler and admin get what they should."""

import re

import pytest

from tests.helpers import ranking_items

PUBLIC, USER, ADMIN = "public", "user", "admin"

# Every route must be listed here: a new route without a decision fails the walk.
ACCESS = {
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("POST", "/logout"): PUBLIC,
    ("GET", "/"): USER,
    ("GET", "/projects/{project_id}/label"): USER,
    ("GET", "/admin"): ADMIN,
    ("GET", "/admin/projects/new"): ADMIN,
    ("POST", "/admin/projects"): ADMIN,
    ("GET", "/admin/projects/{project_id}"): ADMIN,
    ("POST", "/admin/projects/{project_id}"): ADMIN,
    ("POST", "/admin/projects/{project_id}/import"): ADMIN,
    ("GET", "/admin/projects/{project_id}/import/progress"): ADMIN,
    ("GET", "/admin/users"): ADMIN,
    ("POST", "/admin/users"): ADMIN,
    ("POST", "/admin/users/{user_id}/active"): ADMIN,
    ("POST", "/admin/users/{user_id}/password"): ADMIN,
    ("POST", "/admin/users/{user_id}/tokens"): ADMIN,
    ("POST", "/admin/tokens/{token_id}/revoke"): ADMIN,
    ("GET", "/admin/annotations"): ADMIN,
    ("GET", "/api/v1/me"): USER,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN,
    ("GET", "/api/v1/tokens"): USER,
    ("POST", "/api/v1/users/{user_id}/tokens"): ADMIN,
    ("DELETE", "/api/v1/tokens/{token_id}"): ADMIN,
    ("GET", "/api/v1/projects"): USER,
    ("POST", "/api/v1/projects"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}"): USER,
    ("PATCH", "/api/v1/projects/{project_id}"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/stats"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/items"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/export"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/tasks/next"): USER,
    ("GET", "/api/v1/projects/{project_id}/progress"): USER,
    ("POST", "/api/v1/assignments/{assignment_id}/annotations"): USER,
    ("POST", "/api/v1/assignments/{assignment_id}/skip"): USER,
    ("POST", "/api/v1/assignments/{assignment_id}/return"): USER,
    ("GET", "/api/v1/assignments"): USER,
    ("GET", "/api/v1/annotations"): USER,
    ("GET", "/api/v1/projects/{project_id}/leaderboard"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/consensus"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/exclusions"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/exclusions"): ADMIN,
    ("DELETE", "/api/v1/exclusions/{exclusion_id}"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/snapshots"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/snapshots"): ADMIN,
    ("GET", "/api/v1/snapshots/{snapshot_id}"): ADMIN,
    ("GET", "/api/v1/snapshots/{snapshot_id}/files/{name}"): ADMIN,
    ("GET", "/admin/projects/{project_id}/leaderboard"): ADMIN,
    ("GET", "/admin/projects/{project_id}/snapshots"): ADMIN,
    ("POST", "/admin/projects/{project_id}/snapshots"): ADMIN,
    ("POST", "/api/v1/runs"): ADMIN,
    ("GET", "/api/v1/runs"): ADMIN,
    ("GET", "/api/v1/runs/defaults/{kind}"): ADMIN,
    ("GET", "/api/v1/runs/{run_id}"): ADMIN,
    ("GET", "/api/v1/runs/{run_id}/metrics"): ADMIN,
    ("GET", "/api/v1/runs/{run_id}/log"): ADMIN,
    ("POST", "/api/v1/runs/{run_id}/cancel"): ADMIN,
    ("GET", "/api/v1/models"): ADMIN,
    ("POST", "/api/v1/models"): ADMIN,
    ("GET", "/admin/runs"): ADMIN,
    ("POST", "/admin/runs"): ADMIN,
    ("GET", "/admin/runs/new"): ADMIN,
    ("GET", "/admin/runs/judge"): ADMIN,
    ("POST", "/admin/runs/judge"): ADMIN,
    ("GET", "/admin/runs/{run_id}"): ADMIN,
    ("POST", "/admin/runs/{run_id}/cancel"): ADMIN,
    ("POST", "/admin/runs/{run_id}/retry"): ADMIN,
    ("POST", "/api/v1/runs/{run_id}/retry"): ADMIN,
    ("GET", "/admin/models"): ADMIN,
    ("POST", "/admin/models"): ADMIN,
    ("POST", "/admin/projects/{project_id}/exclusions"): ADMIN,
    ("POST", "/admin/projects/{project_id}/exclusions/{exclusion_id}/remove"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/members"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/members"): ADMIN,
    ("DELETE", "/api/v1/projects/{project_id}/members/{user_id}"): ADMIN,
    ("POST", "/admin/projects/{project_id}/members"): ADMIN,
    ("POST", "/admin/projects/{project_id}/members/{user_id}/remove"): ADMIN,
    ("GET", "/admin/projects/{project_id}/prompts"): ADMIN,
    ("POST", "/admin/projects/{project_id}/prompts"): ADMIN,
    ("POST", "/admin/projects/{project_id}/prompts/{prompt_id}/{action}"): ADMIN,
    ("POST", "/admin/projects/{project_id}/assignments/{assignment_id}/release"): ADMIN,
    ("GET", "/admin/models/{model_id}"): ADMIN,
    ("GET", "/admin/snapshots"): ADMIN,
    ("GET", "/admin/snapshots/{snapshot_id}"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/prompts"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/prompts/actions"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/prompts/{prompt_id}/requeue"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/prompts/{prompt_id}/retire"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/prompts/{prompt_id}/restore"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/assignments/{assignment_id}/release"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/quality"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/quality/alpha"): ADMIN,
    ("GET", "/api/v1/projects/{project_id}/quality/labelers/{user_id}"): ADMIN,
    ("POST", "/api/v1/projects/{project_id}/quality/labelers/{user_id}/reinstate"): ADMIN,
    ("GET", "/admin/quality"): ADMIN,
    ("GET", "/admin/projects/{project_id}/quality"): ADMIN,
    ("GET", "/admin/projects/{project_id}/quality/labelers/{user_id}"): ADMIN,
    ("POST", "/admin/projects/{project_id}/quality/labelers/{user_id}/reinstate"): ADMIN,
    ("POST", "/admin/projects/{project_id}/quality/settings"): ADMIN,
    # Generation, the next round and the registry leaderboard.
    ("GET", "/admin/projects/{project_id}/generate"): ADMIN,
    ("POST", "/admin/projects/{project_id}/generate"): ADMIN,
    ("GET", "/admin/models/leaderboard"): ADMIN,
    ("POST", "/admin/models/{model_id}/next-round"): ADMIN,
    ("GET", "/api/v1/models/leaderboard"): ADMIN,
    ("POST", "/api/v1/models/{model_id}/next-round"): ADMIN,
}


def _routes(app):  # type: ignore[no-untyped-def]
    """Every (method, path) the app serves, read off its OpenAPI description."""
    for path, operations in app.openapi()["paths"].items():
        for method in operations:
            yield method.upper(), path


def test_every_route_has_an_access_decision(app) -> None:
    assert set(_routes(app)) == set(ACCESS)


@pytest.fixture
def world(client, factory, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from app.config import get_settings
    from app.datasets import service as datasets_service
    from app.datasets.schemas import SnapshotCreate

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    admin, labeler = factory.user("admin"), factory.user("labeler")
    project = factory.project(kind="ranking", k=2)
    factory.items(project, ranking_items(2, k=2), tmp_path)
    snapshot, _ = datasets_service.create_snapshot(
        session=factory.session, project=project, data=SnapshotCreate(kind="prompts")
    )
    task = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=labeler.headers).json()
    ids = {
        "project_id": project.id,
        "user_id": labeler.id,
        "token_id": 1,
        "assignment_id": task["assignment_id"],
        "snapshot_id": snapshot.id,
        "name": "manifest.json",
        "exclusion_id": 1,
        "run_id": 1,
        "kind": "sft",
        "model_id": 1,
        "prompt_id": 1,
        "action": "requeue",
    }
    return admin, labeler, ids


def _call(client, method, path, ids, headers):  # type: ignore[no-untyped-def]
    url = re.sub(r"\{(\w+)\}", lambda m: str(ids[m.group(1)]), path)
    if url.endswith("/export"):
        url += "?kind=prompts"
    return client.request(method, url, headers=headers, follow_redirects=False, json={})


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
def test_route_access(client, world, method, path) -> None:
    admin, labeler, ids = world
    expected = ACCESS[(method, path)]
    anonymous = _call(client, method, path, ids, {})
    if expected != PUBLIC:
        if path.startswith("/api/"):
            assert anonymous.status_code == 401
        else:
            assert anonymous.status_code == 303
            assert anonymous.headers["location"].startswith("/login")
    as_labeler = _call(client, method, path, ids, labeler.headers)
    if expected == ADMIN:
        assert as_labeler.status_code == 403
    else:
        assert as_labeler.status_code not in (401, 403)
    as_admin = _call(client, method, path, ids, admin.headers)
    assert as_admin.status_code not in (401, 403) or path.startswith("/api/v1/assignments/")


PROJECT_ROUTES_OF_USERS = sorted(
    (method, path)
    for (method, path), who in ACCESS.items()
    if who == USER and "{project_id}" in path
)


@pytest.mark.parametrize(("method", "path"), PROJECT_ROUTES_OF_USERS)
def test_a_members_only_project_is_closed_to_other_labelers(
    client, world, factory, method, path
) -> None:  # type: ignore[no-untyped-def]
    """Every route a labeler reaches under a project refuses an outsider once the project has
    members (reading it, its progress, its tasks, its labeling page), and serves a member."""
    admin, labeler, ids = world
    outsider = factory.user("labeler")
    added = client.post(
        f"/api/v1/projects/{ids['project_id']}/members",
        json={"user_id": labeler.id},
        headers=admin.headers,
    )
    assert added.status_code == 200, added.text
    refused = _call(client, method, path, ids, outsider.headers | {"Accept": "text/html"})
    assert refused.status_code in (403, 404), (path, refused.status_code)
    assert "question 0" not in refused.text and '"overlap"' not in refused.text
    member = _call(client, method, path, ids, labeler.headers)
    assert member.status_code in (200, 204), (path, member.status_code)
