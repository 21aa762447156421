"""From labels to a run in a real browser: the snapshot form offers the project's kinds, the
snapshot's page shows its dataset card, and the start form selects a snapshot that can train
the kind (never the newest empty one) as the kind changes."""

import re

import pytest

from tests.browser.axe import violations
from tests.browser.conftest import login
from tests.helpers import ranking_items

pytestmark = pytest.mark.browser


def _make(page, project, kind: str, split: str = "1") -> int:  # type: ignore[no-untyped-def]
    page.goto(f"/admin/projects/{project.id}/snapshots")
    page.select_option("#snapshot-form select[name=kind]", kind)
    page.fill("#snapshot-form input[name=split]", split)
    page.get_by_role("button", name="Make snapshot").click()
    page.get_by_text(re.compile(r"Snapshot #\d+ written\.")).wait_for()
    return int(re.search(r"made=(\d+)", page.url).group(1))


def test_snapshot_form_card_and_run_form(page, live) -> None:
    from app.labeling import service as labeling
    from app.labeling.schemas import AnnotationIn

    admin, labeler = live.user("admin"), live.user()
    ranking = live.project(ranking_items(2, k=2), k=2, name="browser ranking <b>bold</b>")
    with live.session() as session:
        while task := labeling.next_task(session=session, project=ranking, user=labeler):
            labeling.submit(
                session=session,
                assignment_id=task.assignment_id,
                user=labeler,
                body=AnnotationIn(ranking=[r.id for r in task.responses]),
            )
    unlabeled = live.project(
        [{"id": "w0", "prompt": "write"}], kind="demonstration", k=1, name="browser empty"
    )
    login(page, admin)
    page.goto(f"/admin/projects/{ranking.id}/snapshots")
    kinds = page.locator("#snapshot-form select[name=kind] option")
    assert kinds.evaluate_all("os => os.map(o => o.value)") == [
        "rankings", "pairs", "sft", "prompts", "kto"
    ]  # fmt: skip
    assert page.locator("#snapshot-form input[name=normalize]").count() == 0
    top = _make(page, ranking, "sft")
    page.get_by_role("link", name=f"#{top}").first.click()
    card = page.locator("#dataset-card")
    assert "browser ranking <b>bold</b> · sft v1" in card.locator("h3").inner_text()
    assert card.locator("h4", has_text="Counts").count() == 1
    assert card.locator("b").count() == 0  # the name's markup is text
    assert violations(page) == []
    empty = _make(page, unlabeled, "sft", split="0.9")  # newer, and empty

    page.get_by_role("link", name="Runs", exact=True).click()
    page.get_by_role("link", name="+ Start a run").click()
    kind, snapshot = page.locator("#kind"), page.locator("#snapshot")
    assert kind.input_value() == "sft" and snapshot.input_value() == str(top)
    shown = snapshot.locator(f"option[value='{top}']").inner_text()
    assert shown == f"#{top} · browser ranking <b>bold</b> · sft v1 · 2 train / 0 test rows"
    assert snapshot.locator(f"option[value='{empty}']").is_disabled()
    warning = page.locator("#snapshot-warning")
    assert warning.is_visible() and "0 test rows" in warning.inner_text()
    assert violations(page) == []
    kind.select_option("rm")  # none of this test's snapshots trains rm
    assert snapshot.input_value() not in (str(top), str(empty))
    chosen = snapshot.locator("option:checked")
    if snapshot.input_value():  # another test's rankings, pairs or ratings snapshot
        assert chosen.get_attribute("data-kind") in ("rankings", "pairs", "ratings")
    else:
        assert not warning.is_visible()
    kind.select_option("sft")
    assert snapshot.input_value() == str(top)  # never the newest, empty one
    assert page.locator("#snapshot-empty").count() == 0
