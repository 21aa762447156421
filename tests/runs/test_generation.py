"""Generation runs: registered tiny policies fill a project through the real worker and
from_pretrained; labelers rank what they wrote; the registry leaderboard rates the models."""

import threading
import time
from collections import Counter

from sqlalchemy import func, select

from app.db import get_sessionmaker
from app.projects.models import Prompt, Response
from app.runs import generation, registry, service
from app.runs.models import TrainingRun
from app.runs.worker import Worker
from tests.helpers import row_id

FAST = {"max_new_tokens": 6, "batch_size": 4, "temperature": 1.0, "seed": 0}


def _register(client, admin, name, path, kind="policy"):  # type: ignore[no-untyped-def]
    r = client.post(
        "/api/v1/models",
        json={"name": name, "kind": kind, "path": str(path)},
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    return r.json()


def _generated(session, project) -> list[tuple[int, int | None, int | None]]:  # type: ignore[no-untyped-def]
    project_id = project.id
    with get_sessionmaker()() as fresh:  # sees what the worker committed meanwhile
        return list(
            fresh.execute(
                select(Response.prompt_id, Response.model_id, Response.sample_index)
                .join(Prompt, Prompt.id == Response.prompt_id)
                .where(Prompt.project_id == project_id)
            ).all()
        )


def _status(run_id: int) -> TrainingRun:
    with get_sessionmaker()() as s:
        run = s.get(TrainingRun, run_id)
        s.expunge(run)
        return run


def test_generate_fills_a_project_labelers_rank_and_the_registry_rates_models(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    admin, labeler = factory.user("admin"), factory.user()
    policy = _register(client, admin, "tiny-policy", tiny_models["causal-lm"])
    _register(client, admin, "tiny-rm", tiny_models["encoder"], kind="reward")
    project = factory.project(kind="ranking", k=4)
    prompts = [
        {"id": f"q{i}", "prompt": f"tell me about the river {i}", "responses": []} for i in range(3)
    ]
    assert factory.items(project, prompts, tmp_path).imported == 3
    next_task = f"/api/v1/projects/{project.id}/tasks/next"
    assert client.get(next_task, headers=labeler.headers).status_code == 204  # nothing to rank yet

    # A second version of the policy, whose base is the first.
    with get_sessionmaker()() as s:
        v2 = registry.register_model(
            session=s,
            name="tiny-policy-v2",
            kind="policy",
            path=str(tiny_models["causal-lm"]),
            base_model_id=policy["id"],
        )
        s.commit()
        v2_id = v2.id

    r = client.post(
        "/api/v1/runs",
        json={
            "kind": "generate",
            "project": project.name,
            "models": ["tiny-policy", "tiny-policy-v2"],
            "reward_model": "tiny-rm",
            "config": FAST | {"n": 2},
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["project_id"] == project.id and run["model_ids"] == [policy["id"], v2_id]
    assert run["snapshot_id"] is None and run["config"]["n"] == 2

    assert Worker(poll_seconds=0.2, heartbeat_seconds=0.5).run_once() == run["id"]
    done = _status(run["id"])
    assert done.status == "succeeded", done.error
    assert done.output_model_id is None  # a generation registers no model
    rows = _generated(session, project)
    assert len(rows) == 3 * 2 * 2 and len(set(rows)) == len(rows)
    assert Counter(model_id for _, model_id, _ in rows) == {policy["id"]: 6, v2_id: 6}
    stored = session.scalars(select(Response).where(Response.model_id == v2_id)).all()
    assert {r.model for r in stored} == {"tiny-policy-v2"}
    assert all(r.meta["run_id"] == run["id"] and r.meta["finish_reason"] for r in stored)
    assert all(isinstance(r.meta["reward"], float) for r in stored)  # scored by tiny-rm
    priorities = session.scalars(select(Prompt.priority).where(Prompt.project_id == project.id))
    assert all(p is not None and p >= 0 for p in priorities)
    progress = generation.read_progress(done.run_dir)
    assert (progress["stored"], progress["planned"]) == (12, 12)
    metrics = client.get(f"/api/v1/runs/{run['id']}/metrics", headers=admin.headers).json()
    assert metrics and all(m["values"]["tokens_per_second"] > 0 for m in metrics)

    # Labelers rank through the API, blind: v2's responses first, always.
    model_of = {r.id: r.model_id for r in session.scalars(select(Response)).all()}
    ranked = 0
    while (task := client.get(next_task, headers=labeler.headers)).status_code == 200:
        body = task.json()
        assert len(body["responses"]) == 4
        assert all(set(resp) == {"id", "text"} for resp in body["responses"])  # no model names
        order = sorted(
            body["responses"], key=lambda x: model_of[row_id("response", x["id"])] != v2_id
        )
        sent = client.post(
            f"/api/v1/assignments/{body['assignment_id']}/annotations",
            json={"ranking": [x["id"] for x in order]},
            headers=labeler.headers,
        )
        assert sent.status_code == 201, sent.text
        ranked += 1
    assert ranked == 3

    board = client.get("/api/v1/models/leaderboard?rounds=200", headers=admin.headers).json()
    names = [row["name"] for row in board["rows"]]
    assert names == ["tiny-policy-v2", "tiny-policy"]  # the reward model is not rated
    top, base = board["rows"]
    assert top["rating"] > base["rating"] and top["upper"] > base["upper"]
    assert top["lower"] - 1e-6 <= top["rating"] <= top["upper"] + 1e-6
    assert top["base_model_name"] == "tiny-policy" and top["win_rate_vs_base"] == 1.0
    assert top["games_vs_base"] > 0 and base["win_rate_vs_base"] is None

    # Asked again, the same generation finds nothing missing (a run of it samples nothing).
    from app.projects.generated import missing_samples

    for model_id, name in ((policy["id"], "tiny-policy"), (v2_id, "tiny-policy-v2")):
        left = missing_samples(
            session=session, project_id=project.id, model_id=model_id, model_name=name, n=2
        )
        assert left == {}
    assert missing_samples(
        session=session, project_id=project.id, model_id=v2_id, model_name="tiny-policy-v2", n=3
    ) == {pid: [2] for pid, _, _ in rows}


def test_cancel_then_resume_never_duplicates(
    client, factory, session, tmp_path, tiny_models, artifacts
) -> None:
    admin = factory.user("admin")
    _register(client, admin, "policy", tiny_models["causal-lm"])
    project = factory.project(kind="rating", k=2)
    # Enough samples that the cancel lands mid-run on a fast machine too.
    prompts = 48
    lines = [{"prompt": f"hello {i}", "responses": []} for i in range(prompts)]
    factory.items(project, lines, tmp_path)
    config = FAST | {"n": 2, "batch_size": 1, "max_new_tokens": 24}
    start = {"kind": "generate", "project": project.name, "models": ["policy"], "config": config}
    run_id = client.post("/api/v1/runs", json=start, headers=admin.headers).json()["id"]
    worker = Worker(poll_seconds=0.2, heartbeat_seconds=0.5)
    thread = threading.Thread(target=worker.run_once, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while len(_generated(session, project)) < 2:  # labelers could start now
        assert time.monotonic() < deadline, "no samples streamed in"
        time.sleep(0.2)
    r = client.post(f"/api/v1/runs/{run_id}/cancel", headers=admin.headers)
    assert r.status_code == 200
    thread.join(120)
    cancelled = _status(run_id)
    assert cancelled.status == "cancelled"
    partial = _generated(session, project)
    assert 2 <= len(partial) < 2 * prompts and len(set(partial)) == len(partial)

    # Ingesting the same samples file again (a retry of the stream) stores nothing new.
    progress = generation.read_progress(cancelled.run_dir)
    generation._write_progress(artifacts / "runs" / str(run_id), progress | {"offset": 0})
    with get_sessionmaker()() as s:
        assert (
            generation.ingest(
                session=s, run=s.get(TrainingRun, run_id), run_dir=artifacts / "runs" / str(run_id)
            )
            == 0
        )

    resumed = service.create_run(
        session=session,
        kind="generate",
        project=project.id,
        models=["policy"],
        config=config | {"batch_size": 8},
    )
    session.commit()
    assert Worker(poll_seconds=0.2).run_once() == resumed.id
    assert _status(resumed.id).status == "succeeded"
    rows = _generated(session, project)
    assert len(rows) == 2 * prompts and len(set(rows)) == 2 * prompts
    assert sorted({i for _, _, i in rows}) == [0, 1]
    assert (
        session.scalar(
            select(func.count()).select_from(Response).where(Response.sample_index.is_(None))
        )
        == 0
    )


def test_bad_generation_requests_say_what_is_wrong(client, factory, tmp_path, tiny_models) -> None:
    admin = factory.user("admin")
    _register(client, admin, "policy", tiny_models["causal-lm"])
    _register(client, admin, "rm", tiny_models["encoder"], kind="reward")
    ranking = factory.project(kind="ranking", k=2)
    demo = factory.project(kind="demonstration", k=1)

    def start(**body):  # type: ignore[no-untyped-def]
        return client.post("/api/v1/runs", json={"kind": "generate", **body}, headers=admin.headers)

    unknown = start(project=ranking.id, models=["nope"])
    assert unknown.status_code == 404 and "no registered model 'nope'" in unknown.json()["detail"]
    reward = start(project=ranking.id, models=["rm"])
    assert reward.status_code == 422 and "'rm' is a reward model" in reward.json()["detail"]
    writing = start(project=demo.name, models=["policy"])
    assert writing.status_code == 422 and "demonstration project" in writing.json()["detail"]
    assert start(models=["policy"]).json()["field"] == "project"
    assert start(project="missing", models=["policy"]).status_code == 404
    zero = start(project=ranking.id, models=["policy"], config={"n": 0})
    assert zero.status_code == 422
    assert zero.json()["detail"][0]["loc"] == ["body", "config", "n"]
    assert "n must be ≥ 1 and ≤ 64; got 0" in zero.json()["detail"][0]["msg"]
    assert start(project=ranking.id, models=["policy"], config={"models": ["x"]}).status_code == 422
    assert (
        start(project=ranking.id, models=["policy"], config={"learning_rate": 1}).status_code == 422
    )


def test_a_prompt_is_served_once_it_has_enough_responses(
    client, factory, session, tmp_path
) -> None:
    from app.projects import generated

    labeler = factory.user()
    ranking = factory.project(kind="ranking", k=3)
    rating = factory.project(kind="rating", k=2)
    factory.items(ranking, [{"id": "r", "prompt": "rank me", "responses": []}], tmp_path)
    factory.items(rating, [{"id": "s", "prompt": "rate me"}], tmp_path)  # a `prompts` line
    # Prompts imported with their own candidates are served as before.
    factory.items(ranking, [{"id": "old", "prompt": "old", "responses": ["a", "b"]}], tmp_path)

    def served(project) -> list[str]:  # type: ignore[no-untyped-def]
        r = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=labeler.headers)
        if r.status_code == 204:
            return []
        client.post(
            f"/api/v1/assignments/{r.json()['assignment_id']}/skip",
            json={"reason": "x"},
            headers=labeler.headers,
        )
        return [session.get(Prompt, row_id("prompt", r.json()["prompt_id"])).external_id]

    def add(project, count: int, start: int = 0) -> None:  # type: ignore[no-untyped-def]
        prompt_id = session.scalar(
            select(Prompt.id).where(Prompt.project_id == project.id).order_by(Prompt.id)
        )
        rows = [
            {
                "prompt_id": prompt_id,
                "text": f"t{i}",
                "model": "m",
                "model_id": 99,
                "sample_index": i,
                "meta": {},
            }
            for i in range(start, start + count)
        ]
        generated.store_generated(session=session, rows=rows)
        session.commit()

    assert served(rating) == []
    add(rating, 1)
    assert served(rating) == ["s"]
    add(ranking, 2)
    assert served(ranking) == ["old"]  # "r" has 2 of its K=3
    add(ranking, 2, start=1)  # index 1 again is ignored, index 2 is new
    assert served(ranking) == ["r"]


def test_ingest_stores_complete_lines_once_and_text_postgres_can_hold(
    session, factory, tmp_path, policy_dir
) -> None:
    import json

    registry.register_model(session=session, name="p", kind="policy", path=policy_dir)
    project = factory.project(kind="rating", k=1)
    factory.items(project, [{"id": "a", "prompt": "hi"}], tmp_path)
    run = service.create_run(session=session, kind="generate", project=project.id, models=["p"])
    session.commit()
    prompt_id = session.scalar(select(Prompt.id).where(Prompt.project_id == project.id))
    row = {
        "prompt_id": str(prompt_id),
        "sample_index": 0,
        "text": "a\x00b",  # a random model can decode a NUL byte
        "model": "p",
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "finish_reason": "length",
        "truncated": False,
    }
    out = tmp_path / "run" / "output"
    out.mkdir(parents=True)
    torn = json.dumps(row | {"sample_index": 1})[:20]
    (out / "samples.jsonl").write_text(json.dumps(row) + "\n" + torn)
    assert generation.ingest(session=session, run=run, run_dir=tmp_path / "run") == 1
    assert generation.ingest(session=session, run=run, run_dir=tmp_path / "run") == 0
    [stored] = session.scalars(select(Response).where(Response.prompt_id == prompt_id)).all()
    assert stored.text == "a\ufffdb" and stored.model_id == run.model_ids[0]
    assert generation.read_progress(tmp_path / "run")["stored"] == 1


def test_uncertainty_order_serves_the_closest_candidates_first(
    client, factory, session, tmp_path
) -> None:
    from app.projects import generated

    labeler = factory.user()
    project = factory.project(kind="ranking", k=2, order="uncertainty")
    factory.items(project, [{"id": n, "prompt": n, "responses": []} for n in "abcd"], tmp_path)
    ids = dict(session.execute(select(Prompt.external_id, Prompt.id)).all())
    gaps = {"a": 3.0, "b": 0.5, "c": 1.0}  # "d" is not scored: served last
    rows = []
    for name, prompt_id in ids.items():
        for i, reward in enumerate([0.0, gaps.get(name)]):
            meta = {} if reward is None else {"reward": reward}
            rows.append(
                {"prompt_id": prompt_id, "text": f"{name}{i}", "model": "m", "model_id": 1,
                 "sample_index": i, "meta": meta}
            )  # fmt: skip
    generated.store_generated(session=session, rows=rows)
    session.commit()
    assert session.get(Prompt, ids["b"]).priority == 0.5
    order = []
    while (
        task := client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=labeler.headers)
    ).status_code == 200:
        shown = row_id("prompt", task.json()["prompt_id"])
        order.append(next(n for n, i in ids.items() if i == shown))
        client.post(
            f"/api/v1/assignments/{task.json()['assignment_id']}/skip",
            json={"reason": "x"},
            headers=labeler.headers,
        )
    assert order == ["b", "c", "a", "d"]
