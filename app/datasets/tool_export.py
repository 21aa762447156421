"""A project's prompts and labels in another tool's import format, so nobody is locked in:
Label Studio tasks with annotations, Argilla 2.x records with responses (`rlhf export --kind
labelstudio|argilla`). Both are one JSON array, written a prompt at a time.

Label Studio: a ranking project's tasks are pairwise comparisons (`prompt`, `answer1`,
`answer2`) when every label of the task ranks two responses without a tie, otherwise ranker
tasks over a list of `items` (a ranking with ties in buckets `rank_1`, `rank_2`, …); a rating
project's scores are `rating` results (👎/👍 as 1/2 of maxRating 2, 0–5 as 1–6 of maxRating 6:
`label_config` writes the matching config); a demonstration is a `textarea` result. Argilla: a
ranking is a RankingQuestion `ranking` over the fields `response1…` (2.x option names best
first; with ties, 1.x `[{"rank", "value"}]`); a score a RatingQuestion `rating`; a
demonstration a TextQuestion `demonstration`. Answers to per-task questions (choice, text) go
along under their names. A skip is a skip there too: a Label Studio annotation `was_cancelled`
with no result, an Argilla response `discarded` to the main question (the importers read them
back as skips; the reason stays here). Each label keeps its labeler: a source annotator under
its id in that tool (`labelstudio:7` → 7), anyone else under their user id, an AI judge's
label too (its judge annotator's id, `judge:<model>`). Neither tool has a field for a label's
source, so where labels came from is said where each allows: a Label Studio task's `meta`
lists its AI judges' annotations (`ai_annotations`: their ids), an Argilla response has
only its user. Excluded labelers' labels and skips are left out, as in every export.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app import jsontext
from app.aggregation import service as aggregation
from app.auth.models import User
from app.errors import Invalid
from app.labeling import labels as labeling
from app.labeling import ranks
from app.labeling.labels import Label, PromptLabels, Skip
from app.projects.kinds import ProjectKind, RatingScale
from app.projects.models import Project

TOOLS = ("labelstudio", "argilla")
KIND = {ProjectKind.ranking: "ranking", ProjectKind.rating: "rating"}
PER_TASK = {"single_choice", "text"}


def _prompt_text(messages: list[dict[str, Any]]) -> str | list[dict[str, Any]]:
    """A one-message prompt as its text, a conversation as its messages."""
    return messages[0]["content"] if len(messages) == 1 else messages


def _labeler(user_id: int | None, names: dict[int, str], tool: str) -> Any:
    name = names.get(user_id or 0, "")
    prefix = f"{tool}:"
    if name.startswith(prefix):
        ref = name.removeprefix(prefix)
        return int(ref) if tool == "labelstudio" and ref.isdigit() else ref
    return user_id if tool == "labelstudio" else str(user_id)


def _answers(label: Label, questions: list[dict[str, Any]]) -> dict[str, Any]:
    per_task = {q["name"] for q in questions if q["type"] in PER_TASK}
    given = label.payload.get("answers") or {}
    return {name: value for name, value in given.items() if name in per_task}


def _score(value: Any, scale: str) -> int:
    return (2 if value in (1, True) else 1) if scale == RatingScale.thumbs else int(value) + 1


def label_config(project: Project) -> str:
    """A Label Studio labeling config for a rating or demonstration project's tasks."""
    if project.kind == ProjectKind.rating:
        top = 2 if project.rating_scale == RatingScale.thumbs else 6
        control = f'<Rating name="rating" toName="answer1" maxRating="{top}"/>'
        shown = '<Text name="answer1" value="$answer1"/>'
    else:
        control, shown = '<TextArea name="answer" toName="prompt"/>', ""
    return f'<View><Text name="prompt" value="$prompt"/>{shown}{control}</View>\n'


