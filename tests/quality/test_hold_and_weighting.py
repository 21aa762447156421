"""Auto-hold stops tasks for a labeler who fails the gold items, reinstating restores them;
reliability weighting makes a better consensus when a third of the labelers click randomly."""

import json
from statistics import fmean

from app.aggregation.consensus import kendall_tau
from app.datasets import service as datasets
from app.datasets.schemas import SnapshotCreate
from app.labeling import service as labeling
from app.quality import service as quality
from tests.quality import sim


def test_auto_hold_stops_tasks_and_reinstating_restores_them(client, factory, session, tmp_path):  # type: ignore[no-untyped-def]
    admin = factory.user("admin")
    project = factory.project(k=4, overlap=2, gold_rate=0.5, auto_hold=True, hold_after_gold=3)
    factory.items(project, sim.items(40, gold=12), tmp_path)
    (bad, _), (good, _) = crew = sim.crew(session, ["contrarian", "careful"])
    sim.work(session, project, crew, seed=6)

    progress = labeling.progress(session=session, project=project, user=bad)
    assert progress.held and "checked items" in progress.held and progress.available == 0
    assert labeling.next_task(session=session, project=project, user=bad) is None
    assert labeling.progress(session=session, project=project, user=good).held is None
    assert labeling.next_task(session=session, project=project, user=good) is None  # all done
    report = {
        r.user_id: r
        for r in quality.project_quality(session=session, project=project, rounds=0).labelers
    }
    assert report[bad.id].held and "low-gold-accuracy" in report[bad.id].flags
    assert report[bad.id].gold_seen >= 3 and report[bad.id].gold_accuracy == 0.0
    assert not report[good.id].held and report[good.id].flags == []
    done_by_bad = report[bad.id].labels + report[bad.id].gold_seen
    assert done_by_bad < 20  # held early: the careful labeler did the rest

    bad.headers = {"Authorization": "Bearer " + _token(session, bad)}
    home = client.get("/", headers=bad.headers)
    assert "Paused in this project" in home.text and "checked items" in home.text

    url = f"/api/v1/projects/{project.id}/quality/labelers/{bad.id}/reinstate"
    assert client.post(url, headers=labeler_headers(factory)).status_code == 403
    assert client.post(url, headers=admin.headers).json()["reinstated"] is True
    session.commit()
    assert labeling.progress(session=session, project=project, user=bad).held is None
    assert labeling.next_task(session=session, project=project, user=bad) is not None


def _token(session, user):  # type: ignore[no-untyped-def]
    from app.auth import service

    _, token = service.create_token(session=session, user=user)
    session.commit()
    return token


def labeler_headers(factory):  # type: ignore[no-untyped-def]
    return factory.user("labeler").headers


def _tau(path, pos_of_text):  # type: ignore[no-untyped-def]
    taus = []
    for line in path.read_text().splitlines():
        ranked = [pos_of_text[t] for t in json.loads(line)["responses"]]
        taus.append(kendall_tau(ranked, sorted(ranked)))
    return fmean(taus)


def test_reliability_weighting_beats_plain_consensus_with_a_third_random(
    factory, session, tmp_path, artifacts
):  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=3, gold_rate=0)
    factory.items(project, sim.items(45), tmp_path)
    crew = sim.crew(session, ["careful"] * 4 + ["random"] * 2)
    sim.work(session, project, crew, seed=7, shuffle=True)
    quality_of = {b: [] for b in ("careful", "random")}
    weights = quality.labeler_weights(session=session, project=project)
    for user, behaviour in crew:
        quality_of[behaviour].append(weights[user.id])
    assert max(quality_of["random"]) < min(quality_of["careful"])

    pos_of_text = {f"answer {i}.{j}": j for i in range(45) for j in range(4)}
    plain, _ = datasets.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="rankings", split=1.0)
    )
    weighted, created = datasets.create_snapshot(
        session=session,
        project=project,
        data=SnapshotCreate(kind="rankings", split=1.0, weighting="reliability"),
    )
    assert created and weighted.params["weighting"] == "reliability"
    assert weighted.params["weights"] == {str(k): v for k, v in sorted(weights.items())}
    assert weighted.params["alpha"] is not None and weighted.params["excluded"] == []
    files = datasets.snapshot_files(snapshot=weighted)
    plain_tau = _tau(datasets.snapshot_files(snapshot=plain)["train.jsonl"], pos_of_text)
    weighted_tau = _tau(files["train.jsonl"], pos_of_text)
    # Response order comes from the database's random(): the margin varies, the sign must not.
    assert weighted_tau > plain_tau, (plain_tau, weighted_tau)
    card = files["README.md"].read_text()
    assert "reliability" in card and "Krippendorff" in card and crew[0][0].email in card
    again, created = datasets.create_snapshot(
        session=session,
        project=project,
        data=SnapshotCreate(kind="rankings", split=1.0, weighting="reliability"),
    )
    assert not created and again.id == weighted.id  # same data, same weights: no duplicate


def test_weighting_needs_a_consensus_and_is_offered_by_api_and_cli(
    client, factory, session, tmp_path, artifacts
):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    from app.cli import app as cli

    admin = factory.user("admin")
    project = factory.project(k=4, overlap=2, gold_rate=0)
    factory.items(project, sim.items(6), tmp_path)
    sim.work(session, project, sim.crew(session, ["careful"] * 3), seed=8)
    url = f"/api/v1/projects/{project.id}/snapshots"
    bad = client.post(
        url,
        json={"kind": "pairs", "method": "all", "weighting": "reliability"},
        headers=admin.headers,
    )
    assert bad.status_code == 422 and "weighting=reliability needs a consensus" in bad.text
    made = client.post(
        url, json={"kind": "pairs", "weighting": "reliability"}, headers=admin.headers
    )
    assert made.status_code == 201 and len(made.json()["params"]["weights"]) == 3
    card = client.get(
        f"/api/v1/snapshots/{made.json()['id']}/files/README.md", headers=admin.headers
    )
    assert card.status_code == 200 and card.text.startswith(f"# {project.name} · pairs v1")
    result = CliRunner().invoke(
        cli,
        ["snapshot", project.name, "--kind", "rankings", "--weighting", "reliability", "--json"],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["params"]["weighting"] == "reliability"
    wrong = CliRunner().invoke(
        cli, ["snapshot", project.name, "--kind", "rankings", "--weighting", "x"]
    )
    assert wrong.exit_code == 2 and "weighting" in wrong.output
