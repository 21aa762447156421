"""Parsing one record of an import file: native, HH-RLHF (`hh`), TRL preference (`trl`); the
exports of other labeling tools (`oasst`, `labelstudio`, `argilla`, `arena`) have their own
modules, each a parser of the same kind (`app.projects.parsers` names them all).

Every parser turns a decoded JSON object into an `Item` (or a list of them: one oasst tree holds
many ranked prompts) or raises `LineError` with a reason; the importer adds the line (or
record) number. An item may carry labels, each under its source annotator (`SourceLabel`).
"""

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class ImportFormat(StrEnum):
    """The import file formats; `auto` picks one from the first line."""

    auto = "auto"
    jsonl = "jsonl"
    hh = "hh"
    trl = "trl"
    oasst = "oasst"
    labelstudio = "labelstudio"
    argilla = "argilla"
    arena = "arena"


FORMATS = tuple(f for f in ImportFormat if f != ImportFormat.auto)
"""The formats a line can be parsed as (every one but auto)."""
ROLES = {"system", "user", "assistant"}
MAX_TEXT = 200_000


class LineError(ValueError):
    """A line that cannot be imported; the message says why."""


@dataclass
class SourceLabel:
    """A label that came with the file, by a labeler of the tool it was exported from."""

    labeler: str
    """The source annotator, `tool:id` (`labelstudio:7`, `argilla:<uuid>`, `arena:<judge>`)."""
    key: str
    """The source's id of this label (at most 200 characters): importing it again adds nothing."""
    payload: dict[str, Any] | None
    """What a labeler would submit, with response positions (0, 1, …) in place of response
    ids: {"ranking": [0, [1, 2]]}, {"scores": {"0": 4}}, {"demonstration": "…"}, and
    "answers"; None for a skipped (cancelled, discarded) label."""
    duration_ms: int | None = None
    created_at: datetime | None = None
    skip_reason: str = ""


@dataclass
class Item:
    external_id: str
    messages: list[dict[str, str]]
    responses: list[dict[str, Any]]
    """[{"text", "model", "meta"}] in file order."""
    meta: dict[str, Any] = field(default_factory=dict)
    ranking: list[int] | None = None
    """Indices into `responses`, best first, when the file carries a preference."""
    gold: dict[str, Any] | None = None
    """A known answer (gold item): {"ranking": [indices best→worst]} or {"scores": [...]}."""
    labels: list[SourceLabel] = field(default_factory=list)
    """Labels by source annotators, in the order they were given."""


