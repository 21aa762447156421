"""What the runs list and a run's page tell a new admin: a base model by a name a person gave
it, where a finished run ran, an evaluation note that is true, and the model a run made."""

import json
import re
from pathlib import Path

from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from app.runs import registry, service, worker_steps
from tests.runs.conftest import label_all
from tests.test_pages import login


def _row(page: str, run_id: int) -> str:
    return re.search(rf'<tr id="run-{run_id}">(.*?)</tr>', page, re.S).group(1)


def _evaluation(page: str) -> str:
    return re.search(r'id="evaluation">(.*?)</dd>', page, re.S).group(1).strip()


def _succeed(session, run, tmp_path: Path, summary: dict) -> None:  # type: ignore[no-untyped-def]
    """Claim the run as worker gpu-7 and end it as the trainer would: output and summary."""
    worker_steps.claim_next(session=session, worker="gpu-7")
    run_dir = tmp_path / f"run-{run.id}"
    (run_dir / "output").mkdir(parents=True)
    (run_dir / "output" / "summary.json").write_text(json.dumps(summary))
    worker_steps.set_run_dir(session=session, run=run, run_dir=str(run_dir))
    worker_steps.attempt_ended(
        session=session,
        run=run,
        worker="gpu-7",
        exit_code=0,
        worker_stopping=False,
        retry_seconds=0,
    )


def test_runs_list_names_base_models_by_name_or_last_path_part(
    client, factory, session, sft_snapshot, policy_dir, tmp_path
) -> None:
    admin = factory.user("admin")
    login(client, admin)
    named = registry.register_model(
        session=session, name="tiny-base", kind="policy", path=policy_dir
    )
    session.commit()
    by_name = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model="tiny-base"
    )
    by_path = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model=policy_dir
    )
    session.commit()

    page = client.get("/admin/runs").text
    registered = _row(page, by_name.id)
    assert f'<a href="/admin/models/{named.id}" title="{policy_dir}">tiny-base</a>' in registered
    unregistered = _row(page, by_path.id)
    last_part = Path(policy_dir).name
    assert f'<span title="{policy_dir}">{last_part}</span>' in unregistered
    assert policy_dir not in unregistered.replace(f'title="{policy_dir}"', "")
    from app.runs.lineage import short_name

    assert short_name("Qwen/Qwen2-0.5B") == "Qwen2-0.5B" and short_name("/m/base/") == "base"


def test_a_finished_run_keeps_the_name_of_its_worker(
    client, factory, session, sft_snapshot, policy_dir, tmp_path
) -> None:
    admin = factory.user("admin")
    login(client, admin)
    by_name = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model=policy_dir
    )
    session.commit()
    _succeed(session, by_name, tmp_path, {"eval_loss": 1.5})
    session.refresh(by_name)
    assert (by_name.status, by_name.worker) == ("succeeded", "gpu-7")
    assert "on gpu-7" in _row(client.get("/admin/runs").text, by_name.id)
    assert re.search(r'id="worker">gpu-7<', client.get(f"/admin/runs/{by_name.id}").text)
    shown = client.get(f"/api/v1/runs/{by_name.id}", headers=admin.headers).json()
    assert shown["worker"] == "gpu-7"


def test_evaluation_says_no_held_out_rows_only_when_the_snapshot_had_none(
    client, factory, session, sft_snapshot, policy_dir, tmp_path
) -> None:
    admin = factory.user("admin")
    login(client, admin)
    assert sft_snapshot.test_rows > 0
    failed = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model=policy_dir
    )
    session.commit()
    assert _evaluation(client.get(f"/admin/runs/{failed.id}").text) == "when the run ends"
    worker_steps.claim(session=session, run=failed, worker="w1")
    worker_steps.finish_run(session=session, run=failed, status="failed", error="boom")
    page = client.get(f"/admin/runs/{failed.id}").text
    assert "no held-out rows" not in page
    assert _evaluation(page) == "none: the run ended before its evaluation"

    project = factory.project(kind="demonstration", k=1)
    factory.items(project, [{"id": f"d{i}", "prompt": f"p{i}"} for i in range(4)], tmp_path)
    label_all(session, project, factory.user(), lambda t: {"demonstration": "hi"})
    whole, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="sft", split=1.0)
    )
    assert whole.test_rows == 0
    unevaluated = service.create_run(
        session=session, kind="sft", snapshot_id=whole.id, model=policy_dir
    )
    session.commit()
    _succeed(session, unevaluated, tmp_path, {"steps": 3})
    page = client.get(f"/admin/runs/{unevaluated.id}").text
    assert _evaluation(page) == "no held-out rows (the snapshot has none)"