def _labelstudio_task(
    prompt: PromptLabels, project: Project, names: dict[int, str], skips: list[Skip]
) -> dict[str, Any]:
    rids = list(prompt.responses)
    field_of = {rid: f"answer{i + 1}" for i, rid in enumerate(rids)}
    data: dict[str, Any] = {"prompt": _prompt_text(prompt.messages)}
    pairwise = project.kind == ProjectKind.ranking and len(rids) == 2
    pairwise = pairwise and not any(ranks.has_ties(x.payload["ranking"]) for x in prompt.labels)
    if project.kind == ProjectKind.ranking and not pairwise:
        data["items"] = [
            {"id": str(rid), "title": model or "", "body": text}
            for rid, (text, model) in prompt.responses.items()
        ]
    elif project.kind != ProjectKind.demonstration:
        data.update({field_of[rid]: text for rid, (text, _) in prompt.responses.items()})
    annotations = []
    for label in prompt.labels:
        results: list[dict[str, Any]] = []
        payload = label.payload
        if pairwise:
            left = ranks.order(payload["ranking"])[0] == rids[0]
            value: dict[str, Any] = {"selected": "left" if left else "right"}
            results.append({"from_name": "pw", "to_name": "pw", "type": "pairwise", "value": value})
        elif "ranking" in payload:
            groups = ranks.groups(payload["ranking"])
            if ranks.has_ties(payload["ranking"]):
                ranked = {f"rank_{i + 1}": [str(r) for r in g] for i, g in enumerate(groups)}
                ranked["answers"] = []
            else:
                ranked = {"answers": [str(r) for g in groups for r in g]}
            value = {"ranker": ranked}
            results.append(
                {"from_name": "rank", "to_name": "answers", "type": "ranker", "value": value}
            )
        elif "scores" in payload:
            for rid, score in payload["scores"].items():
                rating = {"rating": _score(score, project.rating_scale)}
                to = field_of[int(rid)]
                results.append(
                    {"from_name": "rating", "to_name": to, "type": "rating", "value": rating}
                )
        elif "demonstration" in payload:
            text = payload["demonstration"]
            if not isinstance(text, str):
                text = "\n\n".join(f"{t['role']}: {t['content']}" for t in text)
            value = {"text": [text]}
            results.append(
                {"from_name": "answer", "to_name": "prompt", "type": "textarea", "value": value}
            )
        for name, answer in _answers(label, project.questions or []).items():
            kind, value = (
                ("textarea", {"text": [answer]})
                if isinstance(answer, str) and name not in _choices(project)
                else ("choices", {"choices": [answer]})
            )
            results.append({"from_name": name, "to_name": "prompt", "type": kind, "value": value})
        annotations.append(
            {
                "id": label.annotation_id,
                "completed_by": _labeler(label.user_id, names, "labelstudio"),
                "result": results,
                "was_cancelled": False,
                "created_at": _iso(label.created_at),
            }
        )
    meta: dict[str, Any] = {"external_id": prompt.external_id}
    if any(label.ai for label in prompt.labels):
        meta["ai_annotations"] = [label.annotation_id for label in prompt.labels if label.ai]
    for skip in skips:  # no annotation of ours: Label Studio gives it an id
        annotations.append(
            {
                "completed_by": _labeler(skip.user_id, names, "labelstudio"),
                "result": [],
                "was_cancelled": True,
                "created_at": _iso(skip.at),
            }
        )
    return {
        "id": prompt.prompt_id,
        "data": data,
        "meta": meta,
        "annotations": annotations,
        "predictions": [],
    }


def _choices(project: Project) -> set[str]:
    return {q["name"] for q in project.questions or [] if q["type"] == "single_choice"}


def _iso(stamp: Any) -> str | None:
    return stamp.isoformat() if hasattr(stamp, "isoformat") else stamp


def _argilla_record(
    prompt: PromptLabels, project: Project, names: dict[int, str], skips: list[Skip]
) -> dict[str, Any]:
    rids = list(prompt.responses)
    field_of = {rid: f"response{i + 1}" for i, rid in enumerate(rids)}
    prompt_text = _prompt_text(prompt.messages)
    fields: dict[str, Any] = {"prompt": prompt_text}
    fields.update({field_of[rid]: text for rid, (text, _) in prompt.responses.items()})
    responses: dict[str, list[dict[str, Any]]] = {}

    def respond(question: str, value: Any, label: Label) -> None:
        user = _labeler(label.user_id, names, "argilla")
        responses.setdefault(question, []).append(
            {"value": value, "user_id": user, "status": "submitted"}
        )

    for label in prompt.labels:
        payload = label.payload
        if "ranking" in payload:
            groups = ranks.groups(payload["ranking"])
            if ranks.has_ties(payload["ranking"]):
                value: Any = [
                    {"rank": i + 1, "value": field_of[r]} for i, g in enumerate(groups) for r in g
                ]
            else:
                value = [field_of[r] for g in groups for r in g]
            respond("ranking", value, label)
        elif "scores" in payload:
            for score in payload["scores"].values():
                respond("rating", _score(score, project.rating_scale), label)
        elif "demonstration" in payload:
            respond("demonstration", payload["demonstration"], label)
        for name, answer in _answers(label, project.questions or []).items():
            respond(name, answer, label)
    main = KIND.get(ProjectKind(project.kind), "demonstration")  # the main question's name
    for skip in skips:
        user = _labeler(skip.user_id, names, "argilla")
        responses.setdefault(main, []).append(
            {"value": None, "user_id": user, "status": "discarded"}
        )
    return {
        "id": prompt.external_id,
        "fields": fields,
        "metadata": {},
        "suggestions": {},
        "responses": responses,
        "vectors": {},
    }


