"""Open-Assistant trees with their ranking events: each user's ranking under its user."""

from sqlalchemy import select

from app.projects import importer
from app.projects.models import Prompt, Response
from tests.imports.common import FIXTURES, assignments, labels

PATH = FIXTURES / "oasst_events.trees.jsonl"
ROOT = "6ab24d72-0181-4594-a9cd-deaf170242fb"
ONE_BUYER = (
    "Monopsony refers to a market structure where there is only one buyer for a good or service."
)
MIRROR = "Monopsony is a market structure with a single buyer, the mirror image of a monopoly."
UNSURE = "I do not know."


def test_each_users_ranking_is_a_label(session, factory) -> None:
    project = factory.project(kind="ranking", k=3)
    report = importer.import_file(session=session, project=project, path=PATH)
    assert report.format == "oasst"
    assert (report.imported, report.labels, report.skipped_labels, report.rankings) == (2, 2, 1, 1)
    assert report.notes == ["rankings that leave out one of the prompt's replies were left out"]
    found = [x for x in labels(session, project.id) if x["prompt"] == ROOT]
    assert [(x["labeler"], x["payload"]["ranking"]) for x in found] == [
        ("oasst:a1a1a1a1-0000-4000-8000-000000000001", [MIRROR, ONE_BUYER, UNSURE]),
        ("oasst:b2b2b2b2-0000-4000-8000-000000000002", [ONE_BUYER, UNSURE, MIRROR]),
    ]
    assert ("oasst:c3c3c3c3-0000-4000-8000-000000000003", "skipped") in {
        (labeler, status) for prompt, labeler, status in assignments(session, project.id)
    }
    # The deeper turn has no events: its aggregated rank is an imported ranking (no labeler),
    # and the conversation before it is kept.
    deeper = session.scalar(
        select(Prompt).where(Prompt.external_id == "6708c47f-1111-4346-b3d2-40b2bd24fde4")
    )
    assert [m["role"] for m in deeper.messages] == ["user", "assistant", "user"]
    unlabeled = [x for x in labels(session, project.id) if x["labeler"] is None]
    assert [x["payload"]["ranking"] for x in unlabeled] == [
        ["Woof: one buyer, many sellers.", "Dogs cannot read."]
    ]
    aspects = session.scalar(select(Response.meta).where(Response.text == ONE_BUYER))
    assert aspects["oasst_labels"] == {"spam": 0.0, "quality": 0.58, "humor": 0.08}
    again = importer.import_file(session=session, project=project, path=PATH)
    assert (again.imported, again.labels) == (0, 0)
