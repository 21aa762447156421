"""A model's whole lineage (page and CLI), and the runs list's summary columns."""

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from app.cli import app
from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from app.projects import service as project_service
from app.runs import registry, service, worker_steps
from app.runs.lineage import duration, headline
from app.runs.models import RunMetric
from tests.test_pages import login


def _finish(session, run, tmp_path, summary, like):  # type: ignore[no-untyped-def]
    """Succeed `run` as if the trainer wrote a model shaped like the model in `like`."""
    out = tmp_path / f"run-{run.id}" / "output"
    out.mkdir(parents=True)
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "config.json").write_text((Path(like) / "config.json").read_text())
    worker_steps.claim(session=session, run=run, worker="w1")
    run.run_dir = str(out.parent)
    run.started_at = run.created_at
    run = worker_steps.finish_run(session=session, run=run, status="succeeded", exit_code=0)
    run.finished_at = run.started_at + timedelta(seconds=75)
    session.commit()
    return registry.get_model(session=session, model_id=run.output_model_id)


def _chain(session, tmp_path, sft_snapshot, rankings_snapshot, tiny_models):  # type: ignore[no-untyped-def]
    lm, encoder = str(tiny_models["causal-lm"]), str(tiny_models["encoder"])
    registry.register_model(session=session, name="base-lm", kind="policy", path=lm)
    rm_run = service.create_run(
        session=session, kind="rm", snapshot_id=rankings_snapshot.id, model=encoder
    )
    scores = {"eval_accuracy": 0.8125, "eval_loss": 0.5}
    reward = _finish(session, rm_run, tmp_path, scores, encoder)
    sft_run = service.create_run(
        session=session, kind="sft", snapshot_id=sft_snapshot.id, model="base-lm"
    )
    policy = _finish(session, sft_run, tmp_path, {"eval_loss": 2.25}, lm)
    project = project_service.get(session=session, project_id=sft_snapshot.project_id)
    prompts, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="prompts")
    )
    ppo_run = service.create_run(
        session=session,
        kind="ppo",
        snapshot_id=prompts.id,
        model=policy.name,
        reward_model=reward.name,
        config={"max_steps": 3},
    )
    session.add(RunMetric(run_id=ppo_run.id, step=3, values={"score": 1.5, "kl": 0.25}))
    session.commit()
    final = _finish(session, ppo_run, tmp_path, {"steps": 3}, lm)
    return final, policy, reward, prompts, encoder


def test_lineage_is_the_whole_chain_on_the_page_and_in_the_cli(
    client, factory, session, tmp_path, sft_snapshot, rankings_snapshot, tiny_models
) -> None:
    final, policy, reward, prompts, encoder = _chain(
        session, tmp_path, sft_snapshot, rankings_snapshot, tiny_models
    )
    shown = CliRunner().invoke(app, ["models", "show", final.name, "--json"])
    assert shown.exit_code == 0, shown.output
    tree = json.loads(shown.stdout)
    run = tree["run"]
    assert (run["kind"], run["config"]) == ("ppo", {"max_steps": 3})
    assert (run["snapshot"]["id"], run["snapshot"]["kind"]) == (prompts.id, "prompts")
    assert run["snapshot"]["content_hash"] == prompts.content_hash
    assert run["snapshot"]["projects"][0]["id"] == sft_snapshot.project_id
    sft = run["base_model"]
    assert sft["model"]["name"] == policy.name
    assert sft["run"]["snapshot"]["id"] == sft_snapshot.id
    assert sft["run"]["base_model"]["model"]["name"] == "base-lm"
    assert sft["run"]["base_model"]["run"] is None  # registered by hand
    rm = run["reward_model"]
    assert rm["model"]["name"] == reward.name
    assert rm["run"]["snapshot"]["id"] == rankings_snapshot.id
    assert rm["run"]["base_model"] == {"path": encoder}
    text = CliRunner().invoke(app, ["models", "show", final.name])
    assert "reward model:" in text.stdout and "base-lm" in text.stdout
    missing = CliRunner().invoke(app, ["models", "show", "nope"])
    assert missing.exit_code == 2 and "no registered model" in missing.output

    login(client, factory.user("admin"))
    page = client.get(f"/admin/models/{final.id}").text
    for link in (
        f'href="/admin/runs/{final.run_id}"',
        f'href="/admin/models/{policy.id}"',
        f'href="/admin/models/{reward.id}"',
        f'href="/admin/runs/{reward.run_id}"',
        f"/snapshots#snapshot-{prompts.id}",
        f"/snapshots#snapshot-{rankings_snapshot.id}",
        f'href="/admin/projects/{sft_snapshot.project_id}"',
        f'href="/admin/projects/{rankings_snapshot.project_id}"',
    ):
        assert link in page, link

    runs = client.get("/admin/runs").text
    assert "eval_accuracy <strong>0.8125</strong>" in runs
    assert "eval_loss <strong>2.25</strong>" in runs
    assert "score <strong>1.5</strong> · kl <strong>0.25</strong>" in runs
    assert "1m 15s" in runs
    assert f'href="/admin/models/{final.id}">{final.name}</a>' in runs
    project = project_service.get(session=session, project_id=sft_snapshot.project_id)
    assert f">{project.name}</a>" in runs


def test_headline_and_duration_formats() -> None:
    assert headline("rm", {}, {"loss": 0.7}) == [("loss", 0.7)]
    assert headline("sft", {"eval_loss": 1.0}, {"loss": 3.0}) == [("eval_loss", 1.0)]
    assert headline("ppo", {}, {}) == []

    class Run:
        started_at = None
        finished_at = None

    assert duration(Run()) == "–"  # type: ignore[arg-type]
