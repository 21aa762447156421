"""The rankings templates are a speed-up of the rankings builder, nothing more: for any
rankings (flat, tied, groups of one written as lists, all tied, one response) of any texts
(unicode, escapes, quotes, %-format and control characters), their lines and Parquet columns
are the builder's rows, byte for byte and value for value."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.datasets import rows, templates, writer
from app.datasets.kinds import preference
from app.jsontext import row_line
from app.labeling import ranks
from app.labeling.labels import Label, PromptLabels, PromptRow
from tests.helpers import TRICKY

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24) | (
    st.sampled_from(TRICKY)
)
"""Any text a database can hold (no lone surrogates), and the project's tricky ones."""


@st.composite
def rankings(draw, ids: list[int]) -> list:  # type: ignore[no-untyped-def]
    """A ranking of `ids` as labelers send it: best first, tied ids grouped in a list, a group
    of one written either as the id or as a list of it."""
    order = draw(st.permutations(ids))
    groups = [[order[0]]]
    for rid in order[1:]:
        if draw(st.booleans()):
            groups.append([rid])
        else:
            groups[-1].append(rid)
    return [g if len(g) > 1 or draw(st.booleans()) else g[0] for g in groups]


@st.composite
def prompts(draw):  # type: ignore[no-untyped-def]
    """(messages, responses, payloads, ai) of one prompt: a string prompt or a conversation, K
    responses (1–9) and a few rankings of them, each a person's or an AI judge's."""
    k = draw(st.integers(1, 9))
    ids = list(range(100, 100 + k))
    answers = draw(st.lists(texts, min_size=k, max_size=k))
    asked = draw(texts)
    messages = [{"role": "user", "content": asked}]
    if draw(st.booleans()):
        messages = [{"role": "system", "content": draw(texts)}, *messages]
    payloads = [{"ranking": r} for r in draw(st.lists(rankings(ids), min_size=1, max_size=5))]
    ai = draw(st.lists(st.booleans(), min_size=len(payloads), max_size=len(payloads)))
    texts_of = {rid: (text, None) for rid, text in zip(ids, answers, strict=True)}
    return messages, texts_of, payloads, ai


BUILD = rows.builder(session=None, project=None, params={"kind": "rankings", "method": "all"})  # type: ignore[arg-type]


@settings(max_examples=400, deadline=None)
@given(st.lists(prompts(), min_size=1, max_size=4))
def test_template_lines_and_columns_are_the_builders_rows(found) -> None:  # type: ignore[no-untyped-def]
    items = [
        (PromptRow(n, f"p{n}", json.dumps(messages)), payloads, ai, responses)
        for n, (messages, responses, payloads, ai) in enumerate(found)
    ]
    want = []
    for prompt, payloads, ai, responses in items:
        labels = [
            Label(n, None, "ranking", payload, ai=of)
            for n, (payload, of) in enumerate(zip(payloads, ai, strict=True))
        ]
        messages = json.loads(prompt.messages)
        made = BUILD(PromptLabels(prompt.id, prompt.external_id, messages, responses, labels))
        if made:
            want.append((prompt.external_id, messages, [m.row for m in made]))

    got = list(templates.encoded_rankings(iter(items), BUILD))

    assert [external_id for external_id, _ in got] == [external_id for external_id, *_ in want]
    for (_, made), (_, messages, built) in zip(got, want, strict=True):
        lines, count = writer.lines_of(made)
        assert count == len(built)
        assert lines == b"".join(map(row_line, built))
        assert lines == "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in built).encode()
        if len(messages) > 1:  # a conversation: the builder's own rows
            assert made == built
            continue
        assert type(made) is writer.Encoded  # every string prompt's shape has a template
        names = {name for row in built for name in row}
        assert set(made.columns) == names
        for name in names:
            column = [row.get(name) for row in built]
            assert made.columns[name] == column
            assert {writer._tag(v) for v in column if v is not None} == {made.tags[name]}


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 9).flatmap(lambda k: rankings(list(range(k)))))
def test_preference_reads_a_ranking_as_its_groups(ranking) -> None:  # type: ignore[no-untyped-def]
    """The quick read of a flat ranking and the read of groups agree; a ranking of one group
    (one response, or everything tied) states no preference."""
    found = preference(ranking)
    if len(ranks.groups(ranking)) < 2:
        assert found is None
    else:
        assert found is not None
        assert list(found.best_first) == ranks.order(ranking)
        assert list(found.places) == ranks.ranks(ranking)
