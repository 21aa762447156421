"""A run whose loss never moved says so; evaluation only when there were held-out rows."""

import json
import math
import re

from app.runs import registry, service, worker_steps
from app.runs.health import loss_flat_warning


def test_a_loss_flat_at_ln2_after_the_warmup_is_reported() -> None:
    ln2 = math.log(2)
    assert loss_flat_warning([ln2] * 3, max_steps=20) is None  # still warming up
    warning = loss_flat_warning([ln2, ln2 + 1e-4, ln2 - 1e-4, ln2, ln2], max_steps=20)
    assert warning and warning.startswith("loss flat at ln 2")
    assert "learning rate too low or labels inconsistent" in warning
    assert loss_flat_warning([ln2, 0.6, 0.5, 0.4, 0.3], max_steps=20) is None  # it learns
    assert "flat at 3.2" in (loss_flat_warning([3.2] * 12, max_steps=None) or "")
    assert loss_flat_warning([3.2] * 6, max_steps=None) is None  # unknown length: 10 steps first


def test_run_page_and_api_show_the_warning_and_no_evaluation(
    client, factory, session, sft_snapshot, policy_dir
) -> None:
    admin = factory.user("admin")
    created = client.post(
        "/api/v1/runs",
        json={"kind": "sft", "snapshot_id": sft_snapshot.id, "model": policy_dir, "config": {}},
        headers=admin.headers,
    ).json()
    run = service.get_run(session=session, run_id=created["id"])
    rows = [{"step": s, "loss": 0.6931 + (s % 2) * 1e-4} for s in range(1, 13)]
    worker_steps.record_metrics(session=session, run=run, rows=rows, offset=0)
    got = client.get(f"/api/v1/runs/{run.id}", headers=admin.headers).json()
    assert got["warnings"] and got["warnings"][0].startswith("loss flat at ln 2")

    worker_steps.claim(session=session, run=run, worker="w1")
    worker_steps.finish_run(session=session, run=run, status="failed", error="x")
    page = client.get(f"/admin/runs/{run.id}", headers=admin.headers).text
    assert "loss flat at ln 2" in page
    assert re.search(r'id="evaluation">\s*none: the run ended before its evaluation', page)


def test_start_form_suggests_settings_by_kind_and_model_size(
    client, factory, session, tiny_models
) -> None:
    admin = factory.user("admin")
    registry.register_model(
        session=session, name="toy-encoder", kind="reward", path=str(tiny_models["encoder"])
    )
    session.commit()
    page = client.get("/admin/runs/new?model=toy-encoder", headers=admin.headers).text

    blob = re.search(r'id="run-suggestions" type="application/json">(.*?)</script>', page, re.S)
    suggestions = json.loads(blob.group(1))
    assert suggestions["toy-encoder"]["rm"]["learning_rate"] == 1e-3  # a toy learns at this
    assert suggestions[""]["rm"]["learning_rate"] == 3e-5  # an unknown (hub) model: pretrained
    # the form opens on kind sft with the toy model's suggestion filled in
    assert re.search(r'name="learning_rate" data-field="learning_rate" value="0.001"', page)


def test_a_snapshot_without_test_rows_is_not_evaluated_on_a_slice_of_train(
    factory, session, tmp_path, artifacts, policy_dir
) -> None:
    from app.datasets import service as datasets_service
    from app.datasets.schemas import SnapshotCreate
    from app.runs.worker import Worker
    from tests.runs.conftest import label_all

    project = factory.project(kind="demonstration", k=1)
    factory.items(project, [{"id": f"d{i}", "prompt": f"p{i}"} for i in range(6)], tmp_path)
    label_all(session, project, factory.user(), lambda t: {"demonstration": "hi"})
    snapshot, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="sft", split=1.0)
    )
    assert snapshot.test_rows == 0
    run = service.create_run(
        session=session, kind="sft", snapshot_id=snapshot.id, model=policy_dir, config={}
    )
    session.commit()
    config = json.loads((Worker()._prepare(session, run) / "config.json").read_text())
    assert config["eval_fraction"] == 0.0 and "eval_file" not in config
