"""The Prompts page's action log says what each action did in words: whose lease, which
filter a bulk action had."""

import re

from app.labeling import service as labeling
from app.prompts import service
from app.prompts.service import PromptFilter
from tests.helpers import ranking_items, row_id
from tests.test_pages import login


def test_the_action_log_shows_the_filter_in_words(client, factory, session, tmp_path) -> None:
    project = factory.project(kind="ranking", k=2, overlap=1)
    factory.items(project, ranking_items(3, k=2), tmp_path)
    admin, ada = factory.user("admin"), factory.user()
    held = labeling.next_task(session=session, project=project, user=ada)
    assignment_id = row_id("assignment", held.assignment_id)
    service.release_lease(session=session, project=project, assignment_id=assignment_id, by=admin)
    where = PromptFilter(status="unlabeled", q="question 1")
    service.retire(session=session, project=project, by=admin, where=where)
    service.requeue(session=session, project=project, by=admin, where=PromptFilter())
    session.commit()
    login(client, admin)
    page = client.get(f"/admin/projects/{project.id}/prompts").text
    log = re.search(r'id="action-log".*', page, re.S).group(0)
    assert "every prompt matching status: unlabeled, search: &#39;question 1&#39;" in log
    assert "every prompt of the project (no filter)" in log
    assert f"lease of {ada.email}" in log
    assert "{" not in log and "filter:" not in log
