"""Label Studio's JSON export: a JSON array of tasks, each with its annotations.

A task is `{"id", "data": {field: value}, "annotations": [...], "predictions": [...]}`; an
annotation is `{"id", "completed_by", "lead_time", "was_cancelled", "created_at", "result":
[{"from_name", "to_name", "type", "value"}]}` (labelstud.io/guide/task_format). The prompt and
the responses are fields of `data`: with the project's labeling config (`Context.label_config`)
the ones its tags name; without it, the `prompt` field (or the first text field) is the prompt,
the first list of items is what a ranker ranks, and the text fields after the prompt, in file
order, are the responses (a pairwise comparison's left and right are the first two).

Results become a label under the annotator `labelstudio:<completed_by>`:

- `pairwise` (`value.selected` left | right) → a ranking of the two;
- `ranker` (`value.ranker`: the list's name → item ids in order; with buckets, one key per
  bucket in the config's order → tied groups, items in no bucket last);
- `rating` (`value.rating`, 1…maxRating) → the response's score in a rating project (mapped to
  its scale), or the answer to the project's question of the control's name;
- `choices`, `textarea` → answers to the project's question of the control's name, or a
  textarea's text as the demonstration of a demonstration project.

A cancelled annotation is a skipped label; `lead_time` (seconds) is the label's time spent; a
task without annotations is an open prompt; predictions are kept in the prompt's meta as
suggestions. Any other result type is an error that names it. Results are matched on
`from_name` and `type` (Label Studio writes a pairwise control's own name in `to_name`).
"""

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

from app.projects import foreign
from app.projects.foreign import Context
from app.projects.formats import Item, LineError, SourceLabel, content_hash, messages_of
from app.projects.kinds import ProjectKind

RESULT_TYPES = ("pairwise", "ranker", "rating", "choices", "textarea")
DEFAULT_MAX_RATING = 5


@dataclass
class Config:
    """What a labeling config says about the data fields and the controls."""

    objects: dict[str, str] = field(default_factory=dict)
    """Object tag name → the data field it shows ($field), in the config's order."""
    pairwise: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Pairwise control → its (left, right) object names."""
    rankers: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    """Ranker control → (the List object it ranks, its bucket names in order)."""
    max_rating: dict[str, int] = field(default_factory=dict)


def parse_config(xml: str) -> Config:
    """The parts of a Label Studio labeling config the import reads."""
    try:
        root = ET.fromstring(xml)  # noqa: S314 - the admin's own config; expat refuses entity bombs
    except ET.ParseError as exc:
        raise LineError(f"the label config is not valid XML: {exc}") from None
    config = Config()
    for tag in root.iter():
        name, value = tag.get("name"), tag.get("value") or ""
        kind = tag.tag.lower()
        if name and value.startswith("$"):
            config.objects[name] = value[1:]
        if not name:
            continue
        targets = [t.strip() for t in (tag.get("toName") or "").split(",") if t.strip()]
        if kind == "pairwise":
            if len(targets) != 2:
                raise LineError(f"label config: Pairwise {name!r} needs toName with two names")
            config.pairwise[name] = (targets[0], targets[1])
        elif kind == "ranker" and targets:
            buckets = [b.get("name") or "" for b in tag if b.tag.lower() == "bucket"]
            config.rankers[name] = (targets[0], [b for b in buckets if b])
        elif kind == "rating":
            try:
                config.max_rating[name] = int(tag.get("maxRating") or DEFAULT_MAX_RATING)
            except ValueError:
                raise LineError(f"label config: Rating {name!r} has no whole maxRating") from None
    return config


@dataclass
class _Task:
    """One task's prompt and responses, and where each result finds its response."""

    where: str
    messages: list[dict[str, str]]
    responses: list[dict[str, Any]]
    position: dict[str, int]
    """Object name or data field → response position; ranker item ids under `item:<id>`."""


def _text_fields(data: dict[str, Any]) -> list[str]:
    return [k for k, v in data.items() if isinstance(v, str) and v.strip()]


