"""OpenAssistant message trees (`oasst`): ranked replies become prompts with a ranking."""

import json

from sqlalchemy import select

from app.labeling.models import Annotation
from app.projects.models import Prompt, Response

TREE = {
    "message_tree_id": "tree-1",
    "prompt": {
        "message_id": "m0",
        "role": "prompter",
        "text": "What is 2+2?",
        "lang": "en",
        "replies": [
            {"message_id": "a1", "role": "assistant", "text": "5", "rank": 1, "replies": []},
            {
                "message_id": "a0",
                "role": "assistant",
                "text": "4",
                "rank": 0,
                "replies": [
                    {
                        "message_id": "m1",
                        "role": "prompter",
                        "text": "And 3+3?",
                        "replies": [
                            {"message_id": "b0", "role": "assistant", "text": "6", "rank": 0},
                            {"message_id": "b2", "role": "assistant", "text": "7", "rank": 2},
                            {"message_id": "b1", "role": "assistant", "text": "six", "rank": 1},
                            {"message_id": "bx", "role": "assistant", "text": "?", "rank": None},
                        ],
                    }
                ],
            },
            {"message_id": "a2", "role": "assistant", "text": "four!", "rank": 2, "deleted": True},
        ],
    },
}
LONELY = {
    "message_tree_id": "tree-2",
    "prompt": {"role": "prompter", "text": "hi", "replies": [{"role": "assistant", "text": "x"}]},
}


def _ranked_texts(session, prompt: Prompt) -> list[str]:  # type: ignore[no-untyped-def]
    annotation = session.scalar(select(Annotation).where(Annotation.prompt_id == prompt.id))
    texts = dict(session.execute(select(Response.id, Response.text)).all())
    return [texts[rid] for rid in annotation.payload["ranking"]]


def test_oasst_trees_import_as_ranked_prompts(session, factory, tmp_path) -> None:
    project = factory.project(kind="ranking", k=3)
    path = tmp_path / "trees.jsonl"
    path.write_text(json.dumps(TREE) + "\n" + json.dumps(LONELY) + "\n")
    from app.projects import importer

    report = importer.import_file(session=session, project=project, path=path)  # auto-detected
    assert report.format == "oasst" and report.lines == 2
    assert report.imported == 2 and report.rankings == 2
    root, follow_up = session.scalars(select(Prompt).order_by(Prompt.id)).all()
    assert root.external_id == "m0" and root.messages == [
        {"role": "user", "content": "What is 2+2?"}
    ]
    assert _ranked_texts(session, root) == ["4", "5"]  # the deleted reply is left out
    assert follow_up.messages == [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "And 3+3?"},
    ]
    assert _ranked_texts(session, follow_up) == ["6", "six", "7"]  # unranked "?" left out

    again = importer.import_file(session=session, project=project, path=path, fmt="oasst")
    assert again.imported == 0 and again.duplicates == 2


def test_bad_oasst_line_names_the_place(client, factory) -> None:
    admin = factory.user("admin")
    project = factory.project(kind="ranking", k=2)
    bad = json.loads(json.dumps(TREE))
    bad["prompt"]["replies"][0]["rank"] = "first"
    r = client.post(
        f"/api/v1/projects/{project.id}/items?format=oasst",
        content=json.dumps(TREE) + "\n" + json.dumps(bad) + "\n",
        headers=admin.headers,
    )
    assert r.status_code == 422
    assert r.json()["errors"] == [
        {"line": 2, "error": "prompt.replies[0].rank must be a whole number ≥ 0 or null"}
    ]
