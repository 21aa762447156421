"""Snapshots say where their labels came from and keep people's labels unless asked: an AI
judge (`judge:tiny-rm`, users.source "ai") labels beside people, and

- a default snapshot (`sources` human) is the snapshot of the same project without the judge,
  byte for byte and hash for hash;
- `sources` ai is the judge's labels alone, as if they were the only labels;
- `sources` all is everyone's, a consensus of both a `mixed` row, where the project accepts
  the judge's labels (`judge_accepts`); one it does not accept stands in only where no person
  labeled (`sources.standing`);

for rankings, pairs, kto, ratings and the sft of top-ranked responses, by consensus and one
row per annotation; the card states the shares, the record the sources; a wrong value is
refused where it is typed (API, CLI, page)."""

import json
import re

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import app
from app.datasets import service
from app.datasets.models import Snapshot
from app.datasets.schemas import SnapshotCreate
from app.labeling.labels import Label
from app.labeling.sources import Sources, is_ai, keeps, row_source, standing
from tests.helpers import annotate, judge, judge_label, prompts_of, ranking_items
from tests.test_pages import login

HTML = {"Accept": "text/html"}
SOURCE_BY_PROMPT = ["human", "human", "mixed", "mixed", "ai", "ai"]
"""Who labeled each of the six prompts: people alone, people and the judge, the judge alone."""

# Rankings of (a, b, c) by position. On prompts 2 and 3 the people disagree on a and b and the
# judge breaks the tie the other way, so a consensus with the judge differs from one without.
HUMAN_1, HUMAN_2, JUDGE_MIXED, JUDGE_ALONE = [0, 1, 2], [1, 0, 2], [1, 2, 0], [2, 1, 0]
# Ratings (0–5) of (a, b): the judge disagrees with the person.
SCORES_HUMAN, SCORES_MIXED_HUMAN, SCORES_MIXED_JUDGE, SCORES_JUDGE = (5, 1), (4, 2), (0, 5), (1, 5)


@pytest.fixture(autouse=True)
def artifacts(tmp_path, monkeypatch, engine):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def _project(  # type: ignore[no-untyped-def]
    session, factory, tmp_path, kind: str, people: bool, judge_as, accepted: bool = True
):
    """A project of six prompts labeled as SOURCE_BY_PROMPT says: `people` (two labelers) on
    prompts 0–3 if asked, and the judge's labels on prompts 2–5 stored by `judge_as` ("ai":
    the judge annotator, as a judge run stores them, `accepted` or not; a user: the same
    payloads as that person's; None: left out)."""
    if kind == "ranking":
        project = factory.project(kind="ranking", k=3)
    else:
        project = factory.project(kind="rating", k=2, rating_scale="0-5")
    factory.items(project, ranking_items(6, k=3 if kind == "ranking" else 2), tmp_path)
    first, second = factory.user(), factory.user()
    judged = judge(session) if judge_as == "ai" else judge_as

    def payload(order_or_scores, rids):  # type: ignore[no-untyped-def]
        if kind == "ranking":
            return {"ranking": [rids[i] for i in order_or_scores]}
        return {"scores": {str(rid): s for rid, s in zip(rids, order_or_scores, strict=True)}}

    def store(pid, user, given, rids) -> None:  # type: ignore[no-untyped-def]
        if user is None:
            return
        if judge_as == "ai" and user is judged:
            given = payload(given, rids)
            judge_label(session, project, pid, user, given, kind=kind, accepted=accepted)
        else:
            annotate(session, project, pid, user, payload(given, rids), kind=kind)

    for n, (pid, rids) in enumerate(prompts_of(session, project)):
        if kind == "ranking":
            mine, theirs = HUMAN_1, (HUMAN_2 if n in (2, 3) else None)
            judged_as = JUDGE_MIXED if n in (2, 3) else JUDGE_ALONE
        else:
            mine = SCORES_HUMAN if n < 2 else SCORES_MIXED_HUMAN
            theirs = None
            judged_as = SCORES_MIXED_JUDGE if n in (2, 3) else SCORES_JUDGE
        if people and n < 4:
            store(pid, first, mine, rids)
            if theirs is not None:
                store(pid, second, theirs, rids)
        if n >= 2:
            store(pid, judged, judged_as, rids)
    return project


