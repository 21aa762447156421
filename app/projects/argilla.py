"""Argilla records: 2.x nested (`records.to_json` / `to_list`), 2.x flattened (`to_datasets`, the
Hub's JSONL or Parquet) and 1.x rankings.

A 1.x record lists its responses as `[{"user_id", "values": {question: {"value"}}, "status"}]`.
A nested record is `{"id", "fields": {name: text}, "metadata", "suggestions": {question:
{"value", "score", "agent"}}, "responses": {question: [{"value", "user_id", "status"}]}}`; a
flattened one has the fields as columns and each question's responses as `{q}.responses`,
`{q}.responses.users` and `{q}.responses.status`. The dataset's settings (`.argilla/settings.json`
beside the file, `Context.settings`) name the fields and each question's type and values;
without them a question's type is read from its answers.

Each user's submitted responses to one record are one label by `argilla:<user id>`:

- a RankingQuestion ranks the fields it names (its options), which are the record's responses; 2.x
  values are the option names best first, 1.x values `[{"rank", "value"}]` keep their ties;
- a RatingQuestion is the score of a rating project's one response (mapped to its scale) or the
  answer to the project's Likert question of that name;
- Label, MultiLabel and Text questions answer the project's questions of the same names; a text
  answer is the demonstration of a demonstration project.

Discarded responses are skipped labels; drafts are left out (said in the notes). A question of
another type (span) is an error that names it.
"""

from typing import Any

from app.projects import foreign
from app.projects.foreign import Context
from app.projects.formats import Item, LineError, SourceLabel, content_hash, messages_of
from app.projects.kinds import ProjectKind

TYPES = {
    "ranking": "ranking",
    "rankingquestion": "ranking",
    "rating": "rating",
    "ratingquestion": "rating",
    "label_selection": "label",
    "labelquestion": "label",
    "multi_label_selection": "multi_label",
    "multilabelquestion": "multi_label",
    "text": "text",
    "textquestion": "text",
}
RECORD_KEYS = {"id", "_server_id", "status", "inserted_at", "updated_at", "external_id"}


def _settings(raw: dict[str, Any] | None) -> tuple[list[str], dict[str, dict[str, Any]]]:
    """(field names in order, question name → {"type", "options", "values"}) of the settings."""
    if not raw:
        return [], {}
    fields = [f["name"] for f in raw.get("fields") or [] if isinstance(f, dict) and "name" in f]
    questions: dict[str, dict[str, Any]] = {}
    for q in raw.get("questions") or []:
        if not isinstance(q, dict) or "name" not in q:
            continue
        inner = q.get("settings") if isinstance(q.get("settings"), dict) else {}
        kind = str(q.get("type") or inner.get("type") or "").lower()
        options = q.get("options") or inner.get("options") or q.get("values") or []
        names = [o.get("value") if isinstance(o, dict) else o for o in options]
        questions[q["name"]] = {"type": TYPES.get(kind, kind), "options": names}
    return fields, questions


def _unflatten(row: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    """A flattened record (`{q}.responses` columns) in the nested form."""
    record: dict[str, Any] = {"fields": {}, "metadata": {}, "responses": {}, "suggestions": {}}
    for name, value in row.items():
        if name in RECORD_KEYS:
            record[name] = value
        elif name.endswith(".responses"):
            q = name.removesuffix(".responses")
            users = row.get(f"{q}.responses.users") or []
            status = row.get(f"{q}.responses.status") or ["submitted"] * len(value or [])
            record["responses"][q] = [
                {"value": v, "user_id": u, "status": s}
                for v, u, s in zip(value or [], users, status, strict=False)
            ]
        elif name.endswith(".suggestion"):
            q = name.removesuffix(".suggestion")
            if value is not None:
                record["suggestions"][q] = {
                    "value": value,
                    "score": row.get(f"{q}.suggestion.score"),
                    "agent": row.get(f"{q}.suggestion.agent"),
                }
        elif "." in name:
            continue  # .responses.users/.status, .suggestion.score/.agent: read above
        elif name in fields or (not fields and _is_text(value)):
            record["fields"][name] = value
        else:
            record["metadata"][name] = value
    return record


def _by_question(responses: list[Any], where: str) -> dict[str, list[dict[str, Any]]]:
    """1.x responses (`[{"user_id", "values": {q: {"value"}}, "status"}]`) per question."""
    out: dict[str, list[dict[str, Any]]] = {}
    for r in responses:
        values = r.get("values") if isinstance(r, dict) else None
        if not isinstance(values, dict):
            raise LineError(f"{where}: each 1.x response needs values: {{question: {{value}}}}")
        for q, v in values.items():
            value = v.get("value") if isinstance(v, dict) else v
            out.setdefault(q, []).append(
                {"value": value, "user_id": r.get("user_id"), "status": r.get("status")}
            )
    return out


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(v, dict) and "role" in v for v in value)
    )


