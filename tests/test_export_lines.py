"""The streamed export writes the same bytes as the row builders encoded by the standard JSON
encoder, one annotation at a time (the way exports were always made)."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from app.datasets import export, templates
from app.datasets.kinds import pair_rows, prompt_row, ranking_row, rating_row, sft_row
from app.jsontext import Slot, encoded, loads, row_line, template
from app.labeling import labels
from app.labeling.models import Annotation
from app.projects.models import Prompt, Response
from tests.helpers import TIE_SHAPES, annotate, judge, judge_label, prompts_of, tricky_items

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(st.text(), json_values, max_size=5))
def test_row_line_is_the_standard_encoders_bytes(row) -> None:  # type: ignore[no-untyped-def]
    try:
        expected = (json.dumps(row, ensure_ascii=False) + "\n").encode()
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 file can hold it either way
        with pytest.raises(UnicodeEncodeError):
            row_line(row)
        return
    assert row_line(row) == expected


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_loads_reads_what_the_standard_parser_reads(value) -> None:  # type: ignore[no-untyped-def]
    text = json.dumps(value)
    got, want = loads(text), json.loads(text)
    if isinstance(want, float) and math.isnan(want):
        assert math.isnan(got)
    else:
        assert repr(got) == repr(want)


TEXTS = ["plain", 'quotes " and \\ backslash', "tab\tnew\nline", "ünïcødé — «»", "emoji \U0001f600"]


def _reference(session, project, kind: str, with_labelers: bool) -> bytes:  # type: ignore[no-untyped-def]
    """The export made the plain way: ORM annotations by prompt (id order), then by id, row
    builders, each row's source (an AI judge's label "ai", any other "human"), json.dumps."""
    from app.auth.models import User

    emails = dict(session.execute(select(User.id, User.email)).all())
    annotation_kind = {"rankings": "ranking", "pairs": "ranking", "ratings": "rating"}.get(
        kind, "demonstration"
    )
    out = []
    live = [
        a
        for batch in labels.live_annotations(
            session=session, project_id=project.id, kind=annotation_kind
        )
        for a in batch
    ]
    for a in sorted(live, key=lambda a: (a.prompt_id, a.id)):
        messages = session.get(Prompt, a.prompt_id).messages
        text = dict(
            session.execute(
                select(Response.id, Response.text).where(Response.prompt_id == a.prompt_id)
            ).all()
        )
        if kind == "rankings":
            rows = [ranking_row(messages, [text[int(r)] for r in a.payload["ranking"]])]
        elif kind == "pairs":
            rows = pair_rows(messages, [text[int(r)] for r in a.payload["ranking"]])
        elif kind == "ratings":
            rows = [rating_row(messages, text[int(r)], s) for r, s in a.payload["scores"].items()]
        else:
            rows = [sft_row(messages, a.payload["demonstration"])]
        for row in rows:
            row = row | {"source": "ai" if a.source == "ai" else "human"}
            if with_labelers:
                who = emails.get(a.user_id, "import") if a.user_id else "import"
                row = row | {"labeler": who, "annotated_at": a.created_at.isoformat()}
            out.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(out).encode()


def _items(n: int, k: int) -> list[dict]:
    lines = []
    for i in range(n):
        prompt = (
            f"question {i}: {TEXTS[i % len(TEXTS)]}"
            if i % 2
            else [
                {"role": "system", "content": "be kind"},
                {"role": "user", "content": TEXTS[i % len(TEXTS)]},
            ]
        )
        responses = [f"answer {i}.{j} {TEXTS[(i + j) % len(TEXTS)]}" for j in range(k)]
        lines.append({"id": f"q{i}", "prompt": prompt, "responses": responses})
    return lines


@pytest.mark.parametrize("with_labelers", [False, True])
def test_export_bytes_equal_the_row_builders_reference(
    session, factory, tmp_path, monkeypatch, with_labelers
) -> None:
    monkeypatch.setattr(export, "BATCH", 4)  # many batches, each with its own texts
    alice, bob = factory.user(), factory.user()
    ranking = factory.project(kind="ranking", k=3)
    factory.items(ranking, _items(9, 3), tmp_path)
    factory.items(
        ranking,
        [
            {
                "id": "g",
                "prompt": "gold",
                "responses": ["a", "b", "c"],
                "gold": {"ranking": [0, 1, 2]},
            }
        ],
        tmp_path,
    )
    prompts = prompts_of(session, ranking)
    for n, (pid, rids) in enumerate(prompts):
        first = annotate(session, ranking, pid, alice, {"ranking": rids[::-1]})
        if n % 3 == 0:  # a correction: only the newer one is live
            annotate(session, ranking, pid, alice, {"ranking": rids}, supersedes=first)
    for n, (pid, rids) in reversed(list(enumerate(prompts))):  # ids out of prompt order
        annotate(session, ranking, pid, bob if n % 2 else None, {"ranking": rids[1:] + rids[:1]})
    judged = judge(session)
    for pid, rids in prompts[::2]:  # an AI judge's labels too: every export carries them
        judge_label(session, ranking, pid, judged, {"ranking": [rids[1], rids[0], rids[2]]})

    rating = factory.project(kind="rating", k=2, rating_scale="0-5")
    factory.items(rating, _items(5, 2), tmp_path)
    for n, (pid, rids) in enumerate(prompts_of(session, rating)):
        scores = {str(rids[0]): n, str(rids[1]): [0.1, 1e-05, 2.5, 3.3333333333333335, 4][n]}
        annotate(session, rating, pid, alice, {"scores": scores}, kind="rating")
        if n % 2:
            judge_label(session, rating, pid, judged, {"scores": scores}, kind="rating")

    demo = factory.project(kind="demonstration", k=1)
    factory.items(
        demo, [{"id": f"d{i}", "prompt": x["prompt"]} for i, x in enumerate(_items(6, 1))], tmp_path
    )
    for n, (pid, _) in enumerate(prompts_of(session, demo)):
        written = (
            f"written {TEXTS[n % len(TEXTS)]}"
            if n % 2
            else [{"role": "assistant", "content": TEXTS[n % len(TEXTS)]}]
        )
        annotate(session, demo, pid, bob, {"demonstration": written}, kind="demonstration")

    for project, kind in [
        (ranking, "rankings"),
        (ranking, "pairs"),
        (rating, "ratings"),
        (demo, "sft"),
    ]:
        got = b"".join(
            export.jsonl(session=session, project=project, kind=kind, with_labelers=with_labelers)
        )
        want = _reference(session, project, kind, with_labelers)
        assert got == want, kind
        assert got.count(b"\n") >= 5, kind
        if kind != "sft":
            assert b'"source": "ai"' in got and b'"source": "human"' in got, kind
    got = b"".join(export.jsonl(session=session, project=ranking, kind="prompts"))
    stored = session.scalars(
        select(Prompt.messages)
        .where(Prompt.project_id == ranking.id, Prompt.is_gold.is_(False))
        .order_by(Prompt.id)
    )
    want = "".join(json.dumps(prompt_row(m), ensure_ascii=False) + "\n" for m in stored)
    assert got == want.encode()


def test_the_rankings_template_writes_the_row_builders_bytes(
    session, factory, tmp_path, monkeypatch
) -> None:
    """Rankings without labelers or answers are written from templates of `ranking_row`
    (`templates.RankingLines`): the same bytes as the rows built one by one, for flat
    rankings, ties, singleton groups, everything tied (no row), string and conversation
    prompts, and texts holding %-format characters, control characters and escapes."""
    formed = []
    original = templates._form
    monkeypatch.setattr(templates, "_form", lambda *key: formed.append(key) or original(*key))
    monkeypatch.setattr(export, "BATCH", 3)
    alice = factory.user()
    project = factory.project(kind="ranking", k=4)
    factory.items(project, tricky_items(8, conversation_every=3), tmp_path)
    for n, (pid, rids) in enumerate(prompts_of(session, project)):
        for shape in TIE_SHAPES[n % 2 :: 2] + [TIE_SHAPES[n % len(TIE_SHAPES)]]:
            annotate(session, project, pid, alice, {"ranking": shape(rids)})

    got = b"".join(export.jsonl(session=session, project=project, kind="rankings"))
    rows = [
        row
        for batch in export.row_batches(session=session, project=project, kind="rankings")
        for row in batch
    ]
    assert got == "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    assert got == b"".join(map(row_line, rows))
    assert any("ranks" in row for row in rows) and any("ranks" not in row for row in rows)
    assert any(isinstance(row["prompt"], list) for row in rows)
    assert formed, "the template path was not taken"
    made = sum(1 for line in got.splitlines())
    stored = session.scalar(
        select(func.count()).select_from(Annotation).where(Annotation.project_id == project.id)
    )
    assert 0 < made < stored  # the all-tied rankings wrote no row


plain_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)))


@settings(max_examples=300, deadline=None)
@given(st.lists(plain_text, min_size=1, max_size=5), st.dictionaries(plain_text, json_values))
def test_a_template_filled_with_encoded_strings_is_the_rows_line(texts, extra) -> None:  # type: ignore[no-untyped-def]
    holes = [Slot(i) for i in range(len(texts))][::-1]  # holes need not come in index order
    row = {"prompt": holes[0], "responses": holes[1:], "more": extra, "%s": "100% %b"}
    made = template(row)
    filled = {
        "prompt": texts[holes[0].hole],
        "responses": [texts[h.hole] for h in holes[1:]],
        "more": extra,
        "%s": "100% %b",
    }
    if made is None:  # something row_line leaves to the standard encoder
        assert jsontext_fallback_needed(extra)
        return
    fmt, order = made
    assert fmt % tuple(encoded(texts[i]) for i in order) == row_line(filled)
    assert row_line(filled) == (json.dumps(filled, ensure_ascii=False) + "\n").encode()


def jsontext_fallback_needed(value) -> bool:  # type: ignore[no-untyped-def]
    """Whether the value holds a string orjson refuses (a lone surrogate)."""
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    return False