def argilla_settings(project: Project, k: int) -> dict[str, Any]:
    """Argilla 2.x dataset settings for the exported records (`k` responses)."""
    fields = [{"name": "prompt", "settings": {"type": "text"}}]
    if project.kind != ProjectKind.demonstration:
        fields += [{"name": f"response{i + 1}", "settings": {"type": "text"}} for i in range(k)]
    if project.kind == ProjectKind.ranking:
        options = [{"value": f"response{i + 1}"} for i in range(k)]
        questions = [{"name": "ranking", "settings": {"type": "ranking", "options": options}}]
    elif project.kind == ProjectKind.rating:
        top = 2 if project.rating_scale == RatingScale.thumbs else 6
        values = [{"value": v} for v in range(1, top + 1)]
        questions = [{"name": "rating", "settings": {"type": "rating", "options": values}}]
    else:
        questions = [{"name": "demonstration", "settings": {"type": "text"}}]
    for q in project.questions or []:
        if q["type"] == "single_choice":
            options = [{"value": o} for o in q["options"]]
            settings = {"type": "label_selection", "options": options}
            questions.append({"name": q["name"], "settings": settings})
        elif q["type"] == "text":
            questions.append({"name": q["name"], "settings": {"type": "text"}})
    return {"fields": fields, "questions": questions}


def counted_json(
    *, session: Session, project: Project, tool: str, batch: int = 500
) -> Iterator[tuple[bytes, int]]:
    """The export as one JSON array (UTF-8): (a block of whole elements, how many) per batch
    of prompts; every prompt, labeled or not."""
    if tool not in TOOLS:
        raise Invalid(f"kind must be one of {', '.join(TOOLS)}; not {tool!r}", field="kind")
    names = dict(session.execute(select(User.id, User.email)).all())
    excluded = aggregation.excluded_user_ids(session=session, project_id=project.id)
    kind = KIND.get(ProjectKind(project.kind), "demonstration")
    build = _labelstudio_task if tool == "labelstudio" else _argilla_record
    first = True

    def block(prompts: list[PromptLabels]) -> bytes:
        nonlocal first
        ids = [p.prompt_id for p in prompts]
        skipped = labeling.skips(session, project.id, ids, excluded)
        out = []
        for prompt in prompts:
            text = jsontext.dumps(build(prompt, project, names, skipped.get(prompt.prompt_id, [])))
            out.append((b"[\n" if first else b",\n") + text.encode())
            first = False
        return b"".join(out)

    held: list[PromptLabels] = []
    for prompt in labeling.prompt_labels(
        session, project.id, (kind,), excluded, keep_unlabeled=True, batch=batch
    ):
        held.append(prompt)
        if len(held) >= batch:
            yield block(held), len(held)
            held = []
    text = block(held)
    yield text + (b"[]\n" if first else b"\n]\n"), len(held)


def write_settings(*, project: Project, tool: str, out: Path) -> Path | None:
    """What the other tool needs beside the file to read it back as written: Label Studio a
    rating project's config (`OUT.xml`: the rating's range), Argilla the dataset's settings
    (`.argilla/settings.json` in OUT's folder, as Argilla lays out a dataset on disk)."""
    if tool == "labelstudio":
        if project.kind != ProjectKind.rating:
            return None  # pairwise and ranker tasks read back without a config
        path = out.with_suffix(".xml")
        path.write_text(label_config(project))
        return path
    path = out.parent / ".argilla" / "settings.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(argilla_settings(project, project.k), indent=2) + "\n")
    return path
