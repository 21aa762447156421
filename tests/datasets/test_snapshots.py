"""Dataset snapshots: content, determinism, lineage, split stability, Parquet = JSONL."""

import json

import pyarrow.parquet as pq
import pytest

from app.aggregation import service as aggregation
from app.datasets import service
from app.datasets.models import Snapshot
from app.datasets.schemas import SnapshotCreate
from tests.helpers import annotate, prompts_of, ranking_items


@pytest.fixture(autouse=True)
def artifacts(tmp_path, monkeypatch, engine):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def snap(session, project, **params):  # type: ignore[no-untyped-def]
    return service.create_snapshot(session=session, project=project, data=SnapshotCreate(**params))


def read_jsonl(snapshot: Snapshot, split: str) -> list[dict]:
    path = service.snapshot_files(snapshot=snapshot)[f"{split}.jsonl"]
    return [json.loads(line) for line in path.read_text().splitlines()]


def read_parquet(snapshot: Snapshot, split: str) -> list[dict]:
    files = service.snapshot_files(snapshot=snapshot)
    json_columns = json.loads(files["manifest.json"].read_text())["parquet_json_columns"]
    rows = []
    for row in pq.read_table(files[f"{split}.parquet"]).to_pylist():
        row = {k: v for k, v in row.items() if v is not None}
        rows.append({k: json.loads(v) if k in json_columns else v for k, v in row.items()})
    return rows


@pytest.fixture
def ranked(session, factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=3)
    factory.items(project, ranking_items(20, k=3), tmp_path)
    users = [factory.user(), factory.user()]
    for pid, rids in prompts_of(session, project):
        for user in users:
            annotate(session, project, pid, user, {"ranking": rids})  # best = position 0
    return project, users


def test_rankings_and_pairs_from_the_consensus(session, ranked) -> None:
    project, _ = ranked
    rankings, created = snap(session, project, kind="rankings", split=1.0)
    assert created and rankings.train_rows == 20 and rankings.test_rows == 0
    rows = read_jsonl(rankings, "train")
    assert rows[0] == {
        "prompt": "question 0",
        "responses": ["answer 0.0", "answer 0.1", "answer 0.2"],
        "source": "human",
    }
    pairs, _ = snap(session, project, kind="pairs", split=1.0)
    first = read_jsonl(pairs, "train")[:3]
    assert first[0] == {"prompt": "question 0", "chosen": "answer 0.0", "rejected": "answer 0.1",
                        "margin": 1.0, "source": "human"}  # fmt: skip
    assert pairs.train_rows == 20 * 3
    every, _ = snap(session, project, kind="rankings", method="all", split=1.0)
    assert every.train_rows == 40  # one row per annotation


def test_same_data_same_hash_no_new_row_then_new_version(session, factory, ranked) -> None:
    project, users = ranked
    first, created = snap(session, project, kind="rankings", split=0.5)
    assert created and first.version == 1 and first.previous_id is None
    again, created = snap(session, project, kind="rankings", split=0.5)
    assert not created and again.id == first.id
    assert session.query(Snapshot).count() == 1
    other_params, created = snap(session, project, kind="rankings", split=0.5, method="borda")
    assert created and other_params.version == 2  # other parameters: a new version

    back, created = snap(session, project, kind="rankings", split=0.5)
    assert not created and back.id == first.id  # the newest with these parameters

    pid, rids = prompts_of(session, project)[0]
    for _ in range(3):  # outvote the two labelers on one prompt
        annotate(session, project, pid, factory.user(), {"ranking": list(reversed(rids))})
    newer, created = snap(session, project, kind="rankings", split=0.5)
    assert created and newer.version == 3 and newer.previous_id == other_params.id
    assert newer.content_hash != first.content_hash
    assert newer.train_rows + newer.test_rows == 20
    assert service.snapshot_files(snapshot=first)["train.jsonl"].is_file()  # kept, immutable


def test_split_is_stable_across_versions(session, factory, ranked, tmp_path) -> None:
    project, users = ranked
    v1, _ = snap(session, project, kind="prompts", split=0.5)
    factory.items(project, ranking_items(40, k=3, prefix="more"), tmp_path)
    v2, _ = snap(session, project, kind="prompts", split=0.5)
    assert v2.version == 2 and v2.train_rows + v2.test_rows == 60
    for split in ("train", "test"):
        old = {r["prompt"] for r in read_jsonl(v1, split)}
        new = {r["prompt"] for r in read_jsonl(v2, split)}
        assert old and old <= new
    assert 10 < v2.train_rows < 50


def test_excluded_labeler_is_not_in_the_snapshot(session, factory, ranked) -> None:
    project, users = ranked
    troll = factory.user()
    for pid, rids in prompts_of(session, project):
        for _ in range(3):  # outvotes the two honest labelers
            annotate(session, project, pid, troll, {"ranking": list(reversed(rids))})
    flipped, _ = snap(session, project, kind="rankings", split=1.0)
    assert read_jsonl(flipped, "train")[0]["responses"][0] == "answer 0.2"
    aggregation.exclude_labeler(session=session, user_id=troll.id, project_id=project.id)
    session.commit()
    honest, created = snap(session, project, kind="rankings", split=1.0)
    assert created and read_jsonl(honest, "train")[0]["responses"][0] == "answer 0.0"