def test_a_run_page_names_and_links_the_model_it_made(
    client, factory, session, sft_snapshot, policy_dir, tmp_path
) -> None:
    login(client, factory.user("admin"))
    run = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model=policy_dir
    )
    session.commit()
    _succeed(session, run, tmp_path, {"eval_loss": 1.25})
    session.refresh(run)
    model = registry.get_model(session=session, model_id=run.output_model_id)
    page = client.get(f"/admin/runs/{run.id}").text
    output = re.search(r'id="output">(.*?)</dd>', page, re.S).group(1)
    assert output.startswith(f'<a href="/admin/models/{model.id}">{model.name}</a>')
    assert "eval_loss <b>1.25</b>" in _evaluation(page)
    listed = _row(client.get("/admin/runs").text, run.id)
    assert f'<a href="/admin/models/{model.id}">{model.name}</a>' in listed


def test_responses_cut_is_explained_where_it_is_shown(client, factory, session, tmp_path) -> None:
    from app.runs.models import RegisteredModel

    login(client, factory.user("admin"))
    model = RegisteredModel(
        name="rm-cut",
        kind="reward",
        path=str(tmp_path),
        run_id=None,
        metrics={"eval_accuracy": 0.75, "responses_cut": 12},
    )
    session.add(model)
    session.commit()
    page = client.get(f"/admin/models/{model.id}").text
    summary = re.search(r"<dt>responses_cut</dt><dd>(.*?)</dd>", page, re.S).group(1)
    assert summary.startswith("12 ")
    note = re.search(r'id="note-responses_cut">([^<]*)</span>', summary).group(1)
    assert "longer than max_length" in note and "raise max_length" in note.lower()
    assert 'id="note-eval_accuracy"' not in page  # a name that says enough has no note

    registry = client.get("/admin/models").text
    row = re.search(rf'<tr id="model-{model.id}">(.*?)</tr>', registry, re.S).group(1)
    assert f'<span class="has-note" title="{note}">responses_cut</span> 12' in row
    assert f"responses_cut: {note}" in row


def _distribution(page: str) -> str:
    return re.sub(r"<[^>]+>", "", re.search(r'id="distribution">(.*?)</dd>', page, re.S).group(1))


def test_run_page_and_runs_show_report_the_strategy_world_size_and_peak_memory(
    client, factory, session, sft_snapshot, policy_dir, tmp_path
) -> None:
    from typer.testing import CliRunner

    from app.cli import app

    login(client, factory.user("admin"))
    run = service.create_run(
        session=session,
        kind="sft",
        snapshot_id=sft_snapshot.id,
        model=policy_dir,
        config={"strategy": "fsdp", "processes": 2},
    )
    session.commit()
    # Queued: what the config asks for.
    assert _distribution(client.get(f"/admin/runs/{run.id}").text) == "fsdp · 2 processes"
    shown = CliRunner().invoke(app, ["runs", "show", str(run.id), "--json"])
    assert json.loads(shown.stdout)["distribution"] == {"strategy": "fsdp", "world_size": 2}

    # Finished: what the trainer's summary says, with each rank's peak memory.
    _succeed(
        session,
        run,
        tmp_path,
        {"steps": 4, "strategy": "fsdp", "world_size": 2, "peak_memory_mb": [410.4, 398.6]},
    )
    session.commit()
    page = client.get(f"/admin/runs/{run.id}").text
    assert _distribution(page) == "fsdp · 2 processes · peak memory per rank 410 / 399 MiB"
    shown = CliRunner().invoke(app, ["runs", "show", str(run.id), "--json"])
    assert json.loads(shown.stdout)["distribution"] == {
        "strategy": "fsdp",
        "world_size": 2,
        "peak_memory_mb": [410.4, 398.6],
    }
