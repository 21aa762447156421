"""Suggestions for labelers (`Project.suggestions`): a judge's newest live label of the prompt,
else an imported one, in the task's own terms; off by default; a gold item gets one exactly as
a real prompt does, so a labeler reading the API cannot tell them apart by it."""

import json

from sqlalchemy import select
from typer.testing import CliRunner

from app.cli import app as cli
from app.labeling.models import Annotation
from app.projects.models import Project, Prompt
from tests.helpers import prompts_of, public_id, row_id
from tests.quality import judges, sim
from tests.test_pages import login


def _next(client, project, user):  # type: ignore[no-untyped-def]
    response = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=user.headers)
    return None if response.status_code == 204 else response.json()


def _submit(client, task, user, body):  # type: ignore[no-untyped-def]
    url = f"/api/v1/assignments/{task['assignment_id']}/annotations"
    response = client.post(url, json=body, headers=user.headers)
    assert response.status_code == 201, response.text


def _public(payload):  # type: ignore[no-untyped-def]
    return [
        [public_id("response", r) for r in e] if isinstance(e, list) else public_id("response", e)
        for e in payload["ranking"]
    ]


def test_a_labeler_cannot_tell_gold_items_by_their_suggestion(client, factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(k=3, overlap=1, gold_rate=0.3, suggestions="shown")
    factory.items(project, sim.items(24, k=3, gold=6), tmp_path)
    judge = judges.judge_user(session)
    payloads = judges.judge_all(session, project, judge, seed=3)
    gold = sim.gold_prompt_ids(session, project)
    labeler = factory.user()
    tasks: dict[bool, list] = {True: [], False: []}
    while (task := _next(client, project, labeler)) is not None:
        prompt_id = row_id("prompt", task["prompt_id"])
        tasks[prompt_id in gold].append(task)
        # the suggestion is the judge's ranking, in the task's public ids
        assert task["suggestion"] == {
            "mode": "shown",
            "ranking": _public(payloads[prompt_id]),
            "scores": None,
        }
        _submit(client, task, labeler, {"ranking": task["suggestion"]["ranking"]})
    assert tasks[True] and tasks[False]

    def shape(task):  # type: ignore[no-untyped-def]
        suggestion = task["suggestion"]
        return (
            tuple(task),
            tuple(suggestion),
            suggestion["mode"],
            tuple(type(e).__name__ for e in suggestion["ranking"]),
            len(suggestion["ranking"]),
        )

    assert {shape(t) for t in tasks[True]} == {shape(t) for t in tasks[False]}
    text = json.dumps(tasks)
    for secret in ("judge", "tiny", '"ai"', "m0", "agent"):
        assert secret not in text


def test_a_gold_item_without_a_judges_label_gets_none_as_a_real_prompt_would(
    client, factory, session, tmp_path
) -> None:
    project = factory.project(k=3, overlap=1, gold_rate=0.5, suggestions="prefilled")
    factory.items(project, sim.items(10, k=3, gold=4), tmp_path)
    judge = judges.judge_user(session)
    gold = sim.gold_prompt_ids(session, project)
    # the judge labeled half the real prompts and half the gold items
    for i, (prompt_id, rids) in enumerate(prompts_of(session, project)):
        if i % 2 == 0:
            judges.add_label(session, project, judge, prompt_id, rids, {"ranking": rids})
    labeled = {a.prompt_id for a in session.scalars(select(Annotation))}
    labeler = factory.user()
    seen = 0
    while (task := _next(client, project, labeler)) is not None:
        prompt_id = row_id("prompt", task["prompt_id"])
        assert (task["suggestion"] is not None) == (prompt_id in labeled), prompt_id in gold
        _submit(client, task, labeler, {"ranking": [r["id"] for r in task["responses"]]})
        seen += prompt_id in gold
    assert seen


def test_off_by_default_and_the_newest_live_label_of_a_judge_not_excluded(
    client, factory, session, tmp_path
) -> None:
    admin = factory.user("admin")
    project = factory.project(k=4, overlap=2, gold_rate=0)
    factory.items(project, sim.items(1), tmp_path)
    ((prompt_id, rids),) = prompts_of(session, project)
    first, second = judges.judge_user(session, "one"), judges.judge_user(session, "two")
    judges.add_label(session, project, first, prompt_id, rids, {"ranking": rids})
    labeler = factory.user()
    assert _next(client, project, labeler)["suggestion"] is None  # off

    patch = client.patch(
        f"/api/v1/projects/{project.id}", json={"suggestions": "shown"}, headers=admin.headers
    )
    assert patch.status_code == 200 and patch.json()["suggestions"] == "shown"
    assert _next(client, project, labeler)["suggestion"]["ranking"] == _public({"ranking": rids})

    # a newer judge's label, then a correction of it: the correction is the suggestion
    newer = judges.add_label(
        session, project, second, prompt_id, rids, {"ranking": [[rids[1], rids[0]], *rids[2:]]}
    )
    fixed = [rids[3], rids[2], rids[1], rids[0]]
    session.add(
        Annotation(
            project_id=project.id,
            prompt_id=prompt_id,
            user_id=second.id,
            kind="ranking",
            payload={"ranking": fixed},
            source="ai",
            supersedes_id=newer.id,
        )
    )
    session.commit()
    task = _next(client, project, labeler)
    assert task["suggestion"]["ranking"] == _public({"ranking": fixed})

    # the second judge excluded: its labels are no one's suggestion any more
    excluded = client.post(
        f"/api/v1/projects/{project.id}/exclusions",
        json={"user_id": second.id},
        headers=admin.headers,
    )
    assert excluded.status_code in (200, 201), excluded.text
    assert _next(client, project, labeler)["suggestion"]["ranking"] == _public({"ranking": rids})


def test_ties_come_in_the_tasks_shown_order_and_only_shown_responses_count(
    client, factory, session, tmp_path
) -> None:
    project = factory.project(k=3, overlap=1, gold_rate=0, suggestions="shown")
    factory.items(project, sim.items(1, k=5), tmp_path)
    ((prompt_id, rids),) = prompts_of(session, project)
    judge = judges.judge_user(session)
    judges.add_label(
        session, project, judge, prompt_id, rids, {"ranking": [[rids[4], rids[0]], rids[1:4]]}
    )
    task = _next(client, project, factory.user())
    shown = [r["id"] for r in task["responses"]]
    groups = [
        [public_id("response", rids[i]) for i in (4, 0)],
        [public_id("response", rids[i]) for i in (1, 2, 3)],
    ]
    expected = []
    for group in groups:
        mine = sorted((r for r in group if r in shown), key=shown.index)
        if mine:
            expected.append(mine if len(mine) > 1 else mine[0])
    assert task["suggestion"]["ranking"] == expected


def test_an_imported_suggestion_when_no_judge_labeled_the_prompt(
    client, factory, session, tmp_path
) -> None:
    project = factory.project(kind="rating", rating_scale="0-5", k=3, overlap=1, gold_rate=0)
    factory.items(project, sim.items(2, k=3, kind="rating"), tmp_path)
    session.get(Project, project.id).suggestions = "prefilled"
    (first, rids), (second, other) = prompts_of(session, project)
    for prompt_id in (first, second):
        prompt = session.get(Prompt, prompt_id)
        prompt.meta = {
            "suggestions": [
                {"agent": "secret-model-v3", "score": 0.9, "result": [{"type": "odd"}]},
                {
                    "agent": "secret-model-v3",
                    "score": 0.8,
                    "payload": {"scores": {"0": 5, "1": 2, "2": 0}},
                },
            ]
        }
    session.commit()
    labeler = factory.user()
    task = _next(client, project, labeler)
    prompt_id = row_id("prompt", task["prompt_id"])
    ids = rids if prompt_id == first else other
    expected = {str(public_id("response", r)): v for r, v in zip(ids, (5, 2, 0), strict=True)}
    assert task["suggestion"] == {"mode": "prefilled", "ranking": None, "scores": expected}
    # in the task's shown order
    assert list(task["suggestion"]["scores"]) == [str(r["id"]) for r in task["responses"]]
    assert "secret-model" not in json.dumps(task)


def test_the_setting_is_refused_where_it_is_typed(client, factory, session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    admin = factory.user("admin")
    project = factory.project()
    url = f"/api/v1/projects/{project.id}"
    bad = client.patch(url, json={"suggestions": "always"}, headers=admin.headers)
    assert bad.status_code == 422 and "suggestions" in json.dumps(bad.json()["detail"])
    made = client.post(
        "/api/v1/projects",
        json={"name": "x", "kind": "ranking", "suggestions": "loud"},
        headers=admin.headers,
    )
    assert made.status_code == 422 and "suggestions" in made.text

    token = login(client, admin)
    form = {"csrf_token": token, "name": project.name, "overlap": "1", "lease_seconds": "1800"}
    page = client.post(f"/admin/projects/{project.id}", data=form | {"suggestions": "always"})
    assert page.status_code == 422 and "suggestions: Input should be" in page.text
    saved = client.post(f"/admin/projects/{project.id}", data=form | {"suggestions": "prefilled"})
    assert saved.status_code == 200
    session.refresh(project)
    assert project.suggestions == "prefilled"
    assert 'value="prefilled" selected' in client.get(f"/admin/projects/{project.id}").text

    wrong = CliRunner().invoke(cli, ["projects", "edit", project.name, "--suggestions", "maybe"])
    assert wrong.exit_code == 2 and "--suggestions" in wrong.output
    right = CliRunner().invoke(
        cli, ["projects", "edit", project.name, "--suggestions", "shown", "--json"]
    )
    assert right.exit_code == 0 and json.loads(right.output)["suggestions"] == "shown"
    created = CliRunner().invoke(
        cli, ["projects", "create", "fresh", "--kind", "rating", "--suggestions", "shown", "--json"]
    )
    assert created.exit_code == 0 and json.loads(created.output)["suggestions"] == "shown"
