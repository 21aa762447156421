"""The run lifecycle through the API: create, validate, list, cancel; the model registry."""


def _start(client, admin, **body):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/runs", json=body, headers=admin.headers)


def test_a_run_is_queued_listed_and_cancelled(client, factory, sft_snapshot, policy_dir) -> None:
    admin = factory.user("admin")
    created = _start(
        client,
        admin,
        kind="sft",
        snapshot_id=sft_snapshot.id,
        model=policy_dir,
        config={"max_steps": 5, "learning_rate": "0.001"},
    )
    assert created.status_code == 201, created.text
    run = created.json()
    assert run["status"] == "queued" and run["config"] == {"max_steps": 5, "learning_rate": 0.001}
    assert [
        r["id"] for r in client.get("/api/v1/runs?status=queued", headers=admin.headers).json()
    ] == [run["id"]]
    cancelled = client.post(f"/api/v1/runs/{run['id']}/cancel", headers=admin.headers)
    assert cancelled.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/runs/{run['id']}/cancel", headers=admin.headers)
    assert again.status_code == 409


def test_bad_runs_are_refused_naming_the_field(client, factory, sft_snapshot) -> None:
    admin = factory.user("admin")
    wrong_kind = _start(client, admin, kind="dpo", snapshot_id=sft_snapshot.id, model="m")
    assert wrong_kind.status_code == 422 and wrong_kind.json()["field"] == "snapshot_id"
    assert "pairs" in wrong_kind.json()["detail"]
    unknown_key = _start(
        client,
        admin,
        kind="sft",
        snapshot_id=sft_snapshot.id,
        model="m",
        config={"learnin_rate": 1},
    )
    assert unknown_key.status_code == 422
    [error] = unknown_key.json()["detail"]
    assert error["loc"] == ["body", "config", "learnin_rate"]
    assert "unknown config key 'learnin_rate'" in error["msg"]
    reserved = _start(
        client,
        admin,
        kind="sft",
        snapshot_id=sft_snapshot.id,
        model="m",
        config={"output_dir": "/tmp/x"},
    )
    assert reserved.status_code == 422
    assert reserved.json()["detail"][0]["loc"] == ["body", "config", "output_dir"]
    assert "set by the worker" in reserved.json()["detail"][0]["msg"]
    missing = _start(client, admin, kind="sft", snapshot_id=999, model="m")
    assert missing.status_code == 404


def test_ppo_needs_a_reward_model_and_resolves_registry_names(
    client, factory, session, tmp_path, artifacts, policy_dir, reward_dir
) -> None:
    from app.datasets import service as datasets_service
    from app.datasets.schemas import SnapshotCreate

    admin = factory.user("admin")
    project = factory.project(kind="demonstration", k=1)
    factory.items(project, [{"id": "a", "prompt": "hi"}], tmp_path)
    prompts, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="prompts")
    )
    no_reward = _start(client, admin, kind="ppo", snapshot_id=prompts.id, model=policy_dir)
    assert no_reward.status_code == 422 and no_reward.json()["field"] == "reward_model"
    policy = client.post(
        "/api/v1/models",
        json={"name": "p", "kind": "policy", "path": policy_dir},
        headers=admin.headers,
    ).json()
    client.post(
        "/api/v1/models",
        json={"name": "rm", "kind": "reward", "path": reward_dir},
        headers=admin.headers,
    )
    not_reward = _start(
        client, admin, kind="ppo", snapshot_id=prompts.id, model="p", reward_model="p"
    )
    assert not_reward.status_code == 422 and not_reward.json()["field"] == "reward_model"
    run = _start(
        client,
        admin,
        kind="ppo",
        snapshot_id=prompts.id,
        model=str(policy["id"]),
        reward_model="rm",
    ).json()
    assert (run["base_model"], run["base_model_id"], run["reward_model"]) == (
        policy_dir,
        policy["id"],
        reward_dir,
    )


def test_defaults_come_from_the_trainer(client, factory) -> None:
    from trainer.configs import SFTConfig

    admin = factory.user("admin")
    defaults = client.get("/api/v1/runs/defaults/sft", headers=admin.headers).json()
    assert defaults["learning_rate"] == SFTConfig().learning_rate
    assert "output_dir" not in defaults and "model" not in defaults


def _csrf(client, path: str) -> str:  # type: ignore[no-untyped-def]
    import re

    return re.search(r'name="csrf-token" content="([^"]+)"', client.get(path).text).group(1)