def _item_text(item: Any, where: str) -> str:
    if not isinstance(item, dict):
        raise LineError(f"{where} must be an object with an id and a body or title")
    for name in ("body", "text", "title", "html"):
        value = item.get(name)
        if isinstance(value, str) and value.strip():
            return value
    raise LineError(f"{where} has no body, text, title or html")


def _list_field(data: dict[str, Any], config: Config | None) -> str | None:
    if config is not None and config.rankers:
        list_object = next(iter(config.rankers.values()))[0]
        return config.objects.get(list_object)
    for name, value in data.items():
        items = isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        if items and not _is_conversation(value):  # a conversation is a prompt, not items
            return name
    return None


def _layout(task: dict[str, Any], ctx: Context, config: Config | None, where: str) -> _Task:
    data = task.get("data")
    if not isinstance(data, dict):
        raise LineError(f"{where}: data must be an object of the task's fields")
    position: dict[str, int] = {}
    responses: list[dict[str, Any]] = []
    field_of = dict(config.objects) if config else {k: k for k in data}
    list_field = _list_field(data, config) if ctx.kind == ProjectKind.ranking else None
    if list_field is not None:
        items = data.get(list_field)
        if not isinstance(items, list) or not items:
            raise LineError(f"{where}: data.{list_field} must be a non-empty list of items")
        for i, item in enumerate(items):
            text = _item_text(item, f"{where}: data.{list_field}[{i}]")
            ref = foreign.source_id(item.get("id", i), f"{where}: data.{list_field}[{i}].id")
            position[f"item:{ref}"] = i
            model = item.get("model") if isinstance(item.get("model"), str) else None
            responses.append({"text": text, "model": model, "meta": {"labelstudio_item": ref}})
        taken = {list_field}
    else:
        if config is not None and config.pairwise:
            left, right = next(iter(config.pairwise.values()))
            fields = [field_of.get(left, left), field_of.get(right, right)]
        else:
            fields = []
        taken = set(fields)
    prompt_field = _prompt_field(data, config, taken, where)
    if list_field is None and ctx.kind != ProjectKind.demonstration:
        if not taken:
            later = _text_fields(data)
            later = later[later.index(prompt_field) + 1 :] if prompt_field in later else later
            fields = later[:2] if ctx.kind == ProjectKind.ranking else later
        for i, name in enumerate(fields):
            value = data.get(name)
            if not isinstance(value, str) or not value.strip():
                raise LineError(f"{where}: data.{name} must be a response's text")
            responses.append({"text": value, "model": None, "meta": {"labelstudio_field": name}})
            position[name] = i
    for obj, name in field_of.items():  # results name objects; data fields stand for themselves
        if name in position:
            position.setdefault(obj, position[name])
    messages = messages_of(data[prompt_field], f"{where}: data.{prompt_field}")
    return _Task(where, messages, responses, position)


def _prompt_field(data: dict[str, Any], config: Config | None, taken: set[str], where: str) -> str:
    if config is not None:
        for name in config.objects.values():
            if name not in taken and name in data:
                return name
    if "prompt" in data and "prompt" not in taken:
        return "prompt"
    for name, value in data.items():
        if name not in taken and (isinstance(value, str) or _is_conversation(value)):
            return name
    raise LineError(f"{where}: data has no text field for the prompt")


def _is_conversation(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, dict) and "role" in v for v in value)
    )


