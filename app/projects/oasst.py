"""Open-Assistant message trees (`{"message_tree_id", "prompt": {…, "replies": […]}}`, one per
line), with the raw per-user rankings when the export has them.

Each prompter message with at least two ranked assistant replies becomes a prompt: the
conversation up to it as messages (multi-turn conversations are kept), the ranked replies as
responses. When the tree carries its ranking events (`events.ranking`: `{"user_id", "ranking",
"ranked_message_ids", "ranking_parent_id", "not_rankable", "ts"}`), each user's ranking is a label
by `oasst:<user id>`: `ranked_message_ids` are the replies as they were shown and `ranking`
indexes them best first. A ranking marked not rankable (every reply flawed) is a skipped label;
one that leaves out a reply the prompt has cannot be stored as a full ranking and is left out
(said in the notes). Without events, the replies' aggregated `rank` (0 best) is the prompt's
imported ranking (no labeler). A reply's `labels` (averaged aspects such as quality, humor,
toxicity) are kept in its response's meta. Deleted messages are left out.
"""

from typing import Any

from app.projects import foreign
from app.projects.foreign import Context
from app.projects.formats import Item, LineError, SourceLabel, checked_text

Branch = tuple[dict[str, Any], list[dict[str, str]], str]
"""(a prompter message, the conversation before it, where it is in the tree)."""


def _ranking_events(node: dict[str, Any], replies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ranking events of a prompter message's replies, on the message or on the replies."""
    found: list[dict[str, Any]] = []
    parent = node.get("message_id")
    for holder in [node, *replies]:
        events = holder.get("events") if isinstance(holder, dict) else None
        given = events.get("ranking") if isinstance(events, dict) else None
        for event in given if isinstance(given, list) else []:
            if not isinstance(event, dict) or event in found:
                continue
            if holder is node or event.get("ranking_parent_id") == parent:
                found.append(event)
    return found


def _user_labels(
    events: list[dict[str, Any]], ids: list[Any], external: str, where: str, ctx: Context
) -> list[SourceLabel]:
    """Each user's ranking of the replies `ids` (response order) as a label."""
    position = {message_id: i for i, message_id in enumerate(ids)}
    labels = []
    for n, event in enumerate(events):
        at = f"{where}.events.ranking[{n}]"
        user = foreign.source_id(event.get("user_id"), f"{at}.user_id")
        key = foreign.key("oasst", external, user, n)
        stamp = foreign.timestamp(event.get("ts"), f"{at}.ts")
        labeler = f"oasst:{user}"
        if event.get("not_rankable"):
            reason = "not rankable in Open-Assistant (every reply flawed)"
            labels.append(SourceLabel(labeler, key, None, None, stamp, skip_reason=reason))
            continue
        shown, order = event.get("ranked_message_ids"), event.get("ranking")
        if not isinstance(shown, list) or not isinstance(order, list):
            raise LineError(f"{at} needs ranked_message_ids and ranking lists")
        try:
            best_first = [shown[i] for i in order]
        except (IndexError, TypeError):
            raise LineError(f"{at}.ranking must index ranked_message_ids") from None
        ranked = [position[m] for m in best_first if m in position]
        if sorted(ranked) != list(range(len(ids))):
            ctx.note("rankings that leave out one of the prompt's replies were left out")
            continue
        labels.append(SourceLabel(labeler, key, {"ranking": ranked}, None, stamp))
    return labels


def _walk(
    node: dict[str, Any],
    path: list[dict[str, str]],
    where: str,
    tree_id: str,
    ctx: Context,
    out: list[Item],
) -> list[Branch]:
    """One prompter message: its prompt (if ≥ 2 replies are ranked); the branches below it."""
    if node.get("role") != "prompter":
        raise LineError(f"{where}.role must be prompter, not {node.get('role')!r}")
    path = path + [{"role": "user", "content": checked_text(node.get("text"), f"{where}.text")}]
    replies = node.get("replies") or []
    if not isinstance(replies, list):
        raise LineError(f"{where}.replies must be a list")
    ranked: list[tuple[int, int, dict[str, Any]]] = []
    children: list[Branch] = []
    for i, reply in enumerate(replies):
        here = f"{where}.replies[{i}]"
        if not isinstance(reply, dict) or reply.get("role") != "assistant":
            raise LineError(f"{here} must be an assistant message")
        if reply.get("deleted"):
            continue
        rank = reply.get("rank")
        if rank is not None and (not isinstance(rank, int) or isinstance(rank, bool) or rank < 0):
            raise LineError(f"{here}.rank must be a whole number ≥ 0 or null")
        text = checked_text(reply.get("text"), f"{here}.text")
        if rank is not None:
            ranked.append((rank, i, reply))
        turn = [{"role": "assistant", "content": text}]
        for j, child in enumerate(reply.get("replies") or []):
            if isinstance(child, dict) and not child.get("deleted"):
                children.append((child, path + turn, f"{here}.replies[{j}]"))
    if len(ranked) >= 2:
        out.append(_prompt(node, path, ranked, replies, where, tree_id, ctx))
    return children


def _prompt(
    node: dict[str, Any],
    path: list[dict[str, str]],
    ranked: list[tuple[int, int, dict[str, Any]]],
    replies: list[dict[str, Any]],
    where: str,
    tree_id: str,
    ctx: Context,
) -> Item:
    responses = []
    for rank, _, reply in ranked:
        meta: dict[str, Any] = {"oasst_message_id": reply.get("message_id"), "oasst_rank": rank}
        if isinstance(reply.get("labels"), dict):
            meta["oasst_labels"] = {
                name: value.get("value") if isinstance(value, dict) else value
                for name, value in reply["labels"].items()
            }
        model = reply["model_name"] if isinstance(reply.get("model_name"), str) else None
        responses.append({"text": reply["text"], "model": model, "meta": meta})
    message_id = node.get("message_id")
    external = (str(message_id) if message_id else f"{tree_id}:{where}")[:200]
    meta = {"oasst_tree_id": tree_id, "oasst_message_id": message_id, "lang": node.get("lang")}
    events = _ranking_events(node, replies)
    if not events:
        order = sorted(range(len(ranked)), key=lambda k: (ranked[k][0], ranked[k][1]))
        return Item(external, path, responses, meta, ranking=order)
    ids = [reply.get("message_id") for _, _, reply in ranked]
    labels = _user_labels(events, ids, external, where, ctx)
    return Item(external, path, responses, meta, labels=labels)


def parser(ctx: Context):  # type: ignore[no-untyped-def]
    """The parser of one message tree."""

    def parse(obj: dict[str, Any]) -> list[Item]:
        root = obj.get("prompt")
        if not isinstance(root, dict):
            raise LineError('an oasst line needs "prompt": the root prompter message')
        tree_id = str(obj.get("message_tree_id") or root.get("message_id") or "")
        if not tree_id:
            raise LineError("an oasst line needs message_tree_id")
        items: list[Item] = []
        pending: list[Branch] = [(root, [], "prompt")]
        while pending:  # the prompt first, then deeper turns, in tree order
            node, path, where = pending.pop(0)
            pending[:0] = _walk(node, path, where, tree_id, ctx, items)
        return items

    return parse
