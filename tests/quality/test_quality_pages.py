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
