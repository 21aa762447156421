"""Picking a run's distribution where it is typed: a worker reports what its machine offers,
the start form offers strategy, processes, machines and zero_stage beside the live workers'
resources, and a distribution no live worker can run is refused at once (form, API), never
queued to fail when a worker takes it."""

import importlib.util
import os

from markupsafe import escape

from app.base import utcnow
from app.runs.models import TrainingRun, Worker
from app.runs.worker import Worker as RunWorker
from tests.test_pages import login

GPU_WORKER = {
    "cpus": 32,
    "memory_gib": 250.0,
    "gpus": [{"name": "NVIDIA H100", "memory_gib": 79.6}],
    "strategies": ["ddp", "fsdp"],
    "ray": False,
}


def test_a_worker_reports_its_machine(session, artifacts) -> None:
    RunWorker(name="w-here", poll_seconds=0.1, heartbeat_seconds=0.1).run_once()
    session.expire_all()
    row = session.get(Worker, "w-here")
    assert row is not None and row.resources is not None
    assert row.resources["cpus"] == os.cpu_count()
    assert row.resources["memory_gib"] > 0 and row.resources["ray"] is False
    assert row.resources["strategies"][:2] == ["ddp", "fsdp"]
    assert ("deepspeed" in row.resources["strategies"]) == (
        importlib.util.find_spec("deepspeed") is not None
    )


def _live(session, name: str, resources: dict) -> None:  # type: ignore[no-untyped-def]
    session.add(Worker(name=name, heartbeat_at=utcnow(), resources=resources))
    session.commit()


def _form(token: str, snapshot, model: str, **fields: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    base = {"csrf_token": token, "kind": "sft", "snapshot_id": str(snapshot.id), "model": model}
    return base | fields


def test_the_form_offers_the_distribution_and_refuses_what_no_worker_can_run(
    client, factory, session, sft_snapshot, policy_dir
) -> None:
    admin = factory.user("admin")
    token = login(client, admin)
    page = client.get("/admin/runs/new").text
    assert 'name="strategy"' in page and 'name="processes"' in page and 'name="zero_stage"' in page
    assert "No live worker" in page

    _live(session, "gpu-1", GPU_WORKER)
    page = client.get("/admin/runs/new").text
    assert "gpu-1" in page and str(escape("1 GPU (NVIDIA H100, 79.6 GiB each)")) in page

    # Two processes on a worker with one GPU: refused beside the field, as typed.
    refused = client.post(
        "/admin/runs", data=_form(token, sft_snapshot, policy_dir, strategy="fsdp", processes="2")
    )
    assert refused.status_code == 422
    assert 'id="error-processes"' in refused.text and "one process per GPU" in refused.text
    assert '<option value="fsdp" selected>' in refused.text
    # deepspeed where no live worker has it
    no_ds = client.post(
        "/admin/runs",
        data=_form(token, sft_snapshot, policy_dir, strategy="deepspeed", zero_stage="2"),
    )
    assert no_ds.status_code == 422 and 'id="error-strategy"' in no_ds.text
    # The API refuses the same, naming the key.
    body = {"kind": "sft", "snapshot_id": sft_snapshot.id, "model": policy_dir}
    api = client.post(
        "/api/v1/runs", json=body | {"config": {"processes": 2}}, headers=admin.headers
    )
    assert api.status_code == 422 and api.json()["detail"][0]["loc"][-1] == "processes"
    assert session.query(TrainingRun).count() == 0  # nothing was queued

    # One process with fsdp fits; the run records the distribution asked for.
    made = client.post(
        "/admin/runs",
        data=_form(token, sft_snapshot, policy_dir, strategy="fsdp", processes="1"),
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    session.commit()  # end the read transaction: see what the request committed
    run = session.query(TrainingRun).one()
    assert run.config.get("strategy") == "fsdp" and "processes" not in run.config

    # A CPU worker runs any number of processes (they share its cores).
    _live(session, "cpu-1", GPU_WORKER | {"cpus": 2, "gpus": []})
    made = client.post(
        "/admin/runs",
        data=_form(token, sft_snapshot, policy_dir, strategy="fsdp", processes="4"),
        follow_redirects=False,
    )
    assert made.status_code == 303, made.text
    session.commit()
    newest = session.query(TrainingRun).order_by(TrainingRun.id.desc()).first()
    assert (newest.config["strategy"], newest.config["processes"]) == ("fsdp", 4)