def _rows(session, project, **params):  # type: ignore[no-untyped-def]
    made, _ = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(split=1.0, **params)
    )
    path = service.snapshot_files(snapshot=made)["train.jsonl"]
    return made, [json.loads(line) for line in path.read_text().splitlines()]


def _without_source(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "source"} for row in rows]


def _prompt_number(row: dict) -> int:
    return int(row["prompt"].removeprefix("question "))


KINDS = [
    ("ranking", {"kind": "rankings"}),
    ("ranking", {"kind": "rankings", "method": "all"}),
    ("ranking", {"kind": "rankings", "method": "borda"}),
    ("ranking", {"kind": "pairs"}),
    ("ranking", {"kind": "pairs", "method": "all"}),
    ("ranking", {"kind": "kto"}),
    ("ranking", {"kind": "kto", "method": "all"}),
    ("ranking", {"kind": "sft", "include_top_ranked": True}),
    ("rating", {"kind": "ratings"}),
    ("rating", {"kind": "kto"}),
    ("rating", {"kind": "kto", "method": "all"}),
]


@pytest.mark.parametrize(("project_kind", "params"), KINDS, ids=lambda x: str(x))
def test_each_source_keeps_its_labels_before_the_consensus(
    session, factory, tmp_path, project_kind, params
) -> None:
    with_judge = _project(session, factory, tmp_path, project_kind, True, "ai")
    before_judges = _project(session, factory, tmp_path, project_kind, True, None)
    judge_only = _project(session, factory, tmp_path, project_kind, False, factory.user())
    all_people = _project(session, factory, tmp_path, project_kind, True, factory.user())

    # The default: people's labels only, exactly the snapshot made before the judge labeled.
    default, rows = _rows(session, with_judge, **params)
    before, before_rows = _rows(session, before_judges, **params)
    assert default.params["sources"] == "human" and rows
    assert rows == before_rows and default.content_hash == before.content_hash
    assert {row["source"] for row in rows} == {"human"}
    assert all(_prompt_number(row) < 4 for row in rows)

    # ai: the judge's labels as if they were the only ones.
    _, ai_rows = _rows(session, with_judge, sources="ai", **params)
    _, alone = _rows(session, judge_only, **params)
    assert ai_rows and _without_source(ai_rows) == _without_source(alone)
    assert {row["source"] for row in ai_rows} == {"ai"}

    # all: everyone's, each row saying whose labels made it.
    made, every_rows = _rows(session, with_judge, sources="all", **params)
    _, as_people = _rows(session, all_people, **params)
    assert made.params["sources"] == "all"
    assert _without_source(every_rows) == _without_source(as_people)
    consensus = params.get("method") != "all"
    for row in every_rows:
        expected = SOURCE_BY_PROMPT[_prompt_number(row)]
        if not consensus and expected == "mixed":  # one label per row: a person's or the judge's
            assert row["source"] in ("human", "ai"), row
        else:
            assert row["source"] == expected, row
    if consensus:
        assert "mixed" in {row["source"] for row in every_rows}
        # the judge changed the consensus of the prompts both labeled
        mixed = [row for row in every_rows if row["source"] == "mixed"]
        people = [row for row in rows if _prompt_number(row) in (2, 3)]
        assert _without_source(mixed) != _without_source(people)


@pytest.mark.parametrize(("project_kind", "params"), KINDS, ids=lambda x: str(x))
def test_a_judge_label_the_project_does_not_accept_stands_in_only_where_no_person_labeled(
    session, factory, tmp_path, project_kind, params
) -> None:
    """`sources` all with the judge's labels below `judge_accepts`: where people labeled, the
    consensus is theirs alone (an unsure judge neither outvotes nor ties them); where no person
    did, the judge's label stands in. One row per annotation keeps every label."""
    unsure = _project(session, factory, tmp_path, project_kind, True, "ai", accepted=False)
    sure = _project(session, factory, tmp_path, project_kind, True, "ai", accepted=True)
    _, people = _rows(session, unsure, **params)
    _, judge_alone = _rows(session, unsure, sources="ai", **params)
    _, every_rows = _rows(session, unsure, sources="all", **params)
    _, accepted_rows = _rows(session, sure, sources="all", **params)
    if params.get("method") == "all":
        assert every_rows == accepted_rows
        return
    expected = people + [row for row in judge_alone if _prompt_number(row) >= 4]
    assert every_rows == sorted(expected, key=_prompt_number)
    assert [row["source"] for row in every_rows] == [
        "human" if _prompt_number(row) < 4 else "ai" for row in every_rows
    ]
    assert every_rows != accepted_rows  # accepted, the judge's label joins the people's


