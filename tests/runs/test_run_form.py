"""The start form selects a snapshot that can train the run kind (never an empty one, whatever
is newest), names each snapshot's project, kind and rows, and states a 0-row problem once."""

import re

from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from tests.runs.conftest import label_all
from tests.test_pages import login


def _snapshot(session, project, **params):  # type: ignore[no-untyped-def]
    made, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(**params)
    )
    return made


def _world(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    """A rankings snapshot with rows, then an sft snapshot with rows, then an empty sft one."""
    ranking = factory.project(kind="ranking", k=2, name="rank project")
    factory.items(
        ranking, [{"prompt": f"q{i}", "responses": ["a", "b"]} for i in range(3)], tmp_path
    )
    label_all(session, ranking, factory.user(), lambda t: {"ranking": [r.id for r in t.responses]})
    rankings = _snapshot(session, ranking, kind="rankings", split=1.0)
    written = factory.project(kind="demonstration", k=1, name="write project")
    factory.items(written, [{"prompt": f"hi {i}"} for i in range(3)], tmp_path)
    label_all(session, written, factory.user(), lambda t: {"demonstration": "hello"})
    sft = _snapshot(session, written, kind="sft", split=1.0)
    unlabeled = factory.project(kind="demonstration", k=1, name="empty project")
    empty = _snapshot(session, unlabeled, kind="sft")
    assert (rankings.train_rows, sft.train_rows, empty.train_rows) == (3, 3, 0)
    return rankings, sft, empty


def _options(html: str, name: str) -> dict[str, str]:
    """value -> the option's whole tag and text, of the select `name`."""
    select = re.search(rf'<select name="{name}".*?</select>', html, re.S).group(0)
    return {
        m.group(1): m.group(0)
        for m in re.finditer(r'<option value="([^"]*)"[^>]*>[^<]*</option>', select)
    }


def _selected(html: str, name: str) -> list[str]:
    return [v for v, tag in _options(html, name).items() if " selected" in tag.split(">")[0]]


def test_the_form_selects_the_newest_snapshot_that_can_train_the_kind(
    client, factory, session, tmp_path, artifacts
) -> None:
    rankings, sft, empty = _world(factory, session, tmp_path)
    login(client, factory.user("admin"))

    form = client.get("/admin/runs/new?kind=sft").text
    assert _selected(form, "snapshot_id") == [str(sft.id)]  # not the newer, empty one
    options = _options(form, "snapshot_id")
    assert " disabled" in options[str(empty.id)].split(">")[0]
    assert f"#{sft.id} · write project · sft v1 · 3 train / 0 test rows" in options[str(sft.id)]
    assert "rank project · rankings v1 · 3 train / 0 test rows" in options[str(rankings.id)]
    assert "empty project · sft v1 · 0 train / 0 test rows" in options[str(empty.id)]
    assert "nothing to train on" not in form  # nothing empty was asked for

    rm = client.get("/admin/runs/new?kind=rm").text
    assert _selected(rm, "snapshot_id") == [str(rankings.id)]
    # no kind asked: the kind of the newest snapshot a run can train on, and that snapshot
    plain = client.get("/admin/runs/new").text
    assert _selected(plain, "kind") == ["sft"] and _selected(plain, "snapshot_id") == [str(sft.id)]


def test_an_empty_snapshot_is_named_once_and_truthfully(
    client, factory, session, tmp_path, artifacts
) -> None:
    _, sft, empty = _world(factory, session, tmp_path)
    token = login(client, factory.user("admin"))
    form = client.get(f"/admin/runs/new?snapshot={empty.id}")
    assert form.status_code == 200
    assert form.text.count("nothing to train on") == 1 and "train fraction" not in form.text
    assert f"Snapshot #{empty.id} (empty project, sft) has 0 train rows" in form.text
    assert f"Selected instead: #{sft.id}, the newest that can train sft." in form.text
    assert _selected(form.text, "snapshot_id") == [str(sft.id)]

    posted = client.post(
        "/admin/runs",
        data={"csrf_token": token, "kind": "sft", "snapshot_id": empty.id, "model": "m"},
    )
    assert posted.status_code == 422
    assert posted.text.count("nothing to train on") == 1 and "train fraction" not in posted.text


def test_a_rankings_only_world_defaults_to_an_rm_run(
    client, factory, session, tmp_path, artifacts
) -> None:
    ranking = factory.project(kind="ranking", k=2)
    factory.items(ranking, [{"prompt": "q", "responses": ["a", "b"]}], tmp_path)
    label_all(session, ranking, factory.user(), lambda t: {"ranking": [r.id for r in t.responses]})
    rankings = _snapshot(session, ranking, kind="rankings", split=1.0)
    login(client, factory.user("admin"))
    form = client.get("/admin/runs/new").text
    assert _selected(form, "kind") == ["rm"]
    assert _selected(form, "snapshot_id") == [str(rankings.id)]


def test_the_form_posted_with_a_kind_it_does_not_start_comes_back(client, factory) -> None:  # type: ignore[no-untyped-def]
    from tests.test_pages import login

    token = login(client, factory.user("admin"))
    for kind in ("generate", "bogus"):
        page = client.post(
            "/admin/runs",
            data={"csrf_token": token, "kind": kind, "model": "m", "snapshot_id": "1"},
            headers={"Accept": "text/html"},
        )
        assert page.status_code == 422, page.text[-400:]
        assert 'id="run-form"' in page.text