def _kind_of(value: Any, fields: dict[str, Any]) -> str:
    """A question's type read from an answer, when there are no settings."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return "ranking"  # 1.x: [{"rank", "value"}]
    if isinstance(value, list) and value and all(v in fields for v in value):
        return "ranking"
    if isinstance(value, list):
        return "multi_label"
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "rating"
    return "text"


def _ranking(value: Any, responses: list[str], where: str) -> list[Any]:
    """Positions best first: 2.x option names in order, or 1.x `{"rank", "value"}` with ties."""
    position = {name: i for i, name in enumerate(responses)}
    if not isinstance(value, list) or not value:
        raise LineError(f"{where}: a ranking must be a non-empty list")
    if all(isinstance(v, dict) for v in value):
        by_rank: dict[Any, list[int]] = {}
        for v in value:
            name, rank = v.get("value"), v.get("rank")
            if name not in position or isinstance(rank, bool) or not isinstance(rank, int):
                raise LineError(f"{where}: {v!r} is not a {{rank, value}} of the ranked fields")
            by_rank.setdefault(rank, []).append(position[name])
        return [g[0] if len(g) == 1 else g for _, g in sorted(by_rank.items())]
    out = []
    for name in value:
        if name not in position:
            raise LineError(f"{where}: {name!r} is not one of the ranked fields {responses}")
        out.append(position[name])
    return out


def parser(ctx: Context):  # type: ignore[no-untyped-def]
    """The parser of one record (nested or flattened)."""
    field_order, settings = _settings(ctx.settings)

    def parse(obj: dict[str, Any]) -> Item:
        record = obj if isinstance(obj.get("fields"), dict) else _unflatten(obj, field_order)
        raw_id = record.get("id") or record.get("external_id") or record.get("_server_id")
        where = "record" if raw_id is None else f"record {raw_id}"
        ref = None if raw_id is None else foreign.source_id(raw_id, f"{where}: id")
        fields = record["fields"]
        answers = record.get("responses") or {}
        if isinstance(answers, list):
            answers = _by_question(answers, where)
        if not isinstance(answers, dict):
            raise LineError(f"{where}: responses must be an object of questions")
        kinds = {}
        for q, given in answers.items():
            found = settings.get(q, {}).get("type")
            if found is None:
                sample = next((r.get("value") for r in given or [] if isinstance(r, dict)), None)
                found = _kind_of(sample, fields)
            kinds[q] = found
        ranked = _ranked_fields(settings, answers, kinds, fields)
        prompt_name, response_names = _layout(fields, field_order, ranked, ctx, where)
        messages = messages_of(fields[prompt_name], f"{where}: fields.{prompt_name}")
        responses = []
        for name in response_names:
            text = fields.get(name)
            if not isinstance(text, str) or not text.strip():
                raise LineError(f"{where}: fields.{name} must be a response's text")
            responses.append({"text": text, "model": None, "meta": {"argilla_field": name}})
        labels = _labels(answers, kinds, settings, response_names, ctx, where, ref)
        meta: dict[str, Any] = {"argilla_record": raw_id}
        if isinstance(record.get("metadata"), dict) and record["metadata"]:
            meta["argilla_metadata"] = record["metadata"]
        if record.get("suggestions"):
            meta["suggestions"] = record["suggestions"]
        external = ref or content_hash(messages, responses)
        return Item(external, messages, responses, meta, labels=labels)

    return parse


def _ranked_fields(
    settings: dict[str, dict[str, Any]],
    answers: dict[str, Any],
    kinds: dict[str, str],
    fields: dict[str, Any],
) -> list[str]:
    """The fields a ranking question ranks: its options, or (no settings) those its answers
    name, in the record's field order."""
    for q, kind in kinds.items():
        if kind != "ranking":
            continue
        if settings.get(q, {}).get("options"):
            return list(settings[q]["options"])
        named: set[str] = set()
        for r in answers[q] or []:
            value = r.get("value") if isinstance(r, dict) else None
            for v in value or []:
                named.add(v.get("value") if isinstance(v, dict) else v)
        return [name for name in fields if name in named]
    for spec in settings.values():
        if spec["type"] == "ranking" and spec["options"]:
            return list(spec["options"])
    return []


