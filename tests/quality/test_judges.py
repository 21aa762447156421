"""Judges on the quality report: a row beside the people, measured against the people's
consensus, and no change to any person's figures; α with and without AI labels; a judge
excluded and reinstated like anyone; labelers who copy a judge's suggestions flagged."""

import json
import re

from typer.testing import CliRunner

from app.cli import app as cli
from app.quality import service as quality
from tests.helpers import prompts_of
from tests.quality import judges, sim
from tests.test_pages import login

PERSON_FIGURES = (
    "labels",
    "gold_seen",
    "gold_accuracy",
    "agreement",
    "reliability",
    "reliability_interval",
    "median_seconds",
    "flags",
    "excluded",
)


def _labeled(factory, session, tmp_path, **fields):  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=3, gold_rate=0.15, **fields)
    factory.items(project, sim.items(40, gold=6), tmp_path)
    crew = sim.crew(session, ["careful"] * 4 + ["random", "first"])
    sim.work(session, project, crew, seed=4)
    return project, crew


def test_a_judge_has_a_row_and_changes_no_persons_figures(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project, crew = _labeled(factory, session, tmp_path)
    before = quality.project_quality(session=session, project=project, rounds=30)
    judge = judges.judge_user(session)
    labels = judges.judge_all(session, project, judge, beta=0.6)
    after = quality.project_quality(session=session, project=project, rounds=30)

    rows = {row.user_id: row for row in after.labelers}
    for row in before.labelers:
        assert not row.ai
        again = rows[row.user_id].model_dump(include=set(PERSON_FIGURES))
        assert again == row.model_dump(include=set(PERSON_FIGURES)), row.email
    assert (after.alpha, after.alpha_interval, after.labels) == (
        before.alpha,
        before.alpha_interval,
        before.labels,
    )
    assert before.alpha_with_ai is None and before.ai_labels == 0
    assert after.alpha_with_ai is not None and after.alpha_with_ai != after.alpha
    assert after.ai_labels == 34  # the real prompts (gold items are judged on gold)

    row = rows[judge.id]
    assert row.ai and row.source == "ai" and row.email == "judge:tiny"
    assert row.labels == 34 and row.gold_seen == 6
    assert row.gold_accuracy is not None and 0.5 < row.gold_accuracy < 0.95
    assert row.agreement is not None and row.reliability is not None
    assert "too-fast" not in row.flags and "position-bias" not in row.flags

    # measured against the people's consensus only: a twin judge with the same labels (which
    # would agree perfectly with it) changes neither its figure nor anyone's
    twin = judges.judge_user(session, "twin")
    for (prompt_id, rids), payload in zip(
        prompts_of(session, project), labels.values(), strict=True
    ):
        judges.add_label(session, project, twin, prompt_id, rids, payload)
    third = {
        r.user_id: r
        for r in quality.project_quality(session=session, project=project, rounds=30).labelers
    }
    assert third[judge.id].agreement == row.agreement
    assert third[twin.id].agreement == row.agreement and third[twin.id].ai
    for person in before.labelers:
        assert third[person.user_id].agreement == person.agreement


def test_quality_page_api_and_cli_mark_the_judge_and_show_both_alphas(
    client, factory, session, tmp_path
) -> None:
    project, _ = _labeled(factory, session, tmp_path)
    judge = judges.judge_user(session)
    judges.judge_all(session, project, judge)
    admin = factory.user("admin")
    body = client.get(
        f"/api/v1/projects/{project.id}/quality?rounds=10", headers=admin.headers
    ).json()
    row = next(r for r in body["labelers"] if r["user_id"] == judge.id)
    assert row["ai"] is True and body["alpha_with_ai"] is not None
    assert all(r["ai"] is False for r in body["labelers"] if r["user_id"] != judge.id)

    login(client, admin)
    page = client.get(f"/admin/projects/{project.id}/quality").text
    mine = re.search(rf'<tr data-user="{judge.id}">(.*?)</tr>', page, re.S).group(1)
    assert "AI judge" in mine and "imported" not in mine
    assert 'id="alpha-with-ai"' in page and "without AI labels" in page
    overview = client.get("/admin/quality").text
    assert f"({body['alpha_with_ai']:.3f} with AI)" in overview
    drill = client.get(f"/admin/projects/{project.id}/quality/labelers/{judge.id}")
    assert drill.status_code == 200

    human = CliRunner().invoke(cli, ["quality", str(project.id), "--rounds", "0"])
    assert human.exit_code == 0 and "with AI labels" in human.output
    assert "judge:tiny" in human.output and "[AI]" in human.output
    listed = json.loads(CliRunner().invoke(cli, ["quality", str(project.id), "--json"]).output)
    assert listed["alpha_with_ai"] is not None


def test_a_judge_is_excluded_and_reinstated_with_the_existing_form(
    client, factory, session, tmp_path
) -> None:
    project, _ = _labeled(factory, session, tmp_path)
    judge = judges.judge_user(session)
    judges.judge_all(session, project, judge)
    token = login(client, factory.user("admin"))
    page = client.get(f"/admin/projects/{project.id}/quality").text
    row = re.search(rf'<tr data-user="{judge.id}">(.*?)</tr>', page, re.S).group(1)
    assert f'name="user_id" value="{judge.id}"' in row and ">Exclude<" in row

    form = {"csrf_token": token, "user_id": str(judge.id), "confirmed": "1"}
    done = client.post(f"/admin/projects/{project.id}/exclusions", data=form)
    assert done.status_code == 200  # followed back to the quality page
    session.rollback()  # a new transaction sees what the page committed
    report = quality.project_quality(session=session, project=project, rounds=0)
    assert next(r for r in report.labelers if r.user_id == judge.id).excluded

    back = client.post(
        f"/admin/projects/{project.id}/quality/labelers/{judge.id}/reinstate",
        data={"csrf_token": token},
    )
    assert back.status_code == 200
    session.rollback()
    report = quality.project_quality(session=session, project=project, rounds=0)
    assert not next(r for r in report.labelers if r.user_id == judge.id).excluded
