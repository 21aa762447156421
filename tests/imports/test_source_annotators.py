"""Source annotators' labels count in quality, agreement and consensus, and can be excluded."""

import json
import re

from sqlalchemy import select

from app.aggregation import service as aggregation
from app.auth import service as auth_service
from app.labeling import exclusions
from app.labeling import service as labeling
from app.projects import importer
from app.projects.models import Prompt
from app.quality import service as quality

PAIR = ("A careful, correct answer.", "A sloppy answer.")


def _tasks(n: int) -> list[dict]:
    """n pairwise tasks: annotators 1 and 2 prefer the careful answer, 3 the sloppy one."""
    tasks = []
    for i in range(n):
        annotations = [
            {
                "id": 100 * i + who,
                "completed_by": who,
                "lead_time": 5.0 + who,
                "result": [
                    {
                        "from_name": "pw",
                        "to_name": "pw",
                        "type": "pairwise",
                        "value": {"selected": "right" if who == 3 else "left"},
                    }
                ],
            }
            for who in (1, 2, 3)
        ]
        data = {"prompt": f"question {i}", "answer1": PAIR[0], "answer2": PAIR[1]}
        tasks.append({"id": i + 1, "data": data, "annotations": annotations})
    tasks.append({"id": 999, "data": {"prompt": "open", "answer1": "x", "answer2": "y"}})
    return tasks


def _project(session, factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=2, overlap=3)
    path = tmp_path / "export.json"
    path.write_text(json.dumps(_tasks(8)))
    importer.import_file(session=session, project=project, path=path)
    return project


def _user(session, name: str):  # type: ignore[no-untyped-def]
    return auth_service.get_by_email(session=session, email=name)


def test_source_annotators_count_in_quality_and_consensus(session, factory, tmp_path) -> None:
    project = _project(session, factory, tmp_path)
    report = quality.project_quality(session=session, project=project, rounds=20)
    rows = {row.email: row for row in report.labelers}
    assert set(rows) == {"labelstudio:1", "labelstudio:2", "labelstudio:3"}
    assert all(row.labels == 8 for row in rows.values())
    assert rows["labelstudio:1"].agreement > rows["labelstudio:3"].agreement
    assert rows["labelstudio:1"].median_seconds == 6.0
    assert report.alpha is not None
    consensus = [c for _, c in aggregation.consensus_by_prompt(session=session, project=project)]
    assert len(consensus) == 8


def _excluded(session, project, dissenter) -> bool:  # type: ignore[no-untyped-def]
    """Whether the dissenter is out of quality, consensus and overlap (checked both ways)."""
    session.commit()  # a new snapshot
    report = quality.project_quality(session=session, project=project, rounds=20)
    rows = {row.email: row for row in report.labelers}
    assert not rows["labelstudio:1"].excluded
    in_consensus = any(
        dissenter.id in {label.user_id for label in labels.labels}
        for labels, _ in aggregation.consensus_by_prompt(session=session, project=project)
    )
    done = session.scalar(select(Prompt.done_count).where(Prompt.external_id == "1"))
    # Out: the excluded annotator's label no longer counts toward overlap either.
    out = (rows["labelstudio:3"].excluded, in_consensus, done) == (True, False, 2)
    assert out or (rows["labelstudio:3"].excluded, in_consensus, done) == (False, True, 3)
    return out


def test_a_source_annotator_can_be_excluded(session, factory, tmp_path) -> None:
    project = _project(session, factory, tmp_path)
    dissenter = _user(session, "labelstudio:3")
    assert not _excluded(session, project, dissenter)
    exclusions.exclude_labeler(session=session, user_id=dissenter.id, project_id=project.id)
    assert _excluded(session, project, dissenter)


def _sources(page: str) -> dict[str, str]:
    """The project page's imported annotators: name -> their row's text."""
    table = re.search(r'<table class="table" id="sources">(.*?)</table>', page, re.S)
    assert table is not None, "no imported annotators on the page"
    rows = re.findall(r"<tr data-user=\"\d+\">(.*?)</tr>", table.group(1), re.S)
    return {re.sub(r"<[^>]+>", " ", row).split()[0]: re.sub(r"\s+", " ", row) for row in rows}


