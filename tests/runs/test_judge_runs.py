"""Judge runs (AI feedback): a registered tiny reward model or causal LM, or a chat endpoint,
labels a project's prompts through the real worker as the tracked annotator `judge:<model>`."""

import json
from pathlib import Path

from sqlalchemy import func, select

from app.auth.models import User
from app.db import get_sessionmaker
from app.labeling.models import Annotation, Assignment, Judgment
from app.projects.models import Prompt, Response
from app.runs import judging
from app.runs.models import TrainingRun
from app.runs.worker import Worker
from tests.trainer.test_judge_endpoint import TEMPLATE, ChatServer, by_goodness

FAST = {"batch_size": 8, "max_length": 64}


def register(client, admin, name, path, kind):  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/models",
        json={"name": name, "kind": kind, "path": str(path)},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


def ranking_project(factory, tmp_path, n=4, **fields):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=3, **fields)
    lines = [
        {"id": f"q{i}", "prompt": f"question {i}", "responses": [f"good {i}", f"fine {i}", "meh"]}
        for i in range(n)
    ]
    lines.append(
        {**lines[0], "id": "g0", "prompt": "gold question", "gold": {"ranking": [0, 1, 2]}}
    )
    factory.items(project, lines, tmp_path)
    return project


def start(client, admin, project, model="", config=None):  # type: ignore[no-untyped-def]
    body = {"kind": "judge", "project": project.name, "config": config or FAST}
    if model:
        body["model"] = model
    return client.post("/api/v1/runs", json=body, headers=admin.headers)


def status(run_id: int) -> TrainingRun:
    with get_sessionmaker()() as s:
        run = s.get(TrainingRun, run_id)
        s.expunge(run)
        return run


def judgments(project_id: int) -> list[Judgment]:
    with get_sessionmaker()() as s:
        rows = list(s.scalars(select(Judgment).where(Judgment.project_id == project_id)))
        s.expunge_all()
        return rows


def run_worker() -> int | None:
    return Worker(poll_seconds=0.2, heartbeat_seconds=0.5).run_once()