def test_standing_is_one_rule() -> None:
    person, sure, unsure = (
        Label(1, 1, "ranking", {}, ai=False),
        Label(2, 9, "ranking", {}, ai=True, accepted=True),
        Label(3, 9, "ranking", {}, ai=True, accepted=False),
    )
    assert standing([person, sure, unsure]) == [person, sure]
    assert standing([person, unsure]) == [person]
    assert standing([unsure]) == [unsure] and standing([sure, unsure]) == [sure, unsure]
    assert standing([]) == []


def test_the_card_states_the_shares_and_the_record_the_sources(session, factory, tmp_path) -> None:
    project = _project(session, factory, tmp_path, "ranking", True, "ai")
    made, rows = _rows(session, project, kind="rankings", sources="all")
    assert [row["source"] for row in rows] == SOURCE_BY_PROMPT
    files = service.snapshot_files(snapshot=made)
    card = files["README.md"].read_text()
    assert "labels kept (`sources`): all" in card
    # rows: 2 of each; labels: 1 + 1 + 2 + 2 people's, 4 the judge's
    assert "| human | 2 (33.3%) | 6 (60.0%) |" in card
    assert "| ai | 2 (33.3%) | 4 (40.0%) |" in card
    assert "| mixed | 2 (33.3%) | – |" in card
    manifest = json.loads(files["manifest.json"].read_text())
    assert manifest["params"]["sources"] == "all"
    session.rollback()
    assert session.get(Snapshot, made.id).params["sources"] == "all"

    every, _ = _rows(session, project, kind="rankings", method="all")
    card = service.snapshot_files(snapshot=every)["README.md"].read_text()
    assert "labels kept (`sources`): human" in card and "left out before any consensus" in card
    assert "| human | 6 (100.0%) | 6 (100.0%) |" in card and "| ai | 0 (0.0%) | 0 (0.0%) |" in card

    judged, _ = _rows(session, project, kind="pairs", sources="ai")
    card = service.snapshot_files(snapshot=judged)["README.md"].read_text()
    # the judge's four rankings, three untied pairs each; every pair of one ranking: one label
    assert "| ai | 12 (100.0%) | 4 (100.0%) |" in card


def test_the_same_labels_with_other_sources_are_another_snapshot(
    session, factory, tmp_path
) -> None:
    project = _project(session, factory, tmp_path, "ranking", True, "ai")
    human, _ = _rows(session, project, kind="rankings")
    again, _ = _rows(session, project, kind="rankings", sources="human")
    assert again.id == human.id  # the default is "human": the same parameters
    ai, _ = _rows(session, project, kind="rankings", sources="ai")
    assert ai.id != human.id and ai.previous_id == human.id
    assert ai.content_hash != human.content_hash


@pytest.mark.parametrize(
    "params",
    [
        {"kind": "rankings"},
        {"kind": "pairs", "weighting": "reliability"},
        {"kind": "sft", "include_top_ranked": True, "weighting": "reliability"},
    ],
    ids=lambda x: str(x),
)
def test_a_judge_labeling_changes_no_default_snapshot(session, factory, tmp_path, params) -> None:
    """The same project before and after a judge labels it: the default snapshot is the one
    already made (reliability weights and α fitted on people's labels alone too)."""
    project = _project(session, factory, tmp_path, "ranking", True, None)
    before, rows = _rows(session, project, **params)
    judged = judge(session)
    for n, (pid, rids) in enumerate(prompts_of(session, project)):
        if n >= 2:
            judge_label(session, project, pid, judged, {"ranking": [rids[2], rids[1], rids[0]]})
    after, created = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(split=1.0, **params)
    )
    assert not created and after.id == before.id
    with_ai, _ = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(split=1.0, sources="all", **params)
    )
    if "weighting" in params:
        assert str(judged.id) not in before.params["weights"]
        assert str(judged.id) in with_ai.params["weights"]