def checked_text(value: Any, where: str) -> str:
    """A non-empty string of at most MAX_TEXT characters, or LineError naming `where`."""
    if not isinstance(value, str):
        raise LineError(f"{where} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise LineError(f"{where} is empty")
    if len(value) > MAX_TEXT:
        raise LineError(f"{where} is longer than {MAX_TEXT} characters")
    return value


def messages_of(value: Any, where: str) -> list[dict[str, str]]:
    """A prompt given as a string or as a list of {"role", "content"} turns."""
    if isinstance(value, str):
        return [{"role": "user", "content": checked_text(value, where)}]
    if not isinstance(value, list) or not value:
        raise LineError(f"{where} must be a string or a non-empty list of messages")
    out = []
    for i, turn in enumerate(value):
        if not isinstance(turn, dict):
            raise LineError(f"{where}[{i}] must be an object with role and content")
        role = turn.get("role")
        if role not in ROLES:
            raise LineError(f"{where}[{i}].role must be one of system, user, assistant")
        out.append(
            {"role": role, "content": checked_text(turn.get("content"), f"{where}[{i}].content")}
        )
    return out


def content_hash(messages: list[dict[str, str]], responses: list[dict[str, Any]]) -> str:
    blob = json.dumps([messages, [r["text"] for r in responses]], sort_keys=True)
    return "sha1:" + hashlib.sha1(blob.encode()).hexdigest()


def _external_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("id")
    if value is None:
        return None
    if not isinstance(value, str | int) or isinstance(value, bool) or str(value) == "":
        raise LineError("id must be a non-empty string or an integer")
    if len(str(value)) > 200:
        raise LineError("id is longer than 200 characters")
    return str(value)


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise LineError("meta must be an object")
    return meta


def _gold(value: Any, n: int) -> dict[str, Any] | None:
    """The known answer of a gold item, checked against the number of responses."""
    if value is None:
        return None
    if not isinstance(value, dict) or len(value) != 1 or not {"ranking", "scores"} & set(value):
        raise LineError('gold must be {"ranking": [indices best→worst]} or {"scores": [...]}')
    if "ranking" in value:
        ranking = value["ranking"]
        if (
            not isinstance(ranking, list)
            or any(not isinstance(i, int) or isinstance(i, bool) for i in ranking)
            or sorted(ranking) != list(range(n))
        ):
            raise LineError(f"gold.ranking must list each response index 0…{n - 1} once")
        return {"ranking": ranking}
    scores = value["scores"]
    if (
        not isinstance(scores, list)
        or len(scores) != n
        or any(not isinstance(v, int | float) or isinstance(v, bool) for v in scores)
    ):
        raise LineError(f"gold.scores must be a list of {n} numbers, one per response")
    return {"scores": scores}


def _responses(raw: Any, where: str) -> list[dict[str, Any]]:
    """Candidate responses given as strings or {"text", "model"?, "meta"?} objects."""
    if not isinstance(raw, list):
        raise LineError(f"{where} must be a list")
    responses: list[dict[str, Any]] = []
    for i, r in enumerate(raw):
        if isinstance(r, str):
            responses.append({"text": checked_text(r, f"{where}[{i}]"), "model": None, "meta": {}})
        elif isinstance(r, dict):
            model = r.get("model")
            if model is not None and not isinstance(model, str):
                raise LineError(f"{where}[{i}].model must be a string")
            meta = r.get("meta", {})
            if not isinstance(meta, dict):
                raise LineError(f"{where}[{i}].meta must be an object")
            text = checked_text(r.get("text"), f"{where}[{i}].text")
            responses.append({"text": text, "model": model, "meta": meta})
        else:
            raise LineError(f"{where}[{i}] must be a string or an object with text")
    return responses


def parse_native(obj: dict[str, Any]) -> Item | list[Item]:
    """{"id"?, "prompt": str | "messages": [...], "responses": [str | {"text","model"}], "meta"?}

    Or candidates at several turns of one conversation: {"id"?, "messages": [...],
    "candidates": [{"turn": i, "responses": [...]}, …]}, one prompt per entry (see
    `_turn_items`)."""
    if "messages" in obj:
        messages = messages_of(obj["messages"], "messages")
    elif "prompt" in obj:
        messages = messages_of(obj["prompt"], "prompt")
    else:
        raise LineError('a line needs "prompt" or "messages"')
    if "candidates" in obj:
        return _turn_items(obj, messages)
    responses = _responses(obj.get("responses", []), "responses")
    item = Item(_external_id(obj) or "", messages, responses, _meta(obj))
    item.gold = _gold(obj.get("gold"), len(responses))
    item.external_id = item.external_id or content_hash(messages, responses)
    return item


def _turn_items(obj: dict[str, Any], messages: list[dict[str, str]]) -> list[Item]:
    """Candidate next turns at any assistant turn of a conversation: entry {"turn": i,
    "responses": [...]} becomes a prompt whose messages are the conversation before turn i
    (which must end with a user turn) and whose responses are the candidates for turn i (an
    assistant turn of the conversation, or i = len(messages): the turn after the last). Its id
    is the line's id + ":turn<i>" (or a content hash) and its meta records the turn."""
    for key in ("responses", "gold"):
        if key in obj:
            raise LineError(f'"{key}" cannot be given with "candidates" (each turn has its own)')
    entries = obj["candidates"]
    if not isinstance(entries, list) or not entries:
        raise LineError('candidates must be a non-empty list of {"turn", "responses"}')
    base, meta = _external_id(obj), _meta(obj)
    items: list[Item] = []
    seen: set[int] = set()
    for n, entry in enumerate(entries):
        where = f"candidates[{n}]"
        if not isinstance(entry, dict):
            raise LineError(f'{where} must be an object {{"turn", "responses"}}')
        turn = entry.get("turn")
        if not isinstance(turn, int) or isinstance(turn, bool) or not 1 <= turn <= len(messages):
            raise LineError(
                f"{where}.turn must be a message index from 1 to {len(messages)} (the assistant "
                "turn the candidates stand for)"
            )
        if turn in seen:
            raise LineError(f"{where}.turn: turn {turn} has candidates already")
        seen.add(turn)
        if turn < len(messages) and messages[turn]["role"] != "assistant":
            raise LineError(
                f"{where}.turn: messages[{turn}] is a {messages[turn]['role']} turn; candidates "
                "stand for an assistant turn (or follow the last message)"
            )
        if messages[turn - 1]["role"] != "user":
            raise LineError(
                f"{where}.turn: the conversation before turn {turn} ends with the "
                f"{messages[turn - 1]['role']}'s turn, not the user's"
            )
        prefix = messages[:turn]
        responses = _responses(entry.get("responses", []), f"{where}.responses")
        external = f"{base}:turn{turn}" if base else content_hash(prefix, responses)
        if len(external) > 200:
            raise LineError("id is too long to add :turn<i> within 200 characters")
        items.append(Item(external, prefix, responses, meta | {"turn": turn}))
    return items


_HH_TURN = re.compile(r"(?:^|\n\n)(Human|Assistant):[ ]?")


def hh_turns(transcript: Any, where: str) -> list[dict[str, str]]:
    """Split an HH-RLHF transcript ("\\n\\nHuman: …\\n\\nAssistant: …") into messages."""
    if not isinstance(transcript, str):
        raise LineError(f"{where} must be a string transcript")
    parts = _HH_TURN.split(transcript)
    if parts[0].strip():
        raise LineError(f"{where} must start with a Human: or Assistant: turn")
    turns = []
    for speaker, content in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if speaker == "Human" else "assistant"
        turns.append({"role": role, "content": content.strip()})
    if not turns:
        raise LineError(f"{where} has no Human:/Assistant: turns")
    return turns


def _split_pair(
    chosen: list[dict[str, str]], rejected: list[dict[str, str]], obj: dict[str, Any]
) -> Item:
    """Shared conversation before the final assistant turns → prompt; those turns → responses."""
    if chosen == rejected:
        raise LineError("chosen and rejected are identical")
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    for name, turns in (("chosen", chosen), ("rejected", rejected)):
        if len(turns) != shared + 1:
            raise LineError(
                f"chosen and rejected diverge at turn {shared + 1}, but {name} goes on to turn "
                f"{len(turns)}: only the final Assistant turn may differ"
            )
        if turns[-1]["role"] != "assistant":
            raise LineError(f"the final turn of {name} is not an Assistant turn")
        if not turns[-1]["content"].strip():
            raise LineError(f"the final Assistant turn of {name} is empty")
    if shared == 0:
        raise LineError("chosen and rejected share no prompt")
    messages = chosen[:shared]
    responses: list[dict[str, Any]] = [
        {"text": chosen[-1]["content"], "model": None, "meta": {}},
        {"text": rejected[-1]["content"], "model": None, "meta": {}},
    ]
    external = _external_id(obj) or content_hash(messages, responses)
    return Item(external, messages, responses, _meta(obj), ranking=[0, 1])


def parse_hh(obj: dict[str, Any]) -> Item:
    """Anthropic HH-RLHF: {"chosen": transcript, "rejected": transcript}."""
    for key in ("chosen", "rejected"):
        if key not in obj:
            raise LineError(f'an hh line needs "{key}"')
    return _split_pair(
        hh_turns(obj["chosen"], "chosen"), hh_turns(obj["rejected"], "rejected"), obj
    )


def _completion(value: Any, where: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        return [{"role": "assistant", "content": checked_text(value, where)}]
    return messages_of(value, where)


def parse_trl(obj: dict[str, Any]) -> Item:
    """TRL preference rows: {"prompt"?, "chosen", "rejected"}, strings or message lists."""
    for key in ("chosen", "rejected"):
        if key not in obj:
            raise LineError(f'a trl line needs "{key}"')
    if "prompt" in obj:
        prompt = messages_of(obj["prompt"], "prompt")
        chosen = prompt + _completion(obj["chosen"], "chosen")
        rejected = prompt + _completion(obj["rejected"], "rejected")
    else:
        chosen = messages_of(obj["chosen"], "chosen")
        rejected = messages_of(obj["rejected"], "rejected")
    return _split_pair(chosen, rejected, obj)


PARSERS: dict[str, Callable[[dict[str, Any]], Item | list[Item]]] = {  # one line, 1+ items
    # oasst, labelstudio, argilla, arena: `app.projects.parsers`
    ImportFormat.jsonl: parse_native,
    ImportFormat.hh: parse_hh,
    ImportFormat.trl: parse_trl,
}


def detect(obj: dict[str, Any]) -> str:
    """Guess the format of a file from its first object."""
    if isinstance(obj.get("data"), dict) and ("annotations" in obj or "predictions" in obj):
        return "labelstudio"
    if "model_a" in obj and "model_b" in obj and "winner" in obj:
        return "arena"
    if isinstance(obj.get("fields"), dict) or any(k.endswith(".responses") for k in obj):
        return "argilla"
    if "message_tree_id" in obj or (
        isinstance(obj.get("prompt"), dict) and "replies" in obj["prompt"]
    ):
        return "oasst"
    if "chosen" in obj and "rejected" in obj:
        chosen = obj["chosen"]
        return "hh" if "prompt" not in obj and isinstance(chosen, str) else "trl"
    return "jsonl"
