"""A labeler who reads the API to game the checks: can they tell a gold task from a real one,
or which model wrote a response in a blind round? They have nothing but their own token and the
requests the labeling page makes. Each simple rule they could try must do no better than a
balanced accuracy of 0.75 (0.5 is a coin; a rule and its opposite are both tried)."""

import json
import time
from collections import Counter
from datetime import datetime
from itertools import combinations

from sqlalchemy import select

from app.projects import generated
from app.projects.models import Prompt, Response
from tests.helpers import row_id
from tests.quality import sim

LIMIT = 0.75


def balanced_accuracy(predicted: list[bool], truth: list[bool]) -> float:
    """The better of a rule and its opposite: mean of the hit rates on both classes."""
    positives = [p for p, t in zip(predicted, truth, strict=True) if t]
    negatives = [p for p, t in zip(predicted, truth, strict=True) if not t]
    assert positives and negatives
    score = (sum(positives) / len(positives) + (1 - sum(negatives) / len(negatives))) / 2
    return max(score, 1 - score)


def middle_third(values: list[int]) -> list[bool]:
    """Whether each value ranks in the middle third of all of them (where a batch imported
    between two others would sit, if ids kept their order)."""
    order = sorted(values)
    low, high = order[len(order) // 3], order[2 * len(order) // 3]
    return [low <= v < high for v in values]


def above_median(values: list[float]) -> list[bool]:
    middle = sorted(values)[len(values) // 2]
    return [v > middle for v in values]


def test_gold_tasks_cannot_be_told_from_real_ones(client, factory, session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=1, gold_rate=0.25)
    # Real prompts imported before and after the gold items, as teams do.
    factory.items(project, sim.items(30, prefix="a"), tmp_path)
    factory.items(project, sim.items(20, prefix="g", gold=20), tmp_path)
    factory.items(project, sim.items(30, prefix="b"), tmp_path)
    gold = sim.gold_prompt_ids(session, project)
    labeler = factory.user()
    progress_url = f"/api/v1/projects/{project.id}/progress"
    next_url = f"/api/v1/projects/{project.id}/tasks/next"

    seen: list[dict] = []
    while True:
        before = client.get(progress_url, headers=labeler.headers).json()["available"]
        started = time.perf_counter()
        answer = client.get(next_url, headers=labeler.headers)
        took = time.perf_counter() - started
        asked_at = datetime.now().astimezone()
        if answer.status_code == 204:
            break
        task = answer.json()
        after = client.get(progress_url, headers=labeler.headers).json()["available"]
        seen.append(
            {
                "task": task,
                "gold": row_id("prompt", task["prompt_id"]) in gold,
                "drop": before - after,
                "took": took,
                "lease": (datetime.fromisoformat(task["expires_at"]) - asked_at).total_seconds(),
            }
        )
        ranking = [r["id"] for r in task["responses"]]
        sent = client.post(
            f"/api/v1/assignments/{task['assignment_id']}/annotations",
            json={"ranking": ranking},
            headers=labeler.headers,
        )
        assert sent.status_code == 201, sent.text

    truth = [s["gold"] for s in seen]
    assert 12 <= sum(truth) <= 28 and len(truth) - sum(truth) == 60  # every real prompt, once
    tasks = [s["task"] for s in seen]
    prompt_ids = [t["prompt_id"] for t in tasks]
    first_response = [min(r["id"] for r in t["responses"]) for t in tasks]

    def fields(task: dict) -> str:
        rest = {k: v for k, v in task.items() if k not in ("assignment_id", "prompt_id")}
        rest["responses"] = [sorted(r) for r in task["responses"]]
        rest["messages"] = [sorted(m) for m in task["messages"]]
        rest["expires_at"] = None
        return json.dumps(rest, sort_keys=True)

    usual = Counter(fields(t) for t in tasks).most_common(1)[0][0]
    rules = {
        "progress stays put when a task is leased": [s["drop"] == 0 for s in seen],
        "progress drops by more than one": [s["drop"] > 1 for s in seen],
        "prompt id below the one before": [False]
        + [b < a for a, b in zip(prompt_ids, prompt_ids[1:], strict=False)],
        "prompt id in the middle third": middle_third(prompt_ids),
        "response ids in the middle third": middle_third(first_response),
        "assignment id below the one before": [False]
        + [b["assignment_id"] < a["assignment_id"] for a, b in zip(tasks, tasks[1:], strict=False)],
        "any other field differs from the usual": [fields(t) != usual for t in tasks],
        "longer lease": above_median([s["lease"] for s in seen]),
        "slower answer": above_median([s["took"] for s in seen]),
    }
    scores = {name: balanced_accuracy(p, truth) for name, p in rules.items()}
    assert all(score <= LIMIT for score in scores.values()), scores
    assert all("gold" not in json.dumps(t).lower() for t in tasks)


def test_a_blind_round_names_no_model_by_ids_or_order(client, factory, session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=1)
    factory.items(
        project, [{"id": f"p{i}", "prompt": f"question {i}"} for i in range(24)], tmp_path
    )
    prompt_ids = list(session.scalars(select(Prompt.id).where(Prompt.project_id == project.id)))
    # As a `generate` run writes them: one model's samples for every prompt, then the other's.
    for model_id, model in ((1, "policy"), (2, "base")):
        rows = [
            {
                "prompt_id": pid,
                "text": f"a reply {i}",
                "model": model,
                "model_id": model_id,
                "sample_index": i,
                "meta": {},
            }
            for pid in prompt_ids
            for i in range(2)
        ]
        generated.store_generated(session=session, rows=rows)
        session.commit()
    model_of = dict(session.execute(select(Response.id, Response.model)).all())
    labeler = factory.user()
    url = f"/api/v1/projects/{project.id}/tasks/next"
    predicted: dict[str, list[bool]] = {"smallest two ids": [], "first two shown": []}
    truth: list[bool] = []
    pairs: list[tuple[int, bool]] = []
    while (answer := client.get(url, headers=labeler.headers)).status_code == 200:
        task = answer.json()
        assert "policy" not in answer.text and "base" not in answer.text
        assert all(set(r) == {"id", "text"} for r in task["responses"])
        ids = [r["id"] for r in task["responses"]]
        smallest = sorted(ids)[:2]
        for place, rid in enumerate(ids):
            truth.append(model_of[row_id("response", rid)] == "policy")
            predicted["smallest two ids"].append(rid in smallest)
            predicted["first two shown"].append(place < 2)
        for a, b in combinations(ids, 2):
            same = model_of[row_id("response", a)] == model_of[row_id("response", b)]
            pairs.append((abs(a - b), same))
        client.post(
            f"/api/v1/assignments/{task['assignment_id']}/skip",
            json={"reason": "testing"},
            headers=labeler.headers,
        ).raise_for_status()
    assert len(truth) == 4 * 24
    scores = {name: balanced_accuracy(p, truth) for name, p in predicted.items()}
    close = above_median([-float(distance) for distance, _ in pairs])  # nearest ids: same model?
    scores["ids close together share a model"] = balanced_accuracy(close, [s for _, s in pairs])
    assert all(score <= LIMIT for score in scores.values()), scores