def test_reward_model_judge_labels_every_prompt_once_as_its_annotator(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    admin = factory.user("admin")
    register(client, admin, "tiny-rm", tiny_models["encoder"], "reward")
    project = ranking_project(factory, tmp_path)
    r = start(client, admin, project, "tiny-rm")
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["kind"] == "judge" and run["project_id"] == project.id

    assert run_worker() == run["id"]
    done = status(run["id"])
    assert done.status == "succeeded", done.error
    assert done.output_model_id is None  # a judge run registers no model
    rows = judgments(project.id)
    prompts = session.scalars(select(Prompt).where(Prompt.project_id == project.id)).all()
    assert sorted(j.prompt_id for j in rows) == sorted(p.id for p in prompts)  # gold included
    judge = session.scalar(select(User).where(User.email == "judge:tiny-rm"))
    assert judge is not None and judge.source == "ai" and judge.password_hash is None
    annotations = session.scalars(
        select(Annotation).where(Annotation.project_id == project.id)
    ).all()
    assert len(annotations) == len(prompts)
    assert {(a.user_id, a.source, a.kind) for a in annotations} == {(judge.id, "ai", "ranking")}
    by_prompt = {a.prompt_id: a for a in annotations}
    for j in rows:
        assert j.user_id == judge.id and j.run_id == run["id"] and not j.abstained
        assert j.annotation_id == by_prompt[j.prompt_id].id
        assert j.margin is not None and j.margin >= 0 and len(j.scores) == 3
        ranking = by_prompt[j.prompt_id].payload["ranking"]
        assert sorted(ranking) == sorted(int(k) for k in j.scores)  # the app's response ids
    margins = {p.id: p.judge_margin for p in prompts}
    for p in prompts:
        session.refresh(p)
        assert p.judge_margin == next(j.margin for j in rows if j.prompt_id == p.id)
        assert p.done_count == 0  # judge_accepts is off: no human slot filled
    assignments = session.scalars(select(Assignment).where(Assignment.user_id == judge.id)).all()
    assert {(a.status, a.counted) for a in assignments} == {("done", False)}
    assert margins

    # Page and CLI say what it did.
    page = client.get(f"/admin/runs/{run['id']}", headers=admin.headers)
    assert page.status_code == 200 and "judge:tiny-rm" in page.text
    details = judging.judge_details(session=session, run=session.get(TrainingRun, run["id"]))
    assert details is not None
    assert (details["judged"], details["labels"], details["abstained"]) == (5, 5, 0)

    # The same run again (a retry after its end): nothing stored twice.
    with get_sessionmaker()() as s:
        again = s.get(TrainingRun, run["id"])
        judging.ingest(session=s, run=again, run_dir=Path(again.run_dir))
        (Path(again.run_dir) / judging.PROGRESS_FILE).unlink()  # even from the file's start
        assert judging.ingest(session=s, run=again, run_dir=Path(again.run_dir)) == 0
    assert len(judgments(project.id)) == 5

    # A second run of the same judge supersedes its labels: one live label per prompt.
    second = start(client, admin, project, "tiny-rm").json()
    assert run_worker() == second["id"]
    assert status(second["id"]).status == "succeeded"
    with get_sessionmaker()() as s:
        total = s.scalar(select(func.count()).where(Annotation.project_id == project.id))
        corrections = s.scalar(
            select(func.count()).where(
                Annotation.project_id == project.id, Annotation.supersedes_id.is_not(None)
            )
        )
        held = s.scalar(select(func.count()).where(Assignment.user_id == judge.id))
    assert (total, corrections, held) == (10, 5, 5)


def test_a_reward_model_rates_a_rating_project_on_its_scale(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    admin = factory.user("admin")
    register(client, admin, "tiny-rm", tiny_models["encoder"], "reward")
    project = factory.project(kind="rating", k=1, rating_scale="0-5")
    lines = [
        {"id": f"r{i}", "prompt": f"rate {i}", "responses": [f"one {i}", "two"]} for i in range(3)
    ]
    factory.items(project, lines, tmp_path)
    run = start(client, admin, project, "tiny-rm").json()
    assert run_worker() == run["id"]
    assert status(run["id"]).status == "succeeded", status(run["id"]).error
    annotations = session.scalars(
        select(Annotation).where(Annotation.project_id == project.id)
    ).all()
    assert len(annotations) == 3
    for a in annotations:
        assert a.kind == "rating" and a.source == "ai" and set(a.payload) == {"scores"}
        assert len(a.payload["scores"]) == 2
        assert all(type(v) is int and 0 <= v <= 5 for v in a.payload["scores"].values())
    listed = client.get("/admin/runs", headers=admin.headers)
    assert listed.status_code == 200 and "judge" in listed.text


def test_a_retried_run_resumes_and_stores_nothing_twice(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    admin = factory.user("admin")
    register(client, admin, "tiny-rm", tiny_models["encoder"], "reward")
    project = ranking_project(factory, tmp_path, n=6)
    run = start(client, admin, project, "tiny-rm").json()
    assert run_worker() == run["id"]
    done = status(run["id"])
    out = Path(done.run_dir) / "output" / judging.JUDGMENTS_FILE
    lines = out.read_text().splitlines(keepends=True)
    # As if the trainer had died after three items and torn the fourth line: resume from there.
    with get_sessionmaker()() as s:
        s.execute(Judgment.__table__.delete())
        s.execute(Annotation.__table__.delete())
        s.execute(Assignment.__table__.delete())
        s.commit()
    out.write_text("".join(lines[:3]) + lines[3][:10])
    (Path(done.run_dir) / judging.PROGRESS_FILE).unlink()
    with get_sessionmaker()() as s:
        r = s.get(TrainingRun, run["id"])
        assert judging.ingest(session=s, run=r, run_dir=Path(r.run_dir)) == 3
        r.status, r.attempt = "queued", 1
        s.commit()
    assert run_worker() == run["id"]
    assert status(run["id"]).status == "succeeded"
    rows = judgments(project.id)
    assert len(rows) == 7 and len({j.prompt_id for j in rows}) == 7
    with get_sessionmaker()() as s:
        assert s.scalar(select(func.count()).select_from(Annotation)) == 7
    written = [json.loads(x) for x in out.read_text().splitlines()]
    assert len({row["id"] for row in written}) == len(written) == 7


def test_pairwise_causal_lm_judge_stores_abstentions_without_labels(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    admin = factory.user("admin")
    register(client, admin, "tiny-lm", tiny_models["causal-lm"], "policy")
    project = ranking_project(factory, tmp_path, n=3)
    # Identical responses: every pair is a tie, so the judge abstains on that prompt.
    factory.items(project, [{"id": "same", "prompt": "twins", "responses": ["x", "x"]}], tmp_path)
    run = start(client, admin, project, "tiny-lm").json()
    assert run_worker() == run["id"]
    assert status(run["id"]).status == "succeeded", status(run["id"]).error
    rows = {j.prompt_id: j for j in judgments(project.id)}
    twins = session.scalar(select(Prompt).where(Prompt.external_id == "same"))
    assert twins is not None and len(rows) == 5
    tie = rows[twins.id]
    assert tie.abstained and tie.annotation_id is None and tie.reason
    session.refresh(twins)
    assert twins.judge_margin == 0.0
    for j in rows.values():
        prompt = session.get(Prompt, j.prompt_id)
        session.refresh(prompt)
        if j.abstained or j.orders_agree is False:
            assert prompt.judge_margin == 0.0
        else:
            assert prompt.judge_margin == j.margin and j.annotation_id is not None
    labels = session.scalar(select(func.count()).where(Annotation.project_id == project.id))
    assert labels == sum(1 for j in rows.values() if not j.abstained)
    details = judging.judge_details(session=session, run=session.get(TrainingRun, run["id"]))
    assert details is not None and details["abstained"] >= 1
    assert sum(details["abstain_reasons"].values()) == details["abstained"]
    page = client.get(f"/admin/runs/{run['id']}", headers=admin.headers)
    assert "abstain" in page.text.lower()


def test_endpoint_judge_keeps_its_key_out_of_the_run(
    client, factory, session, tmp_path, artifacts, monkeypatch
) -> None:
    admin = factory.user("admin")
    project = ranking_project(factory, tmp_path, n=2)
    monkeypatch.setenv("JUDGE_TEST_KEY", "sk-secret-value")
    with ChatServer(by_goodness) as server:
        config = {
            "endpoint": server.url,
            "endpoint_model": "judge-m",
            "endpoint_key_env": "JUDGE_TEST_KEY",
            "judge_template": TEMPLATE,
            "endpoint_retries": 0,
        }
        r = start(client, admin, project, config=config)
        assert r.status_code == 201, r.text
        assert "sk-secret-value" not in json.dumps(r.json())
        assert run_worker() == r.json()["id"]
        done = status(r.json()["id"])
        assert done.status == "succeeded", done.error
        assert server.requests and all(
            h.get("Authorization") == "Bearer sk-secret-value" for _, h, _ in server.requests
        )
    assert "sk-secret-value" not in (Path(done.run_dir) / "config.json").read_text()
    judge = session.scalar(select(User).where(User.email == "judge:judge-m"))
    assert judge is not None and judge.source == "ai"
    rows = judgments(project.id)
    assert len(rows) == 3 and all(j.user_id == judge.id for j in rows)
    good = [j for j in rows if not j.abstained]
    assert good
    for j in good:
        ranking = session.get(Annotation, j.annotation_id).payload["ranking"]
        texts = dict(
            session.execute(
                select(Response.id, Response.text).where(Response.prompt_id == j.prompt_id)
            ).all()
        )
        assert texts[ranking[0]].startswith("good")


def test_refusals_at_creation_name_the_field(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    admin = factory.user("admin")
    register(client, admin, "tiny-rm", tiny_models["encoder"], "reward")
    register(client, admin, "tiny-lm", tiny_models["causal-lm"], "policy")
    ranking = ranking_project(factory, tmp_path, n=1)
    rating = factory.project(kind="rating", k=1, rating_scale="0-5")
    demo = factory.project(kind="demonstration", k=1)

    def refused(project, model="", config=None):  # type: ignore[no-untyped-def]
        """{"loc": [..., field], "msg"} of the refusal (a config key's, or a domain field's)."""
        r = start(client, admin, project, model, config)
        assert r.status_code == 422, r.text
        body = r.json()
        if isinstance(body["detail"], list):
            return body["detail"][0]
        return {"loc": [body["field"]], "msg": body["detail"]}

    unknown = refused(ranking, "no-such-model")
    assert unknown["loc"][-1] == "model" and "no-such-model" in unknown["msg"]
    assert refused(demo, "tiny-rm")["loc"][-1] == "project"
    lm_rates = refused(rating, "tiny-lm")
    assert lm_rates["loc"][-1] == "model" and "reward model" in lm_rates["msg"]
    endpoint_rates = refused(
        rating, config={"endpoint": "http://127.0.0.1:9/v1", "endpoint_model": "m"}
    )
    assert endpoint_rates["loc"][-1] == "judge_kind"
    assert refused(ranking, config={"endpoint": "http://127.0.0.1:9/v1"})["loc"][-1] == (
        "endpoint_model"
    )
    assert refused(ranking, "tiny-lm", {"judge_kind": "reward_model"})["loc"][-1] == "judge_kind"
    assert refused(ranking, "tiny-rm", {"project_kind": "rating"})["loc"][-1] == "project_kind"
    assert refused(ranking, "tiny-rm", {"batch_size": 0})["loc"][-1] == "batch_size"
    assert refused(ranking)["loc"][-1] == "model"
    # A rating project takes a reward model; nothing was queued by the refusals.
    ok = start(client, admin, rating, "tiny-rm")
    assert ok.status_code == 201, ok.text
    with get_sessionmaker()() as s:
        assert s.scalar(select(func.count()).select_from(TrainingRun)) == 1


def test_cli_starts_and_shows_a_judge_run(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    from typer.testing import CliRunner

    from app.cli import app as cli

    admin = factory.user("admin")
    register(client, admin, "tiny-rm", tiny_models["encoder"], "reward")
    project = ranking_project(factory, tmp_path, n=1)
    demo = factory.project(kind="demonstration", k=1)
    session.commit()
    runner = CliRunner()
    args = ["runs", "start", "--kind", "judge", "--model", "tiny-rm", "--json"]
    bad = runner.invoke(cli, [*args, "--project", demo.name])
    assert bad.exit_code == 2 and "demonstration" in bad.output
    missing = runner.invoke(cli, ["runs", "start", "--kind", "judge", "--project", project.name])
    assert missing.exit_code == 2 and "model" in missing.output
    ok = runner.invoke(cli, [*args, "--project", project.name, "--set", "batch_size=4"])
    assert ok.exit_code == 0, ok.output
    run_id = json.loads(ok.output)["id"]
    assert run_worker() == run_id
    shown = runner.invoke(cli, ["runs", "show", str(run_id), "--json"])
    assert shown.exit_code == 0, shown.output
    judge = json.loads(shown.output)["judge"]
    assert judge["judge"] == "judge:tiny-rm"
    assert (judge["judged"], judge["labels"], judge["abstained"], judge["planned"]) == (2, 2, 0, 2)


def test_the_runs_page_form_starts_a_judge_run_or_names_the_refused_field(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    from tests.test_pages import login

    admin = factory.user("admin")
    register(client, admin, "tiny-lm", tiny_models["causal-lm"], "policy")
    project = ranking_project(factory, tmp_path, n=1)
    rating = factory.project(kind="rating", k=1)
    session.commit()
    token = login(client, admin)
    form = client.get(f"/admin/runs/judge?project={project.id}")
    assert form.status_code == 200 and 'id="judge-form"' in form.text
    assert f'<option value="{project.id}" selected>' in form.text
    refused = client.post(
        "/admin/runs/judge", data={"csrf_token": token, "project": rating.id, "model": "tiny-lm"}
    )
    assert refused.status_code == 422 and 'id="error-model"' in refused.text
    endpoint = client.post(
        "/admin/runs/judge",
        data={"csrf_token": token, "project": project.id, "endpoint": "ftp://x"},
    )
    assert endpoint.status_code == 422 and 'id="error-endpoint"' in endpoint.text
    started = client.post(
        "/admin/runs/judge",
        data={"csrf_token": token, "project": project.id, "model": "tiny-lm"},
        follow_redirects=False,
    )
    assert started.status_code == 303, started.text[-500:]
    with get_sessionmaker()() as s:
        run = s.scalar(select(TrainingRun))
        assert run is not None and (run.kind, run.project_id) == ("judge", project.id)


def test_the_items_are_every_unretired_prompt_with_responses_gold_included(
    factory, session, tmp_path
) -> None:
    from app.base import utcnow

    project = ranking_project(factory, tmp_path, n=3)
    factory.items(project, [{"id": "lonely", "prompt": "one answer", "responses": []}], tmp_path)
    lonely = session.scalar(select(Prompt).where(Prompt.external_id == "lonely"))
    assert lonely is not None
    session.add(Response(prompt_id=lonely.id, position=0, text="a generated one"))  # 1 of K
    retired = session.scalar(select(Prompt).where(Prompt.external_id == "q1"))
    assert retired is not None
    retired.retired_at = utcnow()
    session.commit()
    found = list(judging.items(session=session, project=project))
    by_id = {
        p.external_id: p.id
        for p in session.scalars(select(Prompt).where(Prompt.project_id == project.id))
    }
    assert [item["id"] for item in found] == [by_id["q0"], by_id["q2"], by_id["g0"]]
    for item in found:
        ids = session.scalars(
            select(Response.id).where(Response.prompt_id == item["id"]).order_by(Response.position)
        ).all()
        assert [r["id"] for r in item["responses"]] == list(ids)  # the app's response ids
        assert all(r["text"] for r in item["responses"])
        assert item["prompt"][0]["role"] == "user"


def test_a_pairwise_judge_asks_the_projects_question_unless_the_run_has_its_own(
    client, factory, session, tmp_path, artifacts
) -> None:
    """The project's judge_template is what an endpoint judge is sent; a run's own
    judge_template overrides it; a question without {a} or {b} is refused where it is typed."""
    admin = factory.user("admin")
    project = ranking_project(factory, tmp_path, n=1)
    own = "Project question.\n" + TEMPLATE
    url = f"/api/v1/projects/{project.id}"
    for bad in ("{prompt} A: {a}", "no placeholders"):
        refused = client.patch(url, json={"judge_template": bad}, headers=admin.headers)
        assert refused.status_code == 422 and "judge_template" in refused.text
        assert "{b}" in refused.text
    saved = client.patch(url, json={"judge_template": own}, headers=admin.headers)
    assert saved.status_code == 200 and saved.json()["judge_template"] == own
    with ChatServer(by_goodness) as server:
        config = {"endpoint": server.url, "endpoint_model": "judge-m", "endpoint_retries": 0}
        r = start(client, admin, project, config=config)
        assert r.status_code == 201, r.text
        assert r.json()["config"]["judge_template"] == own  # the run records what it asked
        assert run_worker() == r.json()["id"]
        assert status(r.json()["id"]).status == "succeeded"
        asked = server.questions()
        assert asked and all(q.startswith("Project question.\n") for q in asked)
        server.requests.clear()
        r = start(client, admin, project, config=config | {"judge_template": TEMPLATE})
        assert r.status_code == 201 and run_worker() == r.json()["id"]
        assert server.questions() and not any("Project question" in q for q in server.questions())
    cleared = client.patch(url, json={"judge_template": None}, headers=admin.headers)
    assert cleared.status_code == 200 and cleared.json()["judge_template"] is None


def test_the_judge_question_is_set_from_the_form_and_the_cli(
    client, factory, session, tmp_path
) -> None:
    from typer.testing import CliRunner

    from app.cli import app as cli
    from tests.test_pages import login

    admin = factory.user("admin")
    project = ranking_project(factory, tmp_path, n=1)
    name, project_id = project.name, project.id
    session.commit()
    token = login(client, admin)
    page = client.get(f"/admin/projects/{project_id}")
    assert 'name="judge_template"' in page.text and "[Response A]" in page.text  # the default
    form = {"csrf_token": token, "name": name, "overlap": "1", "lease_seconds": "1800"}

    def save(**fields: str):  # type: ignore[no-untyped-def]
        return client.post(
            f"/admin/projects/{project_id}", data=form | fields, follow_redirects=False
        )

    bad = save(judge_template="Which is better? {a}")
    assert bad.status_code == 422 and "judge_template" in bad.text and "{b} missing" in bad.text
    assert "Which is better? {a}" in bad.text  # the form keeps what was typed
    assert save(judge_template="Q: {prompt}\n1) {a}\n2) {b}").status_code in (200, 303)
    got = client.get(f"/api/v1/projects/{project_id}", headers=admin.headers).json()
    assert got["judge_template"] == "Q: {prompt}\n1) {a}\n2) {b}"
    assert save(judge_template="  ").status_code in (200, 303)  # blank: the default question
    got = client.get(f"/api/v1/projects/{project_id}", headers=admin.headers).json()
    assert got["judge_template"] is None

    runner = CliRunner()
    question = tmp_path / "question.txt"
    question.write_text("Only {a}")
    refused = runner.invoke(cli, ["projects", "edit", name, "--judge-template", str(question)])
    assert refused.exit_code == 2 and "judge-template" in refused.output
    missing = runner.invoke(cli, ["projects", "edit", name, "--judge-template", "nope.txt"])
    assert missing.exit_code == 2 and "nope.txt" in missing.output
    question.write_text("{prompt}\n[A] {a}\n[B] {b}")
    done = runner.invoke(cli, ["projects", "edit", name, "--judge-template", str(question)])
    assert done.exit_code == 0, done.output
    got = client.get(f"/api/v1/projects/{project_id}", headers=admin.headers).json()
    assert got["judge_template"] == "{prompt}\n[A] {a}\n[B] {b}"
    back = runner.invoke(cli, ["projects", "edit", name, "--judge-template", "default"])
    assert back.exit_code == 0, back.output
    got = client.get(f"/api/v1/projects/{project_id}", headers=admin.headers).json()
    assert got["judge_template"] is None
