"""The rankings snapshot of every label writes string prompts' rows without building them
(`templates.encoded_rankings`: template lines and Parquet columns): its files must be the files
the row-by-row path writes, byte for byte and table for table."""

import json

import pyarrow.parquet as pq

from app.aggregation import service as aggregation
from app.datasets import rows, writer
from app.labeling.labels import prompt_labels
from tests.helpers import TIE_SHAPES, annotate, judge, judge_label, prompts_of, tricky_items

PARAMS = {"kind": "rankings", "method": "all", "split": 0.6, "sources": "all"}


def _built(session, project, excluded):  # type: ignore[no-untyped-def]
    """The same snapshot's rows, each built as a dict by the rankings builder."""
    build = rows.builder(session=session, project=project, params=PARAMS)
    for labels in prompt_labels(session, project.id, ("ranking",), excluded, sources=build.sources):
        made = build(labels)
        if made:
            yield labels.external_id, [m.row for m in made]


def test_encoded_rankings_write_the_row_by_row_files(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=4)
    factory.items(
        project, tricky_items(24, conversation_every=5, suffix=" «ü» \U0001f600"), tmp_path
    )
    alice, bob, troll = factory.user(), factory.user(), factory.user()
    judged = judge(session)
    shapes = TIE_SHAPES
    for n, (pid, rids) in enumerate(prompts_of(session, project)):
        first = annotate(session, project, pid, alice, {"ranking": shapes[n % 5](rids)})
        if n % 3 == 0:  # superseded: only the newer one counts
            annotate(session, project, pid, alice, {"ranking": rids}, supersedes=first)
        annotate(session, project, pid, bob, {"ranking": shapes[(n + 1) % 5](rids)})
        annotate(session, project, pid, troll, {"ranking": rids[::-1]})
        if n % 4 == 0:
            annotate(session, project, pid, None, {"ranking": shapes[(n + 3) % 5](rids)})
        if n % 2 == 0:  # an AI judge's label, its rows "ai"
            judge_label(session, project, pid, judged, {"ranking": shapes[(n + 2) % 5](rids)})
    aggregation.exclude_labeler(session=session, user_id=troll.id, project_id=project.id)
    session.commit()
    excluded = aggregation.excluded_user_ids(session=session, project_id=project.id)

    fast_items = list(rows.snapshot_rows(session=session, project=project, params=PARAMS))
    assert any(type(made) is writer.Encoded for _, made in fast_items), "no row was encoded"
    assert any(type(made) is list for _, made in fast_items), "no conversation was built"
    fast, slow = tmp_path / "fast", tmp_path / "slow"
    fast.mkdir(), slow.mkdir()
    fast_written, fast_json = writer.write_files(fast, iter(fast_items), PARAMS)
    slow_written, slow_json = writer.write_files(slow, _built(session, project, excluded), PARAMS)

    assert fast_written == slow_written and fast_json == slow_json == ["prompt", "responses"]
    for split in writer.SPLITS:
        assert (fast / f"{split}.jsonl").read_bytes() == (slow / f"{split}.jsonl").read_bytes()
        a, b = pq.read_table(fast / f"{split}.parquet"), pq.read_table(slow / f"{split}.parquet")
        assert a.schema == b.schema and a.equals(b)
    lines = [
        json.loads(line)
        for split in writer.SPLITS
        for line in (fast / f"{split}.jsonl").read_bytes().splitlines()  # not at U+2028
    ]
    assert any("ranks" in row for row in lines) and any("ranks" not in row for row in lines)
    assert {row["source"] for row in lines} == {"human", "ai"}
    # alice's newer ranking, bob's, the imports and the judge's; the troll's and the all-tied
    # ones left out
    untied = sum(1 for _, made in _built(session, project, excluded) for _ in made)
    assert len(lines) == untied and 24 < untied < 24 * 4


def test_string_prompts_alone_keep_native_parquet_columns(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=3)
    items = [{"id": f"s{i}", "prompt": f"q {i}", "responses": ["a", "b", "c"]} for i in range(6)]
    factory.items(project, items, tmp_path)
    user = factory.user()
    for pid, rids in prompts_of(session, project):
        annotate(session, project, pid, user, {"ranking": [rids[2], [rids[0], rids[1]]]})
    out = tmp_path / "out"
    out.mkdir()
    made = rows.snapshot_rows(session=session, project=project, params=PARAMS | {"split": 1.0})
    written, json_columns = writer.write_files(out, made, PARAMS | {"split": 1.0})
    assert json_columns == [] and written.rows == {"train": 6, "test": 0}
    table = pq.read_table(out / "train.parquet")
    assert table.schema.names == ["prompt", "responses", "ranks", "source"]
    assert table.to_pylist()[0] == {
        "prompt": "q 0",
        "responses": ["c", "a", "b"],
        "ranks": [0, 1, 1],
        "source": "human",
    }


def test_another_projects_prompts_between_ours_stay_out(session, factory, tmp_path) -> None:
    """Prompts are read by id range, without a project condition on their annotations: a
    prompt of another project imported between two of ours must not bring its labels."""
    from app.datasets import export

    ours, theirs = factory.project(kind="ranking", k=2), factory.project(kind="ranking", k=2)
    for n in range(3):  # ours, theirs, ours, …: their prompt ids fall inside our range
        for project, name in ((ours, "ours"), (theirs, "theirs")):
            items = [{"id": f"{name}{n}", "prompt": f"{name} {n}", "responses": ["a", "b"]}]
            factory.items(project, items, tmp_path)
    user = factory.user()
    for project in (ours, theirs):
        for pid, rids in prompts_of(session, project):
            annotate(session, project, pid, user, {"ranking": rids})
    kinds = {"kind": "rankings", "method": "all", "split": 1.0}
    made = rows.snapshot_rows(session=session, project=ours, params=kinds)
    assert [external_id for external_id, _ in made] == ["ours0", "ours1", "ours2"]
    for kind in ("rankings", "pairs"):
        lines = b"".join(export.jsonl(session=session, project=ours, kind=kind)).splitlines()
        assert [json.loads(line)["prompt"] for line in lines] == ["ours 0", "ours 1", "ours 2"]