def test_parquet_has_the_same_rows_as_jsonl(session, factory, tmp_path, ranked) -> None:
    project, _ = ranked
    for params in ({"kind": "pairs"}, {"kind": "rankings"}, {"kind": "prompts"}):
        made, _ = snap(session, project, split=0.7, **params)
        for split in ("train", "test"):
            assert read_parquet(made, split) == read_jsonl(made, split)

    demo = factory.project(kind="demonstration", k=1)
    chat = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "and now?"}]  # fmt: skip
    factory.items(demo, [{"id": "a", "prompt": "plain"}, {"id": "b", "messages": chat}], tmp_path)
    (a, _), (b, _) = prompts_of(session, demo)
    user = factory.user()
    annotate(session, demo, a, user, {"demonstration": "answer"}, kind="demonstration")
    annotate(session, demo, b, user, {"demonstration": "fine"}, kind="demonstration")
    turns = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}]
    annotate(session, demo, a, user, {"demonstration": turns}, kind="demonstration")
    sft, _ = snap(session, demo, kind="sft", split=1.0)
    rows = read_jsonl(sft, "train")
    assert rows == [
        {"prompt": "plain", "completion": "answer", "source": "human"},
        {"messages": [{"role": "user", "content": "plain"}, *turns], "source": "human"},
        {
            "prompt": chat,
            "completion": [{"role": "assistant", "content": "fine"}],
            "source": "human",
        },
    ]
    assert read_parquet(sft, "train") == rows  # mixed prompt types: a JSON column
    manifest = json.loads(service.snapshot_files(snapshot=sft)["manifest.json"].read_text())
    assert manifest["parquet_json_columns"] == ["prompt", "completion"]
    assert manifest["rows"]["train"] == 3


def test_sft_with_top_ranked_and_ratings(session, factory, ranked, tmp_path) -> None:
    project, _ = ranked
    sft, _ = snap(session, project, kind="sft", include_top_ranked=True, split=1.0)
    assert read_jsonl(sft, "train")[0] == {
        "prompt": "question 0",
        "completion": "answer 0.0",
        "source": "human",
    }
    assert sft.params == {"kind": "sft", "split": 1.0, "include_top_ranked": True,
                          "method": "ranked-pairs", "sources": "human"}  # fmt: skip

    rating = factory.project(kind="rating", k=2, rating_scale="0-5")
    factory.items(rating, ranking_items(2, k=2), tmp_path)
    harsh, kind = factory.user(), factory.user()
    for pid, (x, y) in prompts_of(session, rating):
        annotate(session, rating, pid, harsh, {"scores": {str(x): 1, str(y): 0}}, kind="rating")
        annotate(session, rating, pid, kind, {"scores": {str(x): 5, str(y): 3}}, kind="rating")
    plain, _ = snap(session, rating, kind="ratings", split=1.0)
    assert read_jsonl(plain, "train")[:2] == [
        {"prompt": "question 0", "response": "answer 0.0", "score": 3.0, "scores": {"score": 3.0},
         "source": "human"},
        {"prompt": "question 0", "response": "answer 0.1", "score": 1.5, "scores": {"score": 1.5},
         "source": "human"},
    ]  # fmt: skip
    normalized, created = snap(session, rating, kind="ratings", split=1.0, normalize=True)
    assert created and normalized.version == 2
    scores = [r["score"] for r in read_jsonl(normalized, "train")]
    assert scores == [pytest.approx(1.0), pytest.approx(-1.0)] * 2  # both labelers agree


def test_api_and_pages(client, session, factory, ranked) -> None:
    project, users = ranked
    admin = factory.user("admin")
    url = f"/api/v1/projects/{project.id}/snapshots"
    made = client.post(url, json={"kind": "pairs"}, headers=admin.headers)
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["created"] and body["version"] == 1 and body["created_by_id"] == admin.id
    same = client.post(url, json={"kind": "pairs"}, headers=admin.headers)
    assert same.status_code == 200 and not same.json()["created"]
    assert same.json()["id"] == body["id"]
    bad = client.post(url, json={"kind": "nope"}, headers=admin.headers)
    assert bad.status_code == 422
    assert [s["id"] for s in client.get(url, headers=admin.headers).json()] == [body["id"]]
    one = client.get(f"/api/v1/snapshots/{body['id']}", headers=admin.headers).json()
    assert one["content_hash"] == body["content_hash"]
    train = client.get(f"/api/v1/snapshots/{body['id']}/files/train.jsonl", headers=admin.headers)
    assert train.status_code == 200 and len(train.text.splitlines()) == body["train_rows"]
    nope = client.get(f"/api/v1/snapshots/{body['id']}/files/..%2Fx", headers=admin.headers)
    assert nope.status_code == 404
    page = client.get(f"/admin/projects/{project.id}/snapshots", headers=admin.headers)
    assert page.status_code == 200 and "train.parquet" in page.text
    labeler = client.get(url, headers=users[0].headers)
    assert labeler.status_code == 403
