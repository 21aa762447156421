"""What the runs list and a run's page tell a new admin: a base model by a name a person gave
it, and where a finished run ran."""

import json
import re
from pathlib import Path

from app.runs import service
from tests.test_pages import login


def _row(page: str, run_id: int) -> str:
    return re.search(rf'<tr id="run-{run_id}">(.*?)</tr>', page, re.S).group(1)


def _succeed(session, run, tmp_path: Path, summary: dict) -> None:  # type: ignore[no-untyped-def]
    """Claim the run as worker gpu-7 and end it as the trainer would: output and summary."""
    service.claim_next(session=session, worker="gpu-7")
    run_dir = tmp_path / f"run-{run.id}"
    (run_dir / "output").mkdir(parents=True)
    (run_dir / "output" / "summary.json").write_text(json.dumps(summary))
    service.set_run_dir(session=session, run=run, run_dir=str(run_dir))
    service.attempt_ended(
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
    named = service.register_model(
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
