"""Exports in the dataset formats, one row per annotation."""

import json

from tests.helpers import ranking_items


def _label(client, project, labeler, body_for):  # type: ignore[no-untyped-def]
    while (
        r := client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=labeler.headers)
    ).status_code == 200:
        task = r.json()
        client.post(
            f"/api/v1/assignments/{task['assignment_id']}/annotations",
            json=body_for(task),
            headers=labeler.headers,
        ).raise_for_status()


def _export(client, project, admin, kind):  # type: ignore[no-untyped-def]
    r = client.get(f"/api/v1/projects/{project.id}/export?kind={kind}", headers=admin.headers)
    assert r.status_code == 200, r.text
    return [json.loads(line) for line in r.text.splitlines()]


def test_rankings_and_pairs(client, factory, tmp_path) -> None:
    admin, labeler = factory.user("admin"), factory.user()
    project = factory.project(kind="ranking", k=3)
    factory.items(project, ranking_items(2, k=3), tmp_path)

    def by_text(task):  # type: ignore[no-untyped-def]
        ordered = sorted(task["responses"], key=lambda r: r["text"])
        return {"ranking": [r["id"] for r in ordered]}

    _label(client, project, labeler, by_text)
    rankings = _export(client, project, admin, "rankings")
    assert rankings == [
        {
            "prompt": f"question {i}",
            "responses": [f"answer {i}.{j}" for j in range(3)],
            "source": "human",
        }
        for i in range(2)
    ]
    pairs = _export(client, project, admin, "pairs")
    assert len(pairs) == 2 * 3
    assert {
        "prompt": "question 0",
        "chosen": "answer 0.0",
        "rejected": "answer 0.2",
        "source": "human",
    } in pairs


def test_ratings_sft_and_prompts(client, factory, tmp_path) -> None:
    admin, labeler = factory.user("admin"), factory.user()
    rating = factory.project(kind="rating", k=2, rating_scale="0-5")
    factory.items(rating, ranking_items(1, k=2), tmp_path)
    _label(client, rating, labeler, lambda t: {"scores": {str(r["id"]): 4 for r in t["responses"]}})
    assert sorted(r["response"] for r in _export(client, rating, admin, "ratings")) == [
        "answer 0.0",
        "answer 0.1",
    ]
    assert {r["score"] for r in _export(client, rating, admin, "ratings")} == {4}

    demo = factory.project(kind="demonstration", k=1)
    multi = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "bye"},
    ]
    factory.items(demo, [{"id": "a", "prompt": "Say hi"}, {"id": "b", "messages": multi}], tmp_path)

    def write(task):  # type: ignore[no-untyped-def]
        return {
            "demonstration": "Hi!"
            if len(task["messages"]) == 1
            else [{"role": "assistant", "content": "Goodbye!"}]
        }

    _label(client, demo, labeler, write)
    sft = _export(client, demo, admin, "sft")
    assert {"prompt": "Say hi", "completion": "Hi!", "source": "human"} in sft
    said = multi + [{"role": "assistant", "content": "Goodbye!"}]
    assert {"messages": said, "source": "human"} in sft
    assert _export(client, demo, admin, "prompts") == [{"prompt": "Say hi"}, {"prompt": multi}]


def test_unknown_kind_is_a_4xx(client, factory) -> None:
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    r = client.get(f"/api/v1/projects/{project.id}/export?kind=everything", headers=admin.headers)
    assert r.status_code == 422


def test_with_labelers_names_who_labeled_each_row_and_when(client, factory, tmp_path) -> None:
    admin, ada, bob = factory.user("admin"), factory.user(), factory.user()
    project = factory.project(kind="ranking", k=2, overlap=2)
    factory.items(project, ranking_items(1, k=2), tmp_path)
    first = lambda t: {"ranking": [r["id"] for r in t["responses"]]}  # noqa: E731
    _label(client, project, ada, first)
    _label(client, project, bob, first)
    plain = _export(client, project, admin, "rankings")
    assert all("labeler" not in row and "annotated_at" not in row for row in plain)
    url = f"/api/v1/projects/{project.id}/export?kind=pairs&with_labelers=true"
    rows = [json.loads(line) for line in client.get(url, headers=admin.headers).text.splitlines()]
    assert [row["labeler"] for row in rows] == [ada.email, bob.email]
    assert all(row["annotated_at"].startswith("20") for row in rows)
