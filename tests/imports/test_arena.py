"""Chatbot Arena battles: K=2 prompts with their models, one label per battle by its judge."""

import json

import pytest
from sqlalchemy import func, select

from app.aggregation import service as aggregation
from app.errors import Invalid
from app.labeling.models import Annotation
from app.projects import importer
from app.projects.models import Prompt, Response
from tests.imports.common import FIXTURES, labels


@pytest.mark.parametrize("name", ["arena_battles.json", "arena_battles.jsonl"])
def test_battles_import_with_their_judges(session, factory, name) -> None:
    project = factory.project(kind="ranking", k=2)
    report = importer.import_file(session=session, project=project, path=FIXTURES / name)
    assert report.format == "arena"
    assert (report.imported, report.labels, report.labelers) == (4, 4, 2)
    found = labels(session, project.id)
    assert [x["labeler"] for x in found] == [
        "arena:arena_user_973",
        "arena:arena_user_973",
        "arena:arena_user_42",
        "arena:arena_user_42",
    ]
    assert found[0]["payload"]["ranking"] == [
        "OpenCL is an open standard; CUDA is NVIDIA's own platform.",
        "OpenCL and CUDA are two different programming models.",
    ]
    # Both kinds of tie are a tied pair.
    assert [len(x["payload"]["ranking"]) for x in found] == [2, 1, 1, 2]
    meta = session.scalar(
        select(Prompt.meta).where(Prompt.external_id == "90bfd142157948aba01931726c888e7f")
    )
    assert meta["arena_winner"] == "tie (bothbad)"
    models = session.scalars(select(Response.model).order_by(Response.id)).all()
    assert models[:2] == ["chatglm-6b", "koala-13b"]
    # A two-turn battle: the first message is the prompt, the rest of each conversation a
    # response.
    cat = session.scalar(select(Prompt).where(Prompt.external_id.startswith("e0d41")))
    assert cat.messages == [{"role": "user", "content": "Write a limerick about a cat."}]
    texts = session.scalars(
        select(Response.text).where(Response.prompt_id == cat.id).order_by(Response.position)
    ).all()
    assert texts[0] == (
        "A cat with a hat sat on a mat.\n\nUser: Make it rhyme better.\n\n"
        "Assistant: There once was a cat from Peru, who dreamed of a shoe..."
    )
    first = session.scalar(select(Annotation).order_by(Annotation.id))
    assert first.created_at.timestamp() == pytest.approx(1682351591.1322)


def test_the_leaderboard_rates_the_battles_models(session, factory) -> None:
    project = factory.project(kind="ranking", k=2)
    importer.import_file(session=session, project=project, path=FIXTURES / "arena_battles.json")
    board = aggregation.model_leaderboard(session=session, project=project, rounds=50)
    assert board.comparisons == 4
    names = {row.model for row in board.rows}
    assert names == {"chatglm-6b", "koala-13b", "oasst-pythia-12b", "alpaca-13b"}
    top = max(board.rows, key=lambda row: row.rating)
    assert top.model == "koala-13b"  # won both its decided battles


def test_reimport_adds_nothing(session, factory) -> None:
    project = factory.project(kind="ranking", k=2)
    importer.import_file(session=session, project=project, path=FIXTURES / "arena_battles.jsonl")
    again = importer.import_file(
        session=session, project=project, path=FIXTURES / "arena_battles.json"
    )
    assert (again.imported, again.duplicates, again.labels) == (0, 4, 0)
    assert session.scalar(select(func.count()).select_from(Annotation)) == 4


def test_a_bad_winner_names_the_battle(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2)
    battles = json.loads((FIXTURES / "arena_battles.json").read_text())
    battles[2]["winner"] = "model_c"
    path = tmp_path / "battles.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in battles))
    with pytest.raises(importer.ImportFailed, match="^line 3: battle 90bfd142157948aba01931726c8"):
        importer.import_file(session=session, project=project, path=path)
    assert session.scalar(select(func.count()).select_from(Prompt)) == 0


def test_battles_need_a_ranking_project(session, factory) -> None:
    project = factory.project(kind="rating", k=2)
    with pytest.raises(Invalid, match="rankings of two answers"):
        importer.import_file(session=session, project=project, path=FIXTURES / "arena_battles.json")
