"""Project members: a project with members is closed to every other labeler."""

from tests.helpers import ranking_items


def test_members_restrict_a_project_and_removing_the_last_opens_it(
    client, factory, tmp_path
) -> None:
    admin, member, outsider = factory.user("admin"), factory.user(), factory.user()
    project = factory.project(kind="ranking", k=2)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    next_url = f"/api/v1/projects/{project.id}/tasks/next"
    # open to all while it has no members
    opened = client.get(next_url, headers=outsider.headers)
    assert opened.status_code == 200
    first = opened.json()

    added = client.post(
        f"/api/v1/projects/{project.id}/members", json={"user_id": member.id}, headers=admin.headers
    )
    assert [u["id"] for u in added.json()] == [member.id]
    assert client.get(next_url, headers=member.headers).status_code == 200
    refused = client.get(next_url, headers=outsider.headers)
    assert refused.status_code == 403 and "not a member" in refused.json()["detail"]
    visible = {p["id"] for p in client.get("/api/v1/projects", headers=outsider.headers).json()}
    assert project.id not in visible
    assert project.id in {
        p["id"] for p in client.get("/api/v1/projects", headers=member.headers).json()
    }
    page = client.get(
        f"/projects/{project.id}/label", headers=outsider.headers | {"Accept": "text/html"}
    )
    assert page.status_code == 403 and "not a member" in page.text
    # admins may always label, and see every project
    assert client.get(next_url, headers=admin.headers).status_code == 200

    left = client.delete(
        f"/api/v1/projects/{project.id}/members/{member.id}", headers=admin.headers
    )
    assert left.json() == []
    # open again: the outsider gets back the task leased to them before the project closed
    again = client.get(next_url, headers=outsider.headers)
    assert again.status_code == 200 and again.json()["assignment_id"] == first["assignment_id"]