def test_a_judge_labeling_changes_no_normalised_ratings(session, factory, tmp_path) -> None:
    """Per-labeler z-scores pool the project's ratings for a labeler with one rating: the
    default snapshot pools people's alone."""
    project = factory.project(kind="rating", k=1, rating_scale="0-5")
    factory.items(project, ranking_items(6, k=1), tmp_path)
    steady, once = factory.user(), factory.user()
    prompts = prompts_of(session, project)
    for n, (pid, (rid,)) in enumerate(prompts[:4]):
        annotate(session, project, pid, steady, {"scores": {str(rid): n + 1}}, kind="rating")
    pid, (rid,) = prompts[0]
    annotate(session, project, pid, once, {"scores": {str(rid): 4}}, kind="rating")
    params = {"kind": "ratings", "normalize": True}
    before, _ = _rows(session, project, **params)
    judged = judge(session)
    for n, (pid, (rid,)) in enumerate(prompts):
        judge_label(session, project, pid, judged, {"scores": {str(rid): 5 * (n % 2)}}, "rating")
    after, created = service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(split=1.0, **params)
    )
    assert not created and after.id == before.id
    _, pooled = _rows(session, project, sources="all", **params)
    # the judge rated every prompt, unaccepted: it stands in where no person rated
    assert {row["source"] for row in pooled} == {"human", "ai"}


def test_the_rule_has_one_owner() -> None:
    assert is_ai("ai") and not is_ai("labeler") and not is_ai("import")
    assert keeps(Sources.human, "import") and keeps(Sources.human, "labeler")
    assert not keeps(Sources.human, "ai") and keeps(Sources.ai, "ai")
    assert not keeps(Sources.ai, "import") and keeps(Sources.all, "ai")
    assert row_source([False, False]) == "human" and row_source([True]) == "ai"
    assert row_source([True, False]) == "mixed"
    assert type(row_source([True])) is str  # rows hold plain text (the encoders' fast path)


def test_an_imported_label_is_human(session, factory, tmp_path) -> None:
    """Label-less imported preferences (HH's) and another tool's annotators are people."""
    project = factory.project(kind="ranking", k=2)
    factory.items(project, ranking_items(2, k=2), tmp_path)
    [(first, (a, b)), (second, (c, d))] = prompts_of(session, project)
    annotate(session, project, first, None, {"ranking": [a, b]})
    judge_label(session, project, second, judge(session), {"ranking": [d, c]})
    _, rows = _rows(session, project, kind="rankings", method="all")
    assert rows == [
        {"prompt": "question 0", "responses": ["answer 0.0", "answer 0.1"], "source": "human"}
    ]


# --- refused where it is typed -------------------------------------------------------------


def _snapshots(session) -> int:  # type: ignore[no-untyped-def]
    session.rollback()
    return session.scalar(select(func.count()).select_from(Snapshot))