def _ranker(
    value: Any, to_name: Any, task: _Task, config: Config | None, control: str, where: str
) -> list[Any]:
    """A ranker result as response positions best first, a tied group for each bucket."""
    ranked = value.get("ranker") if isinstance(value, dict) else None
    if not isinstance(ranked, dict) or not ranked:
        raise LineError(f"{where}: value.ranker must be an object of lists of item ids")
    list_name, buckets = config.rankers.get(control, ("", [])) if config else ("", [])
    list_name = list_name or (to_name if isinstance(to_name, str) else "")
    in_buckets = bool(buckets) or len(ranked) > 1
    groups: list[Any] = []
    for name in [b for b in buckets if b in ranked] + [k for k in ranked if k not in buckets]:
        ids = ranked[name]
        if not isinstance(ids, list):
            raise LineError(f"{where}: value.ranker.{name} must be a list of item ids")
        positions = [_item(task, i, where) for i in ids]
        if not in_buckets:
            groups.extend(positions)  # one ordered list: no ties
        elif name == list_name or not positions:
            continue  # items left in the list were put in no bucket: last, below
        else:
            groups.append(positions[0] if len(positions) == 1 else positions)
    placed = {p for g in groups for p in (g if isinstance(g, list) else [g])}
    rest = [p for p in range(len(task.responses)) if p not in placed]
    if len(rest) == 1:
        groups.append(rest[0])
    elif rest:
        groups.append(rest)
    return groups


def _item(task: _Task, ref: Any, where: str) -> int:
    found = task.position.get(f"item:{ref}")
    if found is None:
        raise LineError(f"{where}: item {ref!r} is not one of the task's items")
    return found


def _result_label(
    results: Any, task: _Task, ctx: Context, config: Config | None, where: str
) -> dict[str, Any]:
    """An annotation's (or a prediction's) results as a payload with response positions."""
    if not isinstance(results, list):
        raise LineError(f"{where}: result must be a list")
    payload: dict[str, Any] = {}
    answers: dict[str, Any] = {}
    scores: dict[str, int] = {}
    n = len(task.responses)
    for r in results:
        if not isinstance(r, dict):
            raise LineError(f"{where}: each result must be an object")
        kind, control, value = r.get("type"), str(r.get("from_name", "")), r.get("value") or {}
        at = f"{where}, result {control!r} ({kind})"
        target = task.position.get(str(r.get("to_name", "")))
        if kind == "pairwise":
            selected = value.get("selected") if isinstance(value, dict) else None
            if selected not in ("left", "right") or n != 2:
                raise LineError(f"{at}: value.selected must be left or right, with 2 responses")
            payload["ranking"] = [0, 1] if selected == "left" else [1, 0]
        elif kind == "ranker":
            payload["ranking"] = _ranker(value, r.get("to_name"), task, config, control, at)
        elif kind == "rating":
            high = config.max_rating.get(control, DEFAULT_MAX_RATING) if config else 5
            rating = value.get("rating") if isinstance(value, dict) else None
            asks = {q["name"] for q in ctx.questions}
            if ctx.kind == ProjectKind.rating and foreign.question_name(control) not in asks:
                if target is None and n != 1:
                    raise LineError(f"{at}: to_name names none of the task's responses")
                scores[str(0 if target is None else target)] = foreign.score(
                    ctx, rating, 1, high, at
                )
            else:
                q = foreign.question(ctx, control, at)
                answer = foreign.likert(q, rating, 1, high, at) if q["type"] == "likert" else rating
                foreign.put_answer(answers, q, answer, target, n, at)
        elif kind == "choices":
            chosen = value.get("choices") if isinstance(value, dict) else None
            if not isinstance(chosen, list):
                raise LineError(f"{at}: value.choices must be a list")
            q = foreign.question(ctx, control, at)
            answer: Any = chosen
            if q["type"] == "single_choice":
                answer = chosen[0] if len(chosen) == 1 else chosen
            elif q["type"] == "yes_no" and len(chosen) == 1:
                answer = str(chosen[0]).strip().lower() in ("yes", "true")
            foreign.put_answer(answers, q, answer, target, n, at)
        elif kind == "textarea":
            lines = value.get("text") if isinstance(value, dict) else None
            if not isinstance(lines, list) or not all(isinstance(t, str) for t in lines):
                raise LineError(f"{at}: value.text must be a list of strings")
            text = "\n".join(lines)
            asks = {q["name"] for q in ctx.questions}
            if ctx.kind == ProjectKind.demonstration and foreign.question_name(control) not in asks:
                payload["demonstration"] = text
            else:
                foreign.put_answer(answers, foreign.question(ctx, control, at), text, None, n, at)
        else:
            known = ", ".join(RESULT_TYPES)
            raise LineError(f"{at}: result type {kind!r} cannot be imported (known: {known})")
    if scores:
        payload["scores"] = scores
    if answers:
        payload["answers"] = answers
    return payload


