"""Gold items: imported with their answer, served at the project's rate, once per labeler,
outside overlap, never in snapshots or exports; labelers cannot tell them apart."""

import json

import pytest

from app.datasets import export as exporter
from app.datasets import service as datasets
from app.datasets.schemas import SnapshotCreate
from app.errors import Invalid
from app.labeling import service as labeling
from tests.helpers import row_id
from tests.quality import sim


def test_import_checks_the_gold_answer_against_the_responses(factory, tmp_path):  # type: ignore[no-untyped-def]
    ranking, rating = factory.project(k=3), factory.project(kind="rating", k=3)
    line = sim.items(1, k=3)[0]
    for gold, project, message in (
        ({"ranking": [0, 0, 1]}, ranking, "gold.ranking must list each response index 0…2 once"),
        ({"ranking": [0, 1]}, ranking, "gold.ranking must list each response index 0…2 once"),
        ({"scores": [1, 2]}, rating, "gold.scores must be a list of 3 numbers"),
        ({"scores": [1, 2, 3]}, ranking, 'gold of a ranking project must be {"ranking": [...]}'),
        ("best", ranking, "gold must be"),
    ):
        with pytest.raises(Invalid, match="line 2") as caught:
            factory.items(
                project, [sim.items(1, k=3, prefix="ok")[0], {**line, "gold": gold}], tmp_path
            )
        assert message in str(caught.value)
    report = factory.items(ranking, [{**line, "gold": {"ranking": [2, 0, 1]}}], tmp_path)
    assert report.imported == 1


def test_gold_is_served_at_the_rate_once_per_labeler_outside_overlap(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=1, gold_rate=0.25)
    factory.items(project, sim.items(48, gold=8), tmp_path)
    gold = sim.gold_prompt_ids(session, project)
    crew = sim.crew(session, ["careful", "careful"])
    served = sim.work(session, project, crew, seed=4)
    for user, _ in crew:
        mine = served[user.id]
        got = [p for p in mine if p in gold]
        assert len(got) == len(set(got)), "a gold item came twice to one labeler"
        # after n tasks a labeler holds rate·n gold ones, never a whole task more or less
        assert abs(len(got) - 0.25 * len(mine)) <= 1.25, (len(got), len(mine))
        assert len(got) >= 4
    both = [set(p for p in served[u.id] if p in gold) for u, _ in crew]
    assert both[0] & both[1], "gold items count against overlap"
    real = [p for u, _ in crew for p in served[u.id] if p not in gold]
    assert len(real) == len(set(real)) == 40  # overlap 1 on the real prompts
    # no gold item once the real work is gone, although unseen gold items are left
    assert all(len(b) < 8 for b in both)
    for user, _ in crew:
        assert labeling.next_task(session=session, project=project, user=user) is None


def test_gold_never_reaches_snapshots_exports_or_stats(factory, session, tmp_path, artifacts):  # type: ignore[no-untyped-def]
    from app.projects import service as projects

    project = factory.project(k=4, overlap=2, gold_rate=0.5)
    factory.items(project, sim.items(12, gold=6), tmp_path)
    crew = sim.crew(session, ["careful", "careful", "careful"])
    served = sim.work(session, project, crew, seed=5)
    gold = sim.gold_prompt_ids(session, project)
    assert any(p in gold for ps in served.values() for p in ps)
    gold_texts = {f"question p{i}" for i in range(6)}
    for kind, method in (
        ("rankings", "ranked-pairs"),
        ("rankings", "all"),
        ("pairs", "all"),
        ("prompts", "all"),
    ):
        snapshot, _ = datasets.create_snapshot(
            session=session,
            project=project,
            data=SnapshotCreate(kind=kind, method=method, split=1.0),
        )
        rows = datasets.snapshot_files(snapshot=snapshot)["train.jsonl"].read_text().splitlines()
        prompts = {json.loads(r)["prompt"] for r in rows}
        assert prompts and not prompts & gold_texts, kind
        exported = {
            json.loads(line)["prompt"]
            for block in exporter.jsonl(session=session, project=project, kind=kind)
            for line in block.splitlines()
        }
        assert exported and not exported & gold_texts, kind
    stats = projects.stats(session=session, project=project)
    assert stats.prompts == 6 and stats.labels_done == 12


def test_a_gold_task_looks_like_any_other_task(client, factory, session, tmp_path):  # type: ignore[no-untyped-def]
    factory.user("admin")
    labeler = factory.user("labeler")
    project = factory.project(k=4, overlap=1, gold_rate=0.5)
    factory.items(project, sim.items(16, gold=8), tmp_path)
    gold = sim.gold_prompt_ids(session, project)
    pos = sim.positions(session, project)
    shapes, gold_orders = {True: set(), False: set()}, []
    url = f"/api/v1/projects/{project.id}/tasks/next"
    while (task := client.get(url, headers=labeler.headers)).status_code == 200:
        body = task.json()
        is_gold = row_id("prompt", body["prompt_id"]) in gold
        shapes[is_gold].add(tuple(sorted(body)))
        assert "gold" not in json.dumps(body).lower()
        if is_gold:
            gold_orders.append([pos[row_id("response", r["id"])] for r in body["responses"]])
        ranking = [r["id"] for r in body["responses"]]
        client.post(
            f"/api/v1/assignments/{body['assignment_id']}/annotations",
            json={"ranking": ranking},
            headers=labeler.headers,
        ).raise_for_status()
        progress = client.get(f"/api/v1/projects/{project.id}/progress", headers=labeler.headers)
        assert "gold" not in progress.text.lower()
    assert len(gold_orders) >= 4 and shapes[True] == shapes[False]
    assert any(order != [0, 1, 2, 3] for order in gold_orders)  # shown in random order
    home = client.get("/", headers=labeler.headers)
    assert "gold" not in home.text.lower()
