"""The project form's strength scale and the snapshots form's kto thresholds."""

import json

import pytest

from app.datasets import service
from app.projects.models import Project
from tests.helpers import annotate, prompts_of, ranking_items
from tests.test_pages import login


@pytest.fixture
def artifacts(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def test_the_strength_scale_round_trips_through_the_project_form(client, session, factory) -> None:
    token = login(client, factory.user("admin"))
    form = {
        "csrf_token": token,
        "name": "strong",
        "kind": "ranking",
        "k": "2",
        "strength_scale": "much better = 1\nbetter = 0.6666666666666666\n\nunsure = 0",
    }
    made = client.post("/admin/projects", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    project = session.query(Project).filter_by(name="strong").one()
    assert project.strength_scale == [
        {"label": "much better", "margin": 1.0},
        {"label": "better", "margin": 2 / 3},
        {"label": "unsure", "margin": 0.0},
    ]
    page = client.get(f"/admin/projects/{project.id}").text
    assert "much better = 1\nbetter = 0.6666666666666666\nunsure = 0</textarea>" in page
    # Saving the page again changes nothing (and so is allowed once labels exist).
    settings = {"csrf_token": token, "name": "strong", "k": "2", "overlap": "1"}
    settings |= {"lease_seconds": "1800", "rating_scale": "thumbs"}
    settings["strength_scale"] = "much better = 1\nbetter = 0.6666666666666666\nunsure = 0"
    assert client.post(f"/admin/projects/{project.id}", data=settings).status_code == 200
    bad = client.post(f"/admin/projects/{project.id}", data=settings | {"strength_scale": "x"})
    assert bad.status_code == 422 and "strength_scale: line 1" in bad.text
    four = form | {"name": "four", "k": "4"}
    refused = client.post("/admin/projects", data=four)
    assert refused.status_code == 422 and "k = 2" in refused.text


def test_kto_from_the_snapshots_form(client, session, factory, tmp_path, artifacts) -> None:
    token = login(client, factory.user("admin"))
    project = factory.project(kind="rating", k=3, rating_scale="0-5")
    factory.items(project, ranking_items(1, k=3), tmp_path)
    (pid, rids), = prompts_of(session, project)  # fmt: skip
    scores = {str(rid): s for rid, s in zip(rids, (5, 3, 1), strict=True)}
    annotate(session, project, pid, factory.user(), {"scores": scores}, kind="rating")
    form = {"csrf_token": token, "kind": "kto", "split": "1", "desirable_at": "3"}
    made = client.post(f"/admin/projects/{project.id}/snapshots", data=form, follow_redirects=False)
    assert made.status_code == 303, made.text
    [snapshot] = service.list_snapshots(session=session, project_id=project.id)
    assert snapshot.params["desirable_at"] == 3.0 and snapshot.params["undesirable_at"] == 2.0
    path = service.snapshot_files(snapshot=snapshot)["train.jsonl"]
    labels = sorted(json.loads(line)["label"] for line in path.read_text().splitlines())
    assert labels == [False, True, True]
    page = client.get(f"/admin/projects/{project.id}/snapshots").text
    assert '<option value="kto">kto</option>' in page
    assert f"/admin/runs/new?snapshot={snapshot.id}" not in page  # no run kind trains on kto


def test_the_annotations_page_names_the_strength(client, session, factory, tmp_path) -> None:
    from app.projects.strength import DEFAULT_STRENGTH_SCALE

    project = factory.project(kind="ranking", k=2, strength_scale=DEFAULT_STRENGTH_SCALE)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    (pid, (a, b)), = prompts_of(session, project)  # fmt: skip
    annotate(session, project, pid, factory.user(), {"ranking": [b, a], "strength": 1})
    login(client, factory.user("admin"))
    page = client.get(f"/admin/annotations?project_id={project.id}").text
    assert "Strength: <strong>slightly better</strong>" in page