def test_the_api_refuses_unknown_sources_naming_the_field(client, factory, session) -> None:
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    url = f"/api/v1/projects/{project.id}/snapshots"
    for wrong in ("robots", "AI", "", None, ["ai"], "human,ai"):
        body = {"kind": "rankings", "sources": wrong}
        refused = client.post(url, json=body, headers=admin.headers)
        assert refused.status_code == 422, (wrong, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["body", "sources"], wrong
    assert _snapshots(session) == 0
    for right in ("human", "ai", "all"):
        made = client.post(url, json={"kind": "rankings", "sources": right}, headers=admin.headers)
        assert made.status_code == 201 and made.json()["params"]["sources"] == right


def test_the_cli_refuses_unknown_sources_and_takes_the_others(session, factory, tmp_path) -> None:
    project = _project(session, factory, tmp_path, "ranking", True, "ai")
    runner = CliRunner()
    refused = runner.invoke(
        app, ["snapshot", project.name, "--kind", "rankings", "--sources", "robots"]
    )
    assert refused.exit_code == 2
    assert "--sources" in refused.output and "'human', 'ai' or 'all'" in refused.output
    assert _snapshots(session) == 0
    made = runner.invoke(
        app, ["snapshot", project.name, "--kind", "rankings", "--sources", "ai", "--json"]
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["params"]["sources"] == "ai"
    made = runner.invoke(app, ["snapshot", project.name, "--kind", "pairs", "--json"])
    assert json.loads(made.stdout)["params"]["sources"] == "human"  # the default
    listed = runner.invoke(app, ["snapshots", project.name]).output.splitlines()
    assert [line.rsplit(" ", 1)[-1] for line in listed] == ["sources=human", "sources=ai"]


def test_the_form_offers_sources_and_names_a_wrong_one(client, factory, session, tmp_path) -> None:
    admin = factory.user("admin")
    token = login(client, admin)
    for kind in ("ranking", "rating", "demonstration"):
        project = factory.project(kind=kind, k=1 if kind == "demonstration" else 2)
        page = client.get(f"/admin/projects/{project.id}/snapshots").text
        form = re.search(r'<form[^>]*id="snapshot-form".*?</form>', page, re.S).group(0)
        offered = re.search(r'<select name="sources".*?</select>', form, re.S).group(0)
        assert re.findall(r'<option value="([^"]+)"', offered) == ["human", "ai", "all"], kind

    project = _project(session, factory, tmp_path, "ranking", True, "ai")
    url = f"/admin/projects/{project.id}/snapshots"
    bad = client.post(
        url, data={"csrf_token": token, "kind": "rankings", "sources": "robots"}, headers=HTML
    )
    assert bad.status_code == 422
    error = re.search(r'<p class="error" role="alert">(.*?)</p>', bad.text, re.S).group(1)
    assert error.startswith("Labels from:") and "human" in error
    assert _snapshots(session) == 0
    made = client.post(url, data={"csrf_token": token, "kind": "rankings", "sources": "all"})
    assert made.status_code == 200 and "Snapshot <a" in made.text
    session.rollback()  # a new read: the form's commit is another session's
    snapshot = session.scalars(select(Snapshot)).one()
    assert snapshot.params["sources"] == "all"
    listed = client.get(url).text
    assert "sources=all" in listed  # the parameters column: what went in
    made = client.post(url, data={"csrf_token": token, "kind": "pairs"})  # no field: human
    assert made.status_code == 200
    session.rollback()
    pairs = session.scalars(select(Snapshot).where(Snapshot.kind == "pairs")).one()
    assert pairs.params["sources"] == "human"


# --- exports ---------------------------------------------------------------------------------


def test_exports_carry_every_labels_source(session, factory, tmp_path) -> None:
    """An export is every label, the judge's too, each saying where it came from: a row's
    `source`; in Label Studio the judge as the annotation's completed_by and the task's
    `ai_annotations`; in Argilla the judge as the response's user."""
    from app.datasets import export, tool_export
    from app.labeling.models import Annotation

    project = _project(session, factory, tmp_path, "ranking", True, "ai")
    judged = judge(session)
    rows = [
        json.loads(line)
        for block in export.jsonl(session=session, project=project, kind="rankings")
        for line in block.decode().splitlines()
    ]
    assert [(_prompt_number(r), r["source"]) for r in rows] == [
        (0, "human"), (1, "human"), (2, "human"), (2, "human"), (2, "ai"),
        (3, "human"), (3, "human"), (3, "ai"), (4, "ai"), (5, "ai"),
    ]  # fmt: skip
    with_labelers = [
        json.loads(line)
        for block in export.jsonl(
            session=session, project=project, kind="pairs", with_labelers=True
        )
        for line in block.decode().splitlines()
    ]
    assert {r["labeler"] for r in with_labelers if r["source"] == "ai"} == {"judge:tiny-rm"}
    assert "judge:tiny-rm" not in {r["labeler"] for r in with_labelers if r["source"] == "human"}

    ai_ids = set(
        session.scalars(
            select(Annotation.id).where(
                Annotation.project_id == project.id, Annotation.source == "ai"
            )
        )
    )

    def tasks(tool: str) -> list[dict]:
        blocks = tool_export.counted_json(session=session, project=project, tool=tool)
        return json.loads(b"".join(b for b, _ in blocks))

    studio = tasks("labelstudio")
    for n, task in enumerate(studio):
        by = {a["id"]: a["completed_by"] for a in task["annotations"]}
        listed = task["meta"].get("ai_annotations", [])
        assert set(listed) == {i for i in by if i in ai_ids}, n
        assert all(by[i] == judged.id for i in listed) and judged.id not in (
            by[i] for i in by if i not in listed
        )
        assert bool(listed) == (n >= 2)
    argilla = tasks("argilla")
    users = [{r["user_id"] for r in record["responses"]["ranking"]} for record in argilla]
    assert [str(judged.id) in u for u in users] == [False, False, True, True, True, True]
