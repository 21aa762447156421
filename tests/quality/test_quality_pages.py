"""The quality page as a new admin reads it: an α chart with an axis that says when it has too
few points for a line."""

import re
from datetime import timedelta

from sqlalchemy import select

from app.labeling.models import Annotation
from tests.quality import sim
from tests.test_pages import login


def _alpha_section(page: str) -> str:
    return page.split("<h2>α over time</h2>", 1)[1].split("</section>", 1)[0]


def _labeled(factory, session, tmp_path, prompts: int = 8):  # type: ignore[no-untyped-def]
    project = factory.project(k=3, overlap=3)
    factory.items(project, sim.items(prompts, k=3), tmp_path)
    crew = sim.crew(session, ["careful"] * 3)
    sim.work(session, project, crew, seed=1)
    return project, crew


def test_alpha_chart_has_an_axis_and_says_when_it_has_fewer_than_two_points(
    client, factory, session, tmp_path
) -> None:
    login(client, factory.user("admin"))
    empty = factory.project(k=3)
    section = _alpha_section(client.get(f"/admin/projects/{empty.id}/quality").text)
    labels = re.findall(r'class="tick">([^<]+)</text>', section.split('id="alpha-chart"')[0])
    assert labels[0] == "0" and labels[-1] == "1" and len(labels) == 5  # 0, .25 … 1
    assert re.search(r'<line x1="0" x2="0" y1="\d+" y2="\d+" class="axis"/>', section)
    assert "a value on 0 of these days and a line needs two" in section
    assert 'class="line"' not in section

    project, _ = _labeled(factory, session, tmp_path)
    section = _alpha_section(client.get(f"/admin/projects/{project.id}/quality").text)
    assert "a value on 1 of these days" in section and section.count('class="dot"') == 1

    # half of the prompts were labeled yesterday: α has a value on two days, and a line
    annotations = session.scalars(
        select(Annotation).where(Annotation.project_id == project.id)
    ).all()
    prompts = sorted({a.prompt_id for a in annotations})
    for annotation in annotations:
        if annotation.prompt_id in prompts[: len(prompts) // 2]:
            annotation.created_at -= timedelta(days=1)
    session.commit()
    section = _alpha_section(client.get(f"/admin/projects/{project.id}/quality").text)
    assert "alpha-too-few" not in section
    assert section.count('class="dot"') == 2 and section.count('class="line"') == 1


def _row(page: str, user_id: int) -> str:
    return re.search(rf'<tr data-user="{user_id}">(.*?)</tr>', page, re.S).group(1)


def test_a_labeler_with_too_few_shared_labels_shows_not_enough_labels(
    client, factory, session, tmp_path
) -> None:
    admin = factory.user("admin")
    login(client, admin)
    project = factory.project(k=3, overlap=4)
    factory.items(project, sim.items(12, k=3), tmp_path)
    crew = sim.crew(session, ["careful"] * 3)
    sim.work(session, project, crew, seed=2)
    [(late, _)] = sim.crew(session, ["careful"], prefix="late")
    sim.work(session, project, [(late, "careful")], seed=3, limit=3)
    alone = factory.project(k=3, overlap=1)
    factory.items(alone, sim.items(12, k=3, prefix="a"), tmp_path)
    [(solo, _)] = sim.crew(session, ["careful"], prefix="solo")
    sim.work(session, alone, [(solo, "careful")], seed=4)

    body = client.get(f"/api/v1/projects/{project.id}/quality", headers=admin.headers).json()
    rows = {r["user_id"]: r for r in body["labelers"]}
    assert rows[late.id]["labels"] == 3
    assert rows[late.id]["reliability"] is None and rows[late.id]["reliability_interval"] is None
    for user, _ in crew:  # 12 labels each, every prompt shared: a fitted value
        assert rows[user.id]["reliability"] is not None
        low, high = rows[user.id]["reliability_interval"]
        assert low <= rows[user.id]["reliability"] <= high

    page = client.get(f"/admin/projects/{project.id}/quality").text
    assert "not enough labels" in _row(page, late.id)
    assert "not enough labels" not in _row(page, crew[0][0].id)
    detail = client.get(f"/admin/projects/{project.id}/quality/labelers/{late.id}").text
    assert "not enough labels" in detail

    # 12 labels, but nobody else labeled those prompts: nothing to tell reliability from
    page = client.get(f"/admin/projects/{alone.id}/quality").text
    row = _row(page, solo.id)
    assert ">12<" in row and "not enough labels" in row and "0.50" not in row