def test_the_project_page_lists_imported_annotators_to_exclude(
    client, session, factory, tmp_path
) -> None:
    from tests.test_pages import login

    project = _project(session, factory, tmp_path)
    dissenter = _user(session, "labelstudio:3")
    admin = factory.user("admin")
    person = factory.user()
    token = login(client, admin)
    url = f"/admin/projects/{project.id}"
    page = client.get(url).text
    sources = _sources(page)
    assert set(sources) == {"labelstudio:1", "labelstudio:2", "labelstudio:3"}
    for row in sources.values():
        assert "imported from Label Studio · cannot sign in" in row
        assert '<td class="num">8</td>' in row and "Exclude" in row
    # Membership is for people who take tasks: the picker offers the person, not them.
    picker = re.search(r'action="/admin/projects/\d+/members".*?</form>', page, re.S)
    assert picker is not None
    assert person.email in picker.group(0) and "labelstudio:" not in picker.group(0)

    # Exclude from the page: the admin confirms, then they are out of everything.
    asked = client.post(
        f"{url}/exclusions", data={"csrf_token": token, "user_id": str(dissenter.id)}
    )
    assert asked.status_code == 200 and "Exclude labelstudio:3 from" in asked.text
    assert not _excluded(session, project, dissenter)
    done = client.post(
        f"{url}/exclusions",
        data={"csrf_token": token, "user_id": str(dissenter.id), "confirmed": "1"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    assert _excluded(session, project, dissenter)
    row = _sources(client.get(url).text)["labelstudio:3"]
    assert "excluded" in row and "Reinstate" in row
    assert "excluded" not in _sources(client.get(url).text)["labelstudio:1"]
    quality_page = client.get(f"{url}/quality").text
    assert quality_page.count("imported · cannot sign in") == 3

    client.post(f"{url}/quality/labelers/{dissenter.id}/reinstate", data={"csrf_token": token})
    assert not _excluded(session, project, dissenter)
    assert "Exclude" in _sources(client.get(url).text)["labelstudio:3"]


def test_the_api_names_source_annotators_and_keeps_them_off_members(
    client, session, factory, tmp_path
) -> None:
    from tests.test_pages import login

    project = _project(session, factory, tmp_path)
    dissenter = _user(session, "labelstudio:3")
    admin = factory.user("admin")
    api = f"/api/v1/projects/{project.id}"
    report = client.get(f"{api}/quality", headers=admin.headers).json()
    assert {(r["email"], r["source"]) for r in report["labelers"]} == {
        (f"labelstudio:{i}", "labelstudio") for i in (1, 2, 3)
    }
    users = {
        u["email"]: u["source"] for u in client.get("/api/v1/users", headers=admin.headers).json()
    }
    assert users["labelstudio:3"] == "labelstudio" and users[admin.email] is None

    # As the only member it would close the project to every person.
    refused = client.post(f"{api}/members", json={"user_id": dissenter.id}, headers=admin.headers)
    assert refused.status_code == 422 and refused.json()["field"] == "user_id"
    assert "labelstudio:3 is a source annotator" in refused.json()["detail"]
    token = login(client, admin)
    page = client.post(
        f"/admin/projects/{project.id}/members",
        data={"csrf_token": token, "user_id": str(dissenter.id)},
    )
    assert page.status_code == 422 and "cannot be a member" in page.text
    assert client.get(f"{api}/members", headers=admin.headers).json() == []

    made = client.post(f"{api}/exclusions", json={"user_id": dissenter.id}, headers=admin.headers)
    assert made.status_code == 201, made.text
    assert _excluded(session, project, dissenter)


def test_a_person_gets_only_the_open_prompt(session, factory, tmp_path) -> None:
    project = _project(session, factory, tmp_path)
    person = factory.user()
    task = labeling.next_task(session=session, project=project, user=person)
    assert task is not None and task.messages[-1]["content"] == "open"
