"""The next round (API, pages, CLI) and the registry leaderboard's pages and command."""

import json

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import app as cli_app
from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from app.projects.bulk import BulkWriter
from app.projects.models import Project, Prompt, Response
from app.runs import registry, rounds
from app.runs.models import TrainingRun
from tests.test_pages import login


def _policies(session, tiny_models):  # type: ignore[no-untyped-def]
    lm = str(tiny_models["causal-lm"])
    v1 = registry.register_model(session=session, name="policy-v1", kind="policy", path=lm)
    v2 = registry.register_model(
        session=session, name="policy-v2", kind="policy", path=lm, base_model_id=v1.id
    )
    rm = registry.register_model(
        session=session, name="rm", kind="reward", path=str(tiny_models["encoder"])
    )
    session.commit()
    return v1, v2, rm


def test_next_round_from_a_project_or_a_prompts_snapshot(
    client, factory, session, tmp_path, artifacts, tiny_models
) -> None:
    admin = factory.user("admin")
    v1, v2, rm = _policies(session, tiny_models)
    source = factory.project(kind="ranking", k=2)
    items = [{"id": f"s{i}", "prompt": f"question {i}", "responses": ["a", "b"]} for i in range(5)]
    factory.items(source, items, tmp_path)

    r = client.post(
        f"/api/v1/models/{v2.id}/next-round",
        json={"name": "round 2", "project": source.name},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["k"] == 2  # the policy and, by default, its base model
    assert body["run"]["kind"] == "generate" and body["run"]["status"] == "queued"
    assert body["run"]["model_ids"] == [v2.id, v1.id] and body["run"]["config"]["n"] == 1
    assert body["run"]["project_id"] == body["project_id"]
    round_project = session.get(Project, body["project_id"])
    assert round_project.kind == "ranking" and "without names" in round_project.instructions
    external = session.scalars(
        select(Prompt.external_id).where(Prompt.project_id == round_project.id)
    ).all()
    assert sorted(external) == [f"s{i}" for i in range(5)]
    responses = session.scalar(
        select(func.count())
        .select_from(Response)
        .join(Prompt)
        .where(Prompt.project_id == round_project.id)
    )
    assert responses == 0  # the run will add them

    snapshot, _ = datasets_service.create_snapshot(
        session=session, project=source, data=SnapshotCreate(kind="prompts", split=0.6)
    )
    r = client.post(
        f"/api/v1/models/{v2.id}/next-round",
        json={"name": "round 3", "snapshot_id": snapshot.id, "compare_with": [], "n": 3},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["k"] == 3 and r.json()["run"]["model_ids"] == [v2.id]
    prompts = session.scalar(
        select(func.count()).select_from(Prompt).where(Prompt.project_id == r.json()["project_id"])
    )
    assert prompts == 5  # train and test rows both

    def bad(model_id, **body):  # type: ignore[no-untyped-def]
        out = client.post(
            f"/api/v1/models/{model_id}/next-round",
            json={"name": "bad", **body},
            headers=admin.headers,
        )
        assert out.status_code in (404, 409, 422), out.text
        return out.text

    assert "reward model" in bad(rm.id, project=source.id)
    assert "1 candidates" in bad(v1.id, project=source.id)  # v1 has no base to compare with
    assert "one of them" in bad(v2.id, project=source.id, snapshot_id=snapshot.id)
    assert "one of them" in bad(v2.id)
    assert "is a reward model" in bad(v2.id, project=source.id, compare_with=["rm"])
    assert "temperature" in bad(v2.id, project=source.id, config={"temperature": "hot"})
    assert "'policy-v1' is a policy model in the registry; a reward model is" in bad(
        v2.id, project=source.id, reward_model="policy-v1"
    )
    ranked = client.post(
        f"/api/v1/models/{v2.id}/next-round",
        json={"name": "round by uncertainty", "project": source.name, "reward_model": "rm"},
        headers=admin.headers,
    ).json()
    assert ranked["run"]["reward_model_id"] == rm.id
    made = client.get(f"/api/v1/projects/{ranked['project_id']}", headers=admin.headers).json()
    assert made["order"] == "uncertainty"
    assert (
        session.scalar(select(func.count()).select_from(Project).where(Project.name == "bad")) == 0
    )


def test_generate_form_next_round_form_and_leaderboard_pages(
    client, factory, session, tmp_path, tiny_models
) -> None:
    admin = factory.user("admin")
    v1, v2, _ = _policies(session, tiny_models)
    project = factory.project(kind="ranking", k=2)
    factory.items(project, [{"prompt": "hello", "responses": []}], tmp_path)
    writing = factory.project(kind="demonstration", k=1)
    token = login(client, admin)

    page = client.get(f"/admin/projects/{project.id}")
    assert f"/admin/projects/{project.id}/generate" in page.text
    assert "/generate" not in client.get(f"/admin/projects/{writing.id}").text
    form = client.get(f"/admin/projects/{project.id}/generate")
    assert form.status_code == 200 and "policy-v2" in form.text and "rm</label>" not in form.text
    none = client.post(
        f"/admin/projects/{project.id}/generate", data={"csrf_token": token, "n": "2"}
    )
    assert none.status_code == 422 and "at least one registered model" in none.text
    made = client.post(
        f"/admin/projects/{project.id}/generate",
        data={"csrf_token": token, "models": [str(v1.id), str(v2.id)], "n": "2", "seed": "7"},
        follow_redirects=False,
    )
    assert made.status_code == 303
    run = client.get(made.headers["location"])
    assert run.status_code == 200 and "Responses stored" in run.text and project.name in run.text
    run_id = int(made.headers["location"].rsplit("/", 1)[1])
    stored = client.get(f"/api/v1/runs/{run_id}").json()
    assert stored["config"] == {"n": 2, "seed": 7} and stored["model_ids"] == [v1.id, v2.id]
    assert "generate" in client.get("/admin/runs").text

    model_page = client.get(f"/admin/models/{v2.id}")
    assert model_page.status_code == 200 and "Next round" in model_page.text
    assert f'value="{v1.id}" checked' in model_page.text  # its base model, ticked by default
    round_made = client.post(
        f"/admin/models/{v2.id}/next-round",
        data={
            "csrf_token": token,
            "name": "blind round",
            "source": f"project:{project.id}",
            "compare_with": [str(v1.id)],
            "n": "1",
        },
        follow_redirects=False,
    )
    assert round_made.status_code == 303, round_made.text
    too_few = client.post(
        f"/admin/models/{v2.id}/next-round",
        data={"csrf_token": token, "name": "x", "source": f"project:{project.id}", "n": "1"},
    )
    assert too_few.status_code == 422 and "2 to 9" in too_few.text

    board = client.get("/admin/models/leaderboard")
    assert board.status_code == 200 and "policy-v2" in board.text and "unrated" in board.text


def test_cli_generate_and_leaderboard(engine, session, factory, tmp_path, tiny_models) -> None:
    _policies(session, tiny_models)
    project = factory.project(kind="rating", k=2)
    runner = CliRunner()
    started = runner.invoke(
        cli_app,
        ["runs", "start", "--kind", "generate", "--project", project.name, "--model", "policy-v1",
         "--model", "policy-v2", "--set", "n=4", "--set", "temperature=0.8", "--json"],
    )  # fmt: skip
    assert started.exit_code == 0, started.output
    run = json.loads(started.stdout)
    assert run["kind"] == "generate" and run["config"] == {"n": 4, "temperature": 0.8}
    wrong = runner.invoke(
        cli_app, ["runs", "start", "--kind", "generate", "--project", project.name, "--model", "rm"]
    )
    assert wrong.exit_code == 2 and "'rm' is a reward model" in wrong.output
    board = runner.invoke(cli_app, ["models", "leaderboard", "--json"])
    assert board.exit_code == 0, board.output
    rows = json.loads(board.stdout)["rows"]
    assert [r["name"] for r in rows] == ["policy-v1", "policy-v2"] and rows[0]["rating"] is None
    table = runner.invoke(cli_app, ["models", "leaderboard"])
    assert "unrated" in table.stdout and "0 comparisons" in table.stdout


def test_a_next_round_is_one_transaction_and_a_failed_import_leaves_nothing(
    session, factory, tmp_path, tiny_models, monkeypatch
) -> None:
    _, v2, _ = _policies(session, tiny_models)
    source = factory.project(kind="ranking", k=2)
    items = [{"id": f"s{i}", "prompt": f"question {i}", "responses": ["a", "b"]} for i in range(5)]
    factory.items(source, items, tmp_path)

    def stored() -> tuple[int, int, int]:
        return (
            session.scalar(select(func.count()).select_from(Project)),
            session.scalar(select(func.count()).select_from(Prompt)),
            session.scalar(select(func.count()).select_from(TrainingRun)),
        )

    before = stored()
    project, run = rounds.next_round(
        session=session, model_id=v2.id, name="undone", source_project=source.name
    )
    in_round = select(func.count()).select_from(Prompt).where(Prompt.project_id == project.id)
    assert run.project_id == project.id and session.scalar(in_round) == 5
    session.rollback()  # the caller's to commit: nothing of the round was committed
    assert stored() == before

    real_write = BulkWriter.write
    written = []

    def write_then_fail(self, chunk):  # type: ignore[no-untyped-def]
        written.append(real_write(self, chunk))
        raise OSError("No space left on device")

    monkeypatch.setattr(BulkWriter, "write", write_then_fail)
    with pytest.raises(OSError, match="No space left"):
        rounds.next_round(
            session=session, model_id=v2.id, name="broken", source_project=source.name
        )
    session.rollback()
    assert written and stored() == before  # prompts were written, then all rolled back
    assert session.scalar(select(Project.id).where(Project.name == "broken")) is None
