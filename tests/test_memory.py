"""What a web process remembers of the database (`app.memory`): one object per app, changed
at the commits of the services that change what it holds, within a stated bound when another
process (the CLI, another web process) makes the change."""

import ast
import time
from pathlib import Path

from app.auth import lookup
from app.auth import service as auth_service
from app.main import create_app
from app.memory import Memory
from tests.helpers import ranking_items

ROOT = Path(__file__).resolve().parent.parent


def test_each_app_has_its_own_memory(client, factory) -> None:  # type: ignore[no-untyped-def]
    user = factory.user()
    assert client.get("/api/v1/me", headers=user.headers).status_code == 200
    kept = client.app.state.memory.identities
    assert len(kept) == 1
    other = create_app()
    assert other.state.memory is not client.app.state.memory
    assert other.state.memory.identities == {}


def test_a_change_another_process_makes_reaches_the_server_within_the_ttl(  # type: ignore[no-untyped-def]
    client, factory, session, monkeypatch
) -> None:
    """A session that no request opened (the CLI's) carries no memory: the server's kept
    identity answers until it is `TTL` old, then the change applies."""
    monkeypatch.setattr(lookup, "TTL", 0.5)
    user = factory.user("admin")
    factory.user("admin")
    assert client.get("/api/v1/me", headers=user.headers).json()["role"] == "admin"
    auth_service.set_role(session=session, user=user, role="labeler")
    session.commit()
    assert client.get("/api/v1/me", headers=user.headers).json()["role"] == "admin"
    time.sleep(0.6)
    assert client.get("/api/v1/me", headers=user.headers).json()["role"] == "labeler"


def test_an_admins_change_through_the_server_applies_at_its_commit(  # type: ignore[no-untyped-def]
    client, factory
) -> None:
    admin, user = factory.user("admin"), factory.user("admin")
    assert client.get("/api/v1/me", headers=user.headers).json()["role"] == "admin"
    changed = client.patch(
        f"/api/v1/users/{user.id}", json={"role": "labeler"}, headers=admin.headers
    )
    assert changed.status_code == 200, changed.text
    assert client.get("/api/v1/me", headers=user.headers).json()["role"] == "labeler"


def test_a_project_change_drops_what_is_kept_of_that_project_only(  # type: ignore[no-untyped-def]
    client, factory, tmp_path
) -> None:
    admin = factory.user("admin")
    changed, other = factory.project(k=2), factory.project(k=2)
    memory: Memory = client.app.state.memory
    for project in (changed, other):
        memory.frontiers[project.id] = (time.monotonic() + 3600, time.monotonic() + 3600, 7)
        memory.shapes[project.id] = ("ranking", "id")
        memory.leases[100 + project.id] = type("Held", (), {"project_id": project.id})()
    refused = client.patch(f"/api/v1/projects/{changed.id}", json={"k": 1}, headers=admin.headers)
    assert refused.status_code == 422  # nothing committed: nothing dropped
    assert changed.id in memory.frontiers
    url = f"/api/v1/projects/{changed.id}"
    assert client.patch(url, json={"overlap": 2}, headers=admin.headers).status_code == 200
    assert changed.id not in memory.frontiers and changed.id not in memory.shapes
    assert 100 + changed.id not in memory.leases
    assert other.id in memory.frontiers and other.id in memory.shapes
    assert 100 + other.id in memory.leases


def test_requeued_prompts_reset_the_projects_frontier(  # type: ignore[no-untyped-def]
    client, factory, tmp_path
) -> None:
    admin = factory.user("admin")
    project = factory.project(k=2)
    factory.items(project, ranking_items(2, k=2), tmp_path)
    memory: Memory = client.app.state.memory
    memory.frontiers[project.id] = (time.monotonic() + 3600, time.monotonic() + 3600, 7)
    memory.shapes[project.id] = ("ranking", "id")
    prompts = client.get(f"/api/v1/projects/{project.id}/prompts", headers=admin.headers)
    first = prompts.json()["prompts"][0]["id"]
    url = f"/api/v1/projects/{project.id}/prompts/{first}/requeue"
    assert client.post(url, headers=admin.headers).status_code == 200
    assert project.id not in memory.frontiers
    assert project.id in memory.shapes  # the statement's shape did not change


def test_no_module_installs_a_listener_on_every_session() -> None:
    """Listeners on the Session class see only their own process's ORM changes and run for
    every session of every caller: what memory holds is changed by the services instead."""
    found = []
    for path in sorted((ROOT / "app").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                "listens_for",
                "listen",
            ):
                target = node.args[0] if node.args else None
                if isinstance(target, ast.Name) and target.id in ("Session", "sessionmaker"):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []
