"""A judge's verdicts as a tracked annotator's labels: the judge annotator cannot sign in, be a
member or be leased a task; order=judge-uncertainty serves the prompts it was least sure of
first; judge_accepts decides whether a confident judge label fills an overlap slot."""

import pytest
from sqlalchemy import select

from app.auth import service as auth_service
from app.auth.models import User
from app.labeling import judged
from app.labeling import service as labeling_service
from app.labeling.models import Annotation
from app.projects.models import Prompt, Response
from app.runs.models import TrainingRun
from tests.helpers import row_id


def _project(factory, tmp_path, n=5, **fields):  # type: ignore[no-untyped-def]
    fields.setdefault("gold_rate", 0.0)
    project = factory.project(kind="ranking", k=2, **fields)
    lines = [
        {"id": f"q{i}", "prompt": f"question {i}", "responses": [f"a{i}", f"b{i}"]}
        for i in range(n)
    ]
    factory.items(project, lines, tmp_path)
    return project


def _prompts(session, project) -> list[Prompt]:  # type: ignore[no-untyped-def]
    return list(
        session.scalars(select(Prompt).where(Prompt.project_id == project.id).order_by(Prompt.id))
    )


def _verdict(session, prompt, margin, abstained=False, orders_agree=None):  # type: ignore[no-untyped-def]
    ids = list(
        session.scalars(
            select(Response.id).where(Response.prompt_id == prompt.id).order_by(Response.id)
        )
    )
    return judged.Verdict(
        prompt_id=prompt.id,
        ranking=None if abstained else ids,
        ratings=None,
        scores={str(i): 0.0 for i in ids},
        margin=None if abstained else margin,
        abstained=abstained,
        reason="every pair was a tie" if abstained else None,
        orders_agree=orders_agree,
    )


def _run(session, project) -> int:  # type: ignore[no-untyped-def]
    run = TrainingRun(kind="judge", base_model="tiny-judge", project_id=project.id)
    session.add(run)
    session.flush()
    return run.id


def _judge(session, project, verdicts, run_id=None, model="tiny-judge") -> int:  # type: ignore[no-untyped-def]
    """Store verdicts as a judge run would (a run of its own unless `run_id`)."""
    run_id = run_id or _run(session, project)
    user_id = judged.judge_user(session=session, model=model)
    judged.store_verdicts(
        session=session, project=project, run_id=run_id, user_id=user_id, verdicts=verdicts
    )
    session.commit()
    return user_id


def _served(client, project, labelers) -> list[int]:  # type: ignore[no-untyped-def]
    """The prompt each labeler is leased, in turn, through the real lease path."""
    out = []
    for labeler in labelers:
        r = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=labeler.headers)
        if r.status_code == 204:
            break
        assert r.status_code == 200, r.text
        out.append(row_id("prompt", r.json()["prompt_id"]))
    return out


def test_the_judge_annotator_cannot_sign_in_be_a_member_or_take_a_task(
    client, factory, session, tmp_path
) -> None:
    admin = factory.user("admin")
    project = _project(factory, tmp_path, n=2)
    prompts = _prompts(session, project)
    judge_id = _judge(session, project, [_verdict(session, prompts[0], 1.0)])
    judge = session.get(User, judge_id)
    assert judge is not None and judge.email == "judge:tiny-judge" and judge.source == "ai"
    assert judge.password_hash is None

    signed_in = auth_service.authenticate(
        session=session, email=judge.email, password="", max_failures=5, lock_seconds=60
    )
    assert signed_in is None
    r = client.post(
        f"/api/v1/projects/{project.id}/members", json={"user_id": judge_id}, headers=admin.headers
    )
    assert r.status_code == 422 and "user_id" in r.text
    r = client.post(
        f"/api/v1/users/{judge_id}/tokens", json={"name": "sneak"}, headers=admin.headers
    )
    assert r.status_code == 422
    r = client.patch(f"/api/v1/users/{judge_id}", json={"role": "admin"}, headers=admin.headers)
    assert r.status_code == 422
    assert labeling_service.next_task(session=session, project=project, user=judge) is None
    # The same judge again is the same annotator.
    assert judged.judge_user(session=session, model="tiny-judge") == judge_id


def test_judge_uncertainty_serves_the_least_sure_first(client, factory, session, tmp_path) -> None:
    admin = factory.user("admin")
    project = _project(factory, tmp_path, n=6)
    p = _prompts(session, project)
    _judge(
        session,
        project,
        [
            _verdict(session, p[0], 3.0),
            _verdict(session, p[1], 0.5),
            _verdict(session, p[2], None, abstained=True),
            _verdict(session, p[3], 2.0, orders_agree=False),
            _verdict(session, p[4], 1.0, orders_agree=True),
        ],
    )
    for prompt in p:
        session.refresh(prompt)
    assert [x.judge_margin for x in p] == [3.0, 0.5, 0.0, 0.0, 1.0, None]
    labelers = [factory.user() for _ in range(7)]
    session.commit()
    r = client.patch(
        f"/api/v1/projects/{project.id}", json={"order": "judge-uncertainty"}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["order"] == "judge-uncertainty"
    served = _served(client, project, labelers)
    assert served == [p[2].id, p[3].id, p[1].id, p[4].id, p[0].id, p[5].id]

    bad = client.patch(
        f"/api/v1/projects/{project.id}", json={"order": "judge"}, headers=admin.headers
    )
    assert bad.status_code == 422 and "order" in bad.text


def test_judge_labels_fill_no_slot_unless_the_project_accepts_them(
    client, factory, session, tmp_path
) -> None:
    admin = factory.user("admin")
    project = _project(factory, tmp_path, n=3, overlap=1)
    assert project.judge_accepts is None  # off by default
    p = _prompts(session, project)
    _judge(
        session,
        project,
        [
            _verdict(session, p[0], 2.5),
            _verdict(session, p[1], 0.2),
            _verdict(session, p[2], 5.0, orders_agree=False),
        ],
    )
    labelers = [factory.user() for _ in range(8)]
    session.commit()
    # Off: every prompt still wants its overlap of human labels.
    assert sorted(_served(client, project, labelers[:4])) == [x.id for x in p]
    stats = client.get(f"/api/v1/projects/{project.id}/stats", headers=admin.headers).json()
    assert stats["prompts_complete"] == 0

    # On: the confident label fills the slot; the unsure and the disagreeing ones do not.
    fresh = _project(factory, tmp_path, n=3, overlap=1)
    q = _prompts(session, fresh)
    _judge(
        session,
        fresh,
        [
            _verdict(session, q[0], 2.5),
            _verdict(session, q[1], 0.2),
            _verdict(session, q[2], 5.0, orders_agree=False),
        ],
    )
    r = client.patch(
        f"/api/v1/projects/{fresh.id}", json={"judge_accepts": 1.0}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["judge_accepts"] == 1.0
    session.commit()
    for prompt in q:
        session.refresh(prompt)
    assert [x.done_count for x in q] == [1, 0, 0]
    session.commit()
    assert sorted(_served(client, fresh, labelers[4:])) == [q[1].id, q[2].id]
    page = client.get(f"/admin/projects/{fresh.id}", headers=admin.headers)
    assert 'id="judge-accepts"' in page.text and "at least 1" in page.text

    # Raised above its margin: the label stops counting (recounted at once).
    session.commit()
    client.patch(f"/api/v1/projects/{fresh.id}", json={"judge_accepts": 3}, headers=admin.headers)
    session.commit()  # end the read transaction: see what the request committed
    session.refresh(q[0])
    assert q[0].done_count == 0
    # Null turns it off again.
    client.patch(f"/api/v1/projects/{fresh.id}", json={"judge_accepts": 2}, headers=admin.headers)
    session.commit()  # end the read transaction: see what the request committed
    session.refresh(q[0])
    assert q[0].done_count == 1
    r = client.patch(
        f"/api/v1/projects/{fresh.id}", json={"judge_accepts": None}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["judge_accepts"] is None
    session.commit()  # end the read transaction: see what the request committed
    session.refresh(q[0])
    assert q[0].done_count == 0
    page = client.get(f"/admin/projects/{fresh.id}", headers=admin.headers)
    assert 'id="judge-accepts"' not in page.text

    negative = client.patch(
        f"/api/v1/projects/{fresh.id}", json={"judge_accepts": -1}, headers=admin.headers
    )
    assert negative.status_code == 422 and "judge_accepts" in negative.text


def test_a_new_verdict_recounts_and_supersedes(client, factory, session, tmp_path) -> None:
    admin = factory.user("admin")
    project = _project(factory, tmp_path, n=1, overlap=1)
    client.patch(f"/api/v1/projects/{project.id}", json={"judge_accepts": 1}, headers=admin.headers)
    (prompt,) = _prompts(session, project)
    runs = [_run(session, project), _run(session, project)]
    session.commit()
    _judge(session, project, [_verdict(session, prompt, 2.0)], run_id=runs[0])
    session.refresh(prompt)
    assert prompt.done_count == 1
    # The same judge, less sure now: its label is replaced, and counts no more.
    _judge(session, project, [_verdict(session, prompt, 0.5)], run_id=runs[1])
    session.refresh(prompt)
    assert prompt.done_count == 0 and prompt.judge_margin == 0.5
    labels = session.scalars(select(Annotation).where(Annotation.prompt_id == prompt.id)).all()
    assert len(labels) == 2 and labels[1].supersedes_id == labels[0].id
    # A replay of either run stores nothing.
    _judge(session, project, [_verdict(session, prompt, 9.0)], run_id=runs[0])
    assert len(session.scalars(select(Annotation)).all()) == 2


def test_an_accepted_judge_label_fills_judge_fills_slots(
    client, factory, session, tmp_path
) -> None:
    """judge_fills 1 (the default): a confident label stands for one of three labelers; raised
    to the overlap it completes the prompt, so people go only where the judge was unsure, and
    a late submit to a prompt the judge completed meanwhile is refused (its slot is gone)."""
    from datetime import timedelta

    from app.base import utcnow
    from app.labeling.models import Assignment

    admin = factory.user("admin")
    project = _project(factory, tmp_path, n=3, overlap=3, judge_accepts=1.0)
    assert project.judge_fills == 1
    p = _prompts(session, project)
    _judge(
        session,
        project,
        [_verdict(session, p[0], 2.5), _verdict(session, p[1], 0.2), _verdict(session, p[2], 4)],
    )
    for prompt in p:
        session.refresh(prompt)
    assert [x.done_count for x in p] == [1, 0, 1]
    early = factory.user()
    session.commit()
    task = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=early.headers).json()
    assert row_id("prompt", task["prompt_id"]) == p[0].id  # it still wants two people

    r = client.patch(
        f"/api/v1/projects/{project.id}", json={"judge_fills": 3}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["judge_fills"] == 3
    session.commit()
    for prompt in p:
        session.refresh(prompt)
    assert [x.done_count for x in p] == [3, 0, 3]  # recounted at once
    page = client.get(f"/admin/projects/{project.id}", headers=admin.headers)
    assert "completes the prompt" in page.text
    labelers = [factory.user() for _ in range(4)]
    session.commit()
    assert _served(client, project, labelers) == [p[1].id] * 3  # then nothing is left

    # The early labeler's lease ran out meanwhile: the judge holds every slot of p[0].
    assignment = session.get(Assignment, row_id("assignment", task["assignment_id"]))
    assignment.expires_at = utcnow() - timedelta(seconds=1)
    session.commit()
    late = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/annotations",
        json={"ranking": [x["id"] for x in task["responses"]]},
        headers=early.headers,
    )
    assert late.status_code == 410, late.text

    # Back to 1: the prompts want two people again.
    client.patch(f"/api/v1/projects/{project.id}", json={"judge_fills": 1}, headers=admin.headers)
    session.commit()
    session.refresh(p[0])
    assert p[0].done_count == 1
    for bad in (0, 101, "all"):
        refused = client.patch(
            f"/api/v1/projects/{project.id}", json={"judge_fills": bad}, headers=admin.headers
        )
        assert refused.status_code == 422 and "judge_fills" in refused.text


def test_cli_sets_order_and_judge_accepts(factory, session, tmp_path) -> None:
    from typer.testing import CliRunner

    from app.cli import app as cli
    from app.projects.models import Project

    project = _project(factory, tmp_path, n=1)
    name, project_id = project.name, project.id
    session.commit()

    def saved() -> tuple[str, float | None]:
        from app.db import get_sessionmaker

        with get_sessionmaker()() as s:
            found = s.get(Project, project_id)
            assert found is not None
            return found.order, found.judge_accepts

    runner = CliRunner()
    done = runner.invoke(
        cli, ["projects", "edit", name, "--order", "judge-uncertainty", "--judge-accepts", "1.5"]
    )
    assert done.exit_code == 0, done.output
    assert saved() == ("judge-uncertainty", 1.5)
    off = runner.invoke(cli, ["projects", "edit", name, "--judge-accepts", "off"])
    assert off.exit_code == 0, off.output
    assert saved() == ("judge-uncertainty", None)
    bad = runner.invoke(cli, ["projects", "edit", name, "--judge-accepts", "lots"])
    assert bad.exit_code == 2 and "--judge-accepts" in bad.output
    filled = runner.invoke(cli, ["projects", "edit", name, "--judge-fills", "3"])
    assert filled.exit_code == 0 and '"judge_fills": 3' in runner.invoke(
        cli, ["projects", "show", name, "--json"]
    ).output.replace(" ", "").replace('":', '": ')
    none = runner.invoke(cli, ["projects", "edit", name, "--judge-fills", "0"])
    assert none.exit_code == 2 and "judge-fills" in none.output
    wrong = runner.invoke(cli, ["projects", "edit", name, "--order", "judge"])
    assert wrong.exit_code == 2 and "order" in wrong.output


def test_the_settings_form_sets_order_and_judge_accepts(client, factory, session, tmp_path) -> None:
    from tests.test_pages import login

    admin = factory.user("admin")
    project = _project(factory, tmp_path, n=1)
    name, project_id = project.name, project.id
    session.commit()
    token = login(client, admin)
    page = client.get(f"/admin/projects/{project_id}")
    assert 'name="judge_accepts"' in page.text and 'value="judge-uncertainty"' in page.text
    form = {"csrf_token": token, "name": name, "overlap": "1", "lease_seconds": "1800"}
    form["judge_accepts_shown"] = "1"  # as the page sends it

    def save(**fields: str):  # type: ignore[no-untyped-def]
        return client.post(
            f"/admin/projects/{project_id}", data=form | fields, follow_redirects=False
        )

    assert save(order="judge-uncertainty", judge_accepts="1.5").status_code in (200, 303)
    session.expire_all()
    session.commit()
    saved = client.get(f"/api/v1/projects/{project_id}", headers=admin.headers).json()
    assert (saved["order"], saved["judge_accepts"]) == ("judge-uncertainty", 1.5)
    shown = client.get(f"/admin/projects/{project_id}")
    assert 'id="judge-accepts"' in shown.text and 'value="1.5"' in shown.text
    refused = save(judge_accepts="-2")
    assert refused.status_code == 422 and "judge_accepts" in refused.text
    assert save(judge_fills="2").status_code in (200, 303)
    assert 'name="judge_fills"' in client.get(f"/admin/projects/{project_id}").text
    assert (
        client.get(f"/api/v1/projects/{project_id}", headers=admin.headers).json()["judge_fills"]
        == 2
    )
    zero = save(judge_fills="0")
    assert zero.status_code == 422 and "judge_fills" in zero.text
    assert save(judge_accepts="").status_code in (200, 303)  # blank: off
    saved = client.get(f"/api/v1/projects/{project_id}", headers=admin.headers).json()
    assert saved["judge_accepts"] is None and saved["order"] == "judge-uncertainty"


def test_an_excluded_judge_fills_no_slot_and_shows_as_an_ai_annotator(
    client, factory, session, tmp_path
) -> None:
    admin = factory.user("admin")
    project = _project(factory, tmp_path, n=2, overlap=1)
    p = _prompts(session, project)
    judge_id = _judge(
        session, project, [_verdict(session, p[0], 4.0), _verdict(session, p[1], 4.0)]
    )
    session.commit()
    assert (
        client.patch(
            f"/api/v1/projects/{project.id}", json={"judge_accepts": 1}, headers=admin.headers
        ).json()["judge_accepts"]
        == 1
    )
    page = client.get(f"/admin/projects/{project.id}", headers=admin.headers).text
    assert "judge:tiny-judge" in page and "AI judge · cannot sign in" in page

    def done_counts() -> list[int]:
        session.commit()
        for prompt in p:
            session.refresh(prompt)
        return [x.done_count for x in p]

    assert done_counts() == [1, 1]
    excluded = client.post(
        f"/api/v1/projects/{project.id}/exclusions",
        json={"user_id": judge_id, "reason": "too lenient"},
        headers=admin.headers,
    )
    assert excluded.status_code in (200, 201), excluded.text
    assert done_counts() == [0, 0]
    # Re-counting on a changed margin keeps an excluded judge out.
    client.patch(f"/api/v1/projects/{project.id}", json={"judge_accepts": 2}, headers=admin.headers)
    assert done_counts() == [0, 0]


def test_a_pairwise_judge_is_as_sure_as_its_preference(client, factory, session, tmp_path) -> None:
    """Two K=2 verdicts whose orders agreed have the same wins margin (1); the one given at
    P = 0.55 must still be served before, and accepted after, the one given at P = 0.95."""
    admin = factory.user("admin")
    project = _project(factory, tmp_path, n=3, order="judge-uncertainty")
    p = _prompts(session, project)

    def row(prompt, preference):  # type: ignore[no-untyped-def]
        ids = list(
            session.scalars(
                select(Response.id).where(Response.prompt_id == prompt.id).order_by(Response.id)
            )
        )
        return {
            "id": prompt.id,
            "ranking": ids,
            "scores": {str(ids[0]): 1.0, str(ids[1]): 0.0},
            "margin": 1.0,
            "preference": preference,
            "abstained": False,
            "reason": None,
            "orders_agree": True,
        }

    assert judged.certainty(row(p[0], 0.95)) == pytest.approx(0.9)
    assert judged.certainty({**row(p[0], None), "preference": None}) == 1.0
    assert judged.certainty({**row(p[0], 0.9), "margin": None, "abstained": True}) is None
    _judge(
        session, project, [judged.Verdict.of(row(p[0], 0.95)), judged.Verdict.of(row(p[1], 0.55))]
    )
    for prompt in p:
        session.refresh(prompt)
    assert [x.judge_margin for x in p[:2]] == [pytest.approx(0.9), pytest.approx(0.1)]
    labelers = [factory.user() for _ in range(3)]
    session.commit()
    assert _served(client, project, labelers) == [p[1].id, p[0].id, p[2].id]
    # judge_accepts 0.5: the sure label fills the prompt's one slot, the unsure one does not.
    r = client.patch(
        f"/api/v1/projects/{project.id}", json={"judge_accepts": 0.5}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    for prompt in p:
        session.refresh(prompt)
    assert [x.done_count for x in p] == [1, 0, 0]
