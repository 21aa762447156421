"""Chatbot Arena battles (FastChat's `clean_battle` JSON, lmsys/chatbot_arena_conversations).

A battle is `{"question_id", "model_a", "model_b", "winner", "judge", "conversation_a",
"conversation_b", "turn", "tstamp", …}` with `winner` one of model_a | model_b | tie |
tie (bothbad). It becomes a K=2 prompt whose responses carry the two models' names (so the
project's leaderboard rates them) and one label by its judge, `arena:<judge>`: the winner
first, or the two tied. A one-turn battle's prompt is the user's message and its responses
the two answers; in a longer one the models' answers part ways after the first message, so
each response is the rest of its conversation as a transcript (`User:` / `Assistant:` turns).
"""

from typing import Any

from app.errors import Invalid
from app.projects import foreign
from app.projects.foreign import Context
from app.projects.formats import Item, LineError, SourceLabel, content_hash, messages_of
from app.projects.kinds import ProjectKind

WINNERS = {"model_a": [0, 1], "model_b": [1, 0], "tie": [[0, 1]], "tie (bothbad)": [[0, 1]]}


def _rest(conversation: list[dict[str, str]]) -> str:
    """The conversation after its first message, the first answer unmarked."""
    parts = [conversation[1]["content"]]
    for turn in conversation[2:]:
        speaker = "User" if turn["role"] == "user" else "Assistant"
        parts.append(f"{speaker}: {turn['content']}")
    return "\n\n".join(parts)


def parser(ctx: Context):  # type: ignore[no-untyped-def]
    """The parser of one battle."""
    if ctx.kind != ProjectKind.ranking:
        raise Invalid(
            f"Arena battles are rankings of two answers; this is a {ctx.kind} project",
            field="format",
        )

    def parse(obj: dict[str, Any]) -> Item:
        raw = obj.get("question_id")
        where = "battle" if raw is None else f"battle {raw}"
        ref = None if raw is None else foreign.source_id(raw, f"{where}: question_id")
        models = []
        for side in ("model_a", "model_b"):
            model = obj.get(side)
            if not isinstance(model, str) or not model.strip() or len(model) > 200:
                raise LineError(f"{where}: {side} must be a model name")
            models.append(model)
        winner = obj.get("winner")
        if winner not in WINNERS:
            raise LineError(f"{where}: winner {winner!r} is not one of {', '.join(WINNERS)}")
        a = messages_of(obj.get("conversation_a"), f"{where}: conversation_a")
        b = messages_of(obj.get("conversation_b"), f"{where}: conversation_b")
        for name, turns in (("conversation_a", a), ("conversation_b", b)):
            if len(turns) < 2 or turns[0]["role"] != "user" or turns[-1]["role"] != "assistant":
                raise LineError(f"{where}: {name} must run from a user turn to an answer")
        if a[0] != b[0]:
            raise LineError(f"{where}: the two conversations start with different messages")
        single = len(a) == 2 and len(b) == 2
        texts = [a[1]["content"], b[1]["content"]] if single else [_rest(a), _rest(b)]
        responses = [
            {"text": text, "model": model, "meta": {}}
            for text, model in zip(texts, models, strict=True)
        ]
        meta = {"arena_winner": winner, "turn": obj.get("turn", len(a) // 2)}
        for name in ("language", "anony"):
            if name in obj:
                meta[name] = obj[name]
        external = ref or content_hash(a[:1], responses)
        judge = obj.get("judge")
        labels = []
        if judge is not None:
            labeler = "arena:" + foreign.source_id(judge, f"{where}: judge")
            stamp = foreign.timestamp(obj.get("tstamp"), f"{where}: tstamp")
            payload = {"ranking": WINNERS[winner]}
            key = foreign.key("arena", external)
            labels.append(SourceLabel(labeler, key, payload, None, stamp))
        return Item(external, a[:1], responses, meta, labels=labels)

    return parse