MAIN = {ProjectKind.ranking: "ranking", ProjectKind.rating: "scores"}
"""The part of a payload a project of each kind needs (demonstration for the rest)."""
WANTED = {
    "ranking": "a pairwise or ranker result",
    "scores": "a rating result",
    "demonstration": "a textarea result",
}


def _annotation(
    ann: Any, task_id: str, task: _Task, ctx: Context, config: Config | None, i: int, main: str
) -> SourceLabel:
    """An annotation as a label; `main`: the part of its payload the project needs (MAIN)."""
    if not isinstance(ann, dict):
        raise LineError(f"{task.where}: annotations[{i}] must be an object")
    ref = foreign.source_id(ann.get("id", f"{task_id}.{i}"), f"{task.where}: annotation id")
    where = f"{task.where}, annotation {ref}"
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("id", who.get("email"))
    labeler = "labelstudio:" + foreign.source_id(who, f"{where}: completed_by")
    lead = ann.get("lead_time")
    if lead is not None and (isinstance(lead, bool) or not isinstance(lead, int | float)):
        raise LineError(f"{where}: lead_time must be a number of seconds")
    duration = None if lead is None or lead < 0 else min(int(lead * 1000), 7 * 24 * 3600 * 1000)
    created = foreign.timestamp(ann.get("created_at"), f"{where}: created_at")
    key = foreign.key("labelstudio", ref)
    if ann.get("was_cancelled"):
        reason = "cancelled in Label Studio"
        return SourceLabel(labeler, key, None, duration, created, skip_reason=reason)
    payload = _result_label(ann.get("result", []), task, ctx, config, where)
    if main not in payload:
        raise LineError(f"{where}: no {WANTED[main]}, which a {ctx.kind} project needs")
    return SourceLabel(labeler, key, payload, duration, created)


def parser(ctx: Context):  # type: ignore[no-untyped-def]
    """The parser of one task, for the project and label config of `ctx`."""
    config = parse_config(ctx.label_config) if ctx.label_config else None
    main = MAIN.get(ctx.kind, "demonstration")

    def parse(task: dict[str, Any]) -> Item:
        raw_id = task.get("id")
        where = "task" if raw_id is None else f"task {raw_id}"
        task_id = "" if raw_id is None else foreign.source_id(raw_id, "task id")
        layout = _layout(task, ctx, config, where)
        annotations = task.get("annotations") or []
        if not isinstance(annotations, list):
            raise LineError(f"{where}: annotations must be a list")
        labels = [
            _annotation(ann, task_id, layout, ctx, config, i, main)
            for i, ann in enumerate(annotations)
        ]
        meta: dict[str, Any] = {"labelstudio_task": raw_id}
        if isinstance(task.get("meta"), dict) and task["meta"]:
            meta["labelstudio_meta"] = task["meta"]
        suggestions = _suggestions(task.get("predictions") or [], layout, ctx, config)
        if suggestions:
            meta["suggestions"] = suggestions
        external = task_id or content_hash(layout.messages, layout.responses)
        item = Item(external, layout.messages, layout.responses, meta, labels=labels)
        return item

    return parse


def _suggestions(
    predictions: Any, task: _Task, ctx: Context, config: Config | None
) -> list[dict[str, Any]]:
    """Predictions as suggestions (response positions), raw results where they do not map."""
    out: list[dict[str, Any]] = []
    if not isinstance(predictions, list):
        return out
    for prediction in predictions:
        if not isinstance(prediction, dict):
            continue
        found: dict[str, Any] = {
            "agent": prediction.get("model_version"),
            "score": prediction.get("score"),
        }
        try:
            found["payload"] = _result_label(
                prediction.get("result", []), task, ctx, config, "prediction"
            )
        except LineError:
            found["result"] = prediction.get("result")
        out.append(found)
    return out