def _layout(
    fields: dict[str, Any], order: list[str], ranked: list[str], ctx: Context, where: str
) -> tuple[str, list[str]]:
    """(the prompt's field, the responses' fields)."""
    names = [n for n in order if n in fields] + [n for n in fields if n not in order]
    rest = [n for n in names if n not in ranked]
    if not rest:
        raise LineError(f"{where}: no field is left for the prompt")
    prompt = next((n for n in ("prompt", "instruction", "question") if n in rest), rest[0])
    if ranked:
        return prompt, ranked
    if ctx.kind == ProjectKind.demonstration:
        return prompt, []
    after = [n for n in rest if n != prompt and isinstance(fields[n], str)]
    return prompt, after


def _labels(
    answers: dict[str, Any],
    kinds: dict[str, str],
    settings: dict[str, dict[str, Any]],
    response_names: list[str],
    ctx: Context,
    where: str,
    ref: str | None,
) -> list[SourceLabel]:
    by_user: dict[str, dict[str, tuple[Any, str]]] = {}
    for q, given in answers.items():
        if not isinstance(given, list):
            raise LineError(f"{where}: responses.{q} must be a list")
        for r in given:
            if not isinstance(r, dict):
                raise LineError(f"{where}: responses.{q} must hold objects")
            user = foreign.source_id(r.get("user_id"), f"{where}: responses.{q}.user_id")
            by_user.setdefault(user, {})[q] = (r.get("value"), str(r.get("status", "submitted")))
    labels = []
    for user, given in by_user.items():
        statuses = {status for _, status in given.values()}
        key = foreign.key("argilla", ref or where, user)
        labeler = f"argilla:{user}"
        if "submitted" not in statuses:
            if "discarded" in statuses:
                labels.append(SourceLabel(labeler, key, None, skip_reason="discarded in Argilla"))
            else:
                ctx.note("draft responses were left out (only submitted ones count)")
            continue
        payload: dict[str, Any] = {}
        answered: dict[str, Any] = {}
        for q, (value, status) in given.items():
            if status != "submitted":
                continue
            at = f"{where}, user {user}, question {q!r}"
            _answer(q, kinds[q], value, settings.get(q, {}), response_names, ctx, at, payload)
            answered.update(payload.pop("answers", {}))
        if answered:
            payload["answers"] = answered
        main = {ProjectKind.ranking: "ranking", ProjectKind.rating: "scores"}.get(
            ctx.kind, "demonstration"
        )
        if main not in payload:
            raise LineError(f"{where}, user {user}: no answer a {ctx.kind} project can take")
        labels.append(SourceLabel(labeler, key, payload))
    return labels


def _answer(
    q: str,
    kind: str,
    value: Any,
    spec: dict[str, Any],
    responses: list[str],
    ctx: Context,
    where: str,
    payload: dict[str, Any],
) -> None:
    """Put one submitted answer into the label's payload."""
    n = len(responses)
    asks = {x["name"] for x in ctx.questions}
    answers: dict[str, Any] = {}
    if kind == "ranking":
        payload["ranking"] = _ranking(value, responses, where)
    elif kind == "rating":
        values = [v for v in spec.get("options") or [] if isinstance(v, int | float)]
        if not values:
            raise LineError(f"{where}: a rating's range is in the dataset's settings; add them")
        low, high = int(min(values)), int(max(values))
        if ctx.kind == ProjectKind.rating and foreign.question_name(q) not in asks:
            if n != 1:
                raise LineError(f"{where}: a rating scores one response; the record has {n}")
            payload["scores"] = {"0": foreign.score(ctx, value, low, high, where)}
        else:
            question = foreign.question(ctx, q, where)
            answer = foreign.likert(question, value, low, high, where)
            foreign.put_answer(answers, question, answer, None, n, where)
    elif kind in ("label", "multi_label"):
        foreign.put_answer(answers, foreign.question(ctx, q, where), value, None, n, where)
    elif kind == "text":
        if ctx.kind == ProjectKind.demonstration and foreign.question_name(q) not in asks:
            payload["demonstration"] = value
        else:
            foreign.put_answer(answers, foreign.question(ctx, q, where), value, None, n, where)
    else:
        known = "ranking, rating, label_selection, multi_label_selection, text"
        raise LineError(f"{where}: question type {kind!r} cannot be imported (known: {known})")
    if answers:
        payload["answers"] = answers