def test_start_form_creates_a_run(client, factory, sft_snapshot, policy_dir) -> None:
    admin = factory.user("admin")
    client.post(
        "/login",
        data={
            "email": admin.email,
            "password": "correct-horse-battery",
            "csrf_token": _csrf(client, "/login"),
        },
    )
    page = client.get("/admin/runs/new")
    assert page.status_code == 200 and f"#{sft_snapshot.id}" in page.text
    response = client.post(
        "/admin/runs",
        data={
            "csrf_token": _csrf(client, "/admin/runs/new"),
            "kind": "sft",
            "snapshot_id": sft_snapshot.id,
            "model": policy_dir,
            "max_steps": "7",
            "learning_rate": "2e-05",
            "batch_size": "8",
            "max_length": "512",
            "seed": "42",
            "extra_config": '{"warmup_ratio": 0.2}',
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    run_id = int(response.headers["location"].rsplit("/", 1)[1])
    run = client.get(f"/api/v1/runs/{run_id}").json()
    # only what differs from the trainer's defaults is stored
    assert run["config"] == {"max_steps": 7, "warmup_ratio": 0.2}
    bad = client.post(
        "/admin/runs",
        data={
            "csrf_token": _csrf(client, "/admin/runs/new"),
            "kind": "sft",
            "snapshot_id": sft_snapshot.id,
            "model": policy_dir,
            "extra_config": "[1]",
        },
    )
    assert bad.status_code == 422 and "more config must be a JSON object" in bad.text


def _login(client, admin) -> None:  # type: ignore[no-untyped-def]
    client.post(
        "/login",
        data={
            "email": admin.email,
            "password": "correct-horse-battery",
            "csrf_token": _csrf(client, "/login"),
        },
    )


def test_a_silent_worker_shows_stale_and_no_live_worker_says_so(
    client, factory, session, sft_snapshot, monkeypatch, policy_dir
) -> None:
    from datetime import timedelta

    from typer.testing import CliRunner

    from app.base import utcnow
    from app.cli import app as cli
    from app.config import get_settings
    from app.runs import service, worker_steps

    monkeypatch.setenv("RLHF_RUN_STALE_SECONDS", "60")
    get_settings.cache_clear()
    admin = factory.user("admin")
    run = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model=policy_dir
    )
    session.commit()
    assert worker_steps.claim_next(session=session, worker="w1").id == run.id
    shown = client.get(f"/api/v1/runs/{run.id}", headers=admin.headers).json()
    assert (shown["status"], shown["state"]) == ("running", "running")

    run.heartbeat_at = utcnow() - timedelta(seconds=61)
    session.commit()
    shown = client.get(f"/api/v1/runs/{run.id}", headers=admin.headers).json()
    assert (shown["status"], shown["state"]) == ("running", "stale")
    listed = CliRunner().invoke(cli, ["runs", "list"])
    assert listed.exit_code == 0 and f"{run.id:4} sft  stale" in listed.output
    _login(client, admin)
    assert 'class="tag run-stale">stale<' in client.get("/admin/runs").text
    for page in ("/admin/runs", f"/admin/runs/{run.id}", "/admin"):
        assert "No worker is running" in client.get(page).text, page

    worker_steps.worker_alive(session=session, worker="w2", run_id=None)
    for page in ("/admin/runs", f"/admin/runs/{run.id}", "/admin"):
        assert "No worker is running" not in client.get(page).text, page
    # the next worker's sweep retries the run (after a backoff) and it is no longer stale
    swept = worker_steps.requeue_stale(session=session, stale_seconds=60, retry_seconds=60)
    assert swept == [run.id]
    session.refresh(run)
    assert (run.status, run.state, run.worker) == ("queued", "queued", None)
    assert "the worker w1 was lost" in run.error and "will be retried" in run.error
    assert worker_steps.claim_next(session=session, worker="w2") is None  # not before its backoff


def test_retry_requeues_a_failed_run_with_fresh_attempts(
    client, factory, session, sft_snapshot, policy_dir
) -> None:
    from typer.testing import CliRunner

    from app.cli import app as cli
    from app.runs import service, worker_steps

    admin = factory.user("admin")
    run = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model=policy_dir
    )
    session.commit()
    worker_steps.claim_next(session=session, worker="w1")
    refused = client.post(f"/api/v1/runs/{run.id}/retry", headers=admin.headers)
    assert refused.status_code == 409 and "only failed or cancelled" in refused.json()["detail"]
    run.max_attempts = 1
    session.commit()
    worker_steps.attempt_ended(
        session=session,
        run=run,
        worker="w1",
        exit_code=-9,
        worker_stopping=False,
        retry_seconds=0,
    )
    assert run.status == "failed" and "no retries left" in run.error

    retried = client.post(f"/api/v1/runs/{run.id}/retry", headers=admin.headers)
    assert retried.status_code == 200, retried.text
    body = retried.json()
    assert (body["status"], body["error"], body["attempt"], body["max_attempts"]) == (
        "queued",
        None,
        1,
        4,
    )
    assert worker_steps.claim_next(session=session, worker="w1").attempt == 2
    session.refresh(run)
    worker_steps.finish_run(session=session, run=run, status="cancelled")
    _login(client, admin)
    page = client.get(f"/admin/runs/{run.id}").text
    assert f'action="/admin/runs/{run.id}/retry"' in page
    result = CliRunner().invoke(cli, ["runs", "retry", str(run.id)])
    assert result.exit_code == 0 and "resumes as attempt 3" in result.output
    again = CliRunner().invoke(cli, ["runs", "retry", str(run.id)])
    assert again.exit_code == 2 and "only failed or cancelled" in again.stderr


def test_every_run_kind_is_created_by_one_creator(client, factory, sft_snapshot) -> None:
    from app.runs.models import TRAINS_ON, RunKind
    from app.runs.service import CREATORS

    assert set(CREATORS) == set(RunKind)
    assert len({CREATORS[kind] for kind in TRAINS_ON}) == 1  # the training kinds share one
    admin = factory.user("admin")
    body = {"kind": "generate", "snapshot_id": sft_snapshot.id, "project": "p", "models": ["m"]}
    refused = client.post("/api/v1/runs", json=body, headers=admin.headers)
    assert refused.status_code == 422 and "takes no snapshot" in refused.text
