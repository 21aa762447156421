"""HTML pages through the TestClient: what each page shows and what its forms do."""

import re

import pytest

from tests.helpers import ranking_items, row_id

PASSWORD = "correct-horse-battery"


def csrf(client, path: str = "/login") -> str:  # type: ignore[no-untyped-def]
    page = client.get(path)
    return re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)


def login(client, user) -> str:  # type: ignore[no-untyped-def]
    """Sign in through the form; returns the CSRF token that forms must post."""
    token = csrf(client)
    form = {"email": user.email, "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=form, follow_redirects=False).status_code == 303
    return token


def annotate(client, user, project, body: dict):  # type: ignore[no-untyped-def]
    task = client.get(f"/api/v1/projects/{project.id}/tasks/next", headers=user.headers).json()
    url = f"/api/v1/assignments/{task['assignment_id']}/annotations"
    assert client.post(url, json=body(task), headers=user.headers).status_code == 201
    return task


@pytest.fixture
def ranking(factory, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(kind="ranking", k=3, criteria=["unsafe"], name="Rank <b>me</b>")
    factory.items(project, ranking_items(2, k=3), tmp_path)
    return project


def test_home_lists_projects_with_the_labelers_progress(client, factory, ranking) -> None:
    labeler = factory.user()
    annotate(client, labeler, ranking, lambda t: {"ranking": [r["id"] for r in t["responses"]]})
    login(client, labeler)
    page = client.get("/")
    assert "Rank &lt;b&gt;me&lt;/b&gt;" in page.text  # autoescaped
    assert "You did <strong>1</strong>" in page.text
    assert "<strong>1</strong> left for you" in page.text


def test_the_ranking_page_shows_the_task_and_the_keys(client, factory, ranking) -> None:
    labeler = factory.user()
    login(client, labeler)
    page = client.get(f"/projects/{ranking.id}/label")
    assert page.status_code == 200
    assert page.text.count('class="card response"') == 3
    assert page.text.count('class="slot"') == 3
    assert "pick the next best" in page.text and "<kbd>Backspace</kbd> undo" in page.text
    assert "<strong>0</strong> done · <strong>2</strong> remaining" in page.text
    assert 'value="unsafe"' in page.text
    task = client.get(f"/api/v1/projects/{ranking.id}/tasks/next").json()  # the same lease
    shown = re.findall(r'class="card response"[^>]*data-response="(\d+)"', page.text)
    assert [int(i) for i in shown] == [r["id"] for r in task["responses"]]


def test_untrusted_text_is_escaped_on_the_page(client, factory, tmp_path) -> None:
    project = factory.project(kind="rating", k=1, instructions="<script>alert(1)</script>")
    item = {
        "id": "x",
        "prompt": "<img src=x onerror=alert(1)>",
        "responses": ["<script>x</script>"],
    }
    factory.items(project, [item], tmp_path)
    login(client, factory.user())
    page = client.get(f"/projects/{project.id}/label").text
    assert "<img src=x" not in page and "<script>alert" not in page and "<script>x" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "&lt;script&gt;x&lt;/script&gt;" in page


def test_nothing_left_shows_the_done_page(client, factory, tmp_path) -> None:
    project = factory.project(kind="demonstration", k=1)
    login(client, factory.user())
    page = client.get(f"/projects/{project.id}/label")
    assert page.status_code == 200 and "All done here" in page.text


def test_dashboard_shows_projects_progress_and_labels_per_day(client, factory, ranking) -> None:
    labeler, admin = factory.user(), factory.user("admin")
    annotate(client, labeler, ranking, lambda t: {"ranking": [r["id"] for r in t["responses"]]})
    login(client, admin)
    page = client.get("/admin").text
    assert f'href="/admin/projects/{ranking.id}"' in page
    assert "1 / 2" in page  # labels done / needed
    assert '<svg class="chart"' in page
    assert re.search(r"<title>\d{4}-\d\d-\d\d: 1 label</title>", page)


def test_labels_per_day_counts_todays_annotations(session, client, factory, ranking) -> None:
    from app.labeling import service

    labeler = factory.user()
    annotate(client, labeler, ranking, lambda t: {"ranking": [r["id"] for r in t["responses"]]})
    days = service.labels_per_day(session=session, days=7)
    assert len(days) == 7 and days[-1][1] == 1 and sum(n for _, n in days) == 1
    assert service.labels_per_day(session=session, days=3, project_id=ranking.id + 1)[-1][1] == 0


def test_create_project_form_validates_and_creates(client, factory) -> None:
    token = login(client, factory.user("admin"))
    form = {"csrf_token": token, "name": "New one", "kind": "ranking", "k": "1", "criteria": ""}
    refused = client.post("/admin/projects", data=form)
    assert refused.status_code == 422 and "k ≥ 2" in refused.text
    form |= {"k": "3", "criteria": "unsafe, rude", "instructions": "Be *kind*"}
    created = client.post("/admin/projects", data=form, follow_redirects=False)
    assert created.status_code == 303
    page = client.get(created.headers["location"])
    assert "Project created." in page.text and 'value="unsafe, rude"' in page.text


def test_settings_form_saves_and_refuses_a_k_change_after_labels(client, factory, ranking) -> None:
    labeler = factory.user()
    token = login(client, factory.user("admin"))
    form = {"csrf_token": token, "name": ranking.name, "k": "3", "overlap": "2"}
    form |= {"lease_seconds": "600", "rating_scale": "thumbs", "criteria": "unsafe"}
    saved = client.post(f"/admin/projects/{ranking.id}", data=form)
    assert saved.status_code == 200 and "Settings saved." in saved.text
    assert client.get(f"/api/v1/projects/{ranking.id}").json()["overlap"] == 2
    annotate(client, labeler, ranking, lambda t: {"ranking": [r["id"] for r in t["responses"]]})
    refused = client.post(f"/admin/projects/{ranking.id}", data=form | {"k": "2"})
    assert refused.status_code == 422 and "k cannot change" in refused.text


def test_import_page_reports_bad_lines_and_imports_nothing(client, factory, ranking) -> None:
    token = login(client, factory.user("admin"))
    url = f"/admin/projects/{ranking.id}/import"
    body = b'{"id": "n1", "prompt": "q", "responses": ["a", "b"]}\n[1, 2]\n'
    page = client.post(url, data={"csrf_token": token}, files={"file": ("a.jsonl", body)})
    assert page.status_code == 422
    assert re.search(r'<td class="num">2</td><td>each line must be a JSON object', page.text)
    good = b'{"id": "n1", "prompt": "q", "responses": ["a", "b"]}\n'
    page = client.post(url, data={"csrf_token": token}, files={"file": ("a.jsonl", good)})
    assert "Imported 1 prompt with 2 responses" in page.text


def test_a_form_without_the_csrf_token_is_refused(client, factory) -> None:
    login(client, factory.user("admin"))
    refused = client.post("/admin/users", data={"email": "x@y.z", "role": "labeler"})
    assert refused.status_code == 403


def test_users_page_creates_deactivates_resets_and_manages_tokens(client, factory) -> None:
    admin = factory.user("admin")
    token = login(client, admin)
    form = {"csrf_token": token, "email": "new@example.com", "role": "labeler", "password": "x" * 8}
    created = client.post("/admin/users", data=form)
    assert "Created new@example.com (labeler)." in created.text
    assert "exists already" in client.post("/admin/users", data=form).text
    users = client.get("/api/v1/users").json()
    new = next(u for u in users if u["email"] == "new@example.com")

    issued = client.post(f"/admin/users/{new['id']}/tokens", data={"csrf_token": token})
    plain = re.search(r'id="token-value">([^<]+)<', issued.text).group(1)
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"}).status_code == 200
    assert plain not in client.get("/admin/users").text  # shown once
    token_id = next(
        t["id"] for t in client.get("/api/v1/tokens").json() if t["user_id"] == new["id"]
    )
    client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert client.get("/api/v1/me", headers={"Authorization": f"Bearer {plain}"}).status_code == 401

    short = client.post(
        f"/admin/users/{new['id']}/password", data={"csrf_token": token, "password": "s"}
    )
    assert short.status_code == 422 and "at least 8 characters" in short.text
    reset = {"csrf_token": token, "password": "a-new-password"}
    assert "New password set" in client.post(f"/admin/users/{new['id']}/password", data=reset).text
    off = {"csrf_token": token, "active": "false"}
    assert "is deactivated" in client.post(f"/admin/users/{new['id']}/active", data=off).text
    myself = client.post(f"/admin/users/{admin.id}/active", data=off)
    assert myself.status_code == 409


def test_annotations_browser_shows_the_ranking_as_ordered_texts(client, factory, ranking) -> None:
    first, second = factory.user(), factory.user()

    def worst_first(task):  # type: ignore[no-untyped-def]
        ids = sorted((r["id"] for r in task["responses"]), key=lambda i: row_id("response", i))
        return {"ranking": ids[::-1], "flags": {str(ids[0]): ["unsafe"]}}

    task = annotate(client, first, ranking, worst_first)
    annotate(client, second, ranking, worst_first)
    login(client, factory.user("admin"))
    page = client.get(f"/admin/annotations?project_id={ranking.id}&user_id={first.id}").text
    assert page.count('class="card annotation"') == 1
    texts = re.findall(r"<p>(answer \d\.\d)</p>", page)
    assert texts == sorted(texts, reverse=True) and len(texts) == 3
    assert first.email in page and "unsafe" in page
    everyone = client.get(f"/admin/annotations?project_id={ranking.id}&user_id=&prompt_id=")
    assert everyone.text.count('class="card annotation"') == 2
    prompt = row_id("prompt", task["prompt_id"])  # admin pages show row ids
    one = client.get(f"/admin/annotations?project_id=&user_id=&prompt_id={prompt}")
    assert one.text.count('class="card annotation"') == 1


def test_pages_answer_errors_with_html_and_the_api_with_json(client, factory) -> None:
    labeler = factory.user("labeler")
    page = client.get("/admin", headers=labeler.headers | {"Accept": "text/html"})
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html") and "admins only" in page.text
    api = client.get("/api/v1/users", headers=labeler.headers | {"Accept": "text/html"})
    assert api.status_code == 403 and api.json() == {"detail": "admins only"}


def test_admin_excludes_a_labeler_from_the_quality_page_and_counts_them_in_again(
    client, factory, session
) -> None:
    import re

    from app.labeling.models import Exclusion

    admin, labeler = factory.user("admin"), factory.user("labeler")
    project = factory.project(kind="ranking", k=2)
    page = client.get(f"/admin/projects/{project.id}/quality", headers=admin.headers)
    assert page.status_code == 200 and labeler.email in page.text
    url = f"/admin/projects/{project.id}/exclusions"
    form = {"user_id": labeler.id, "scope": "project", "reason": "spam"}
    asked = client.post(url, data=form, headers=admin.headers, follow_redirects=False)
    assert asked.status_code == 200 and "stop counting toward overlap" in asked.text
    assert 'name="confirmed" value="1"' in asked.text and "Cancel" in asked.text
    assert session.query(Exclusion).count() == 0  # nothing happens before the admin confirms
    session.commit()  # a fresh read transaction for what follows
    form["confirmed"] = "1"
    assert (
        client.post(url, data=form, headers=admin.headers, follow_redirects=False).status_code
        == 303
    )
    exclusion = session.query(Exclusion).one()
    assert (exclusion.user_id, exclusion.project_id, exclusion.reason) == (
        labeler.id,
        project.id,
        "spam",
    )
    page = client.get(f"/admin/projects/{project.id}/quality", headers=admin.headers).text
    assert re.search(r"this project · spam", page)
    board = client.get(f"/admin/projects/{project.id}/leaderboard", headers=admin.headers).text
    assert "1 labeler excluded" in board and f"/admin/projects/{project.id}/quality" in board
    removed = client.post(
        f"{url}/{exclusion.id}/remove", headers=admin.headers, follow_redirects=False
    )
    assert removed.status_code == 303
    session.commit()  # a fresh read transaction sees the app's commit
    assert session.query(Exclusion).count() == 0


def test_an_admin_lands_on_the_dashboard_and_a_labeler_on_their_projects(client, factory) -> None:
    token = csrf(client)
    admin = factory.user("admin")
    form = {"email": admin.email, "password": PASSWORD, "csrf_token": token}
    assert client.post("/login", data=form, follow_redirects=False).headers["location"] == "/admin"
    asked = form | {"next": "/admin/runs"}
    assert client.post("/login", data=asked, follow_redirects=False).headers["location"] == (
        "/admin/runs"
    )
    client.cookies.clear()
    labeler = factory.user()
    form = {"email": labeler.email, "password": PASSWORD, "csrf_token": csrf(client)}
    assert client.post("/login", data=form, follow_redirects=False).headers["location"] == "/"


def test_the_snapshots_nav_entry_lists_every_projects_snapshots(client, factory) -> None:
    login(client, factory.user("admin"))
    page = client.get("/admin")
    assert '<a href="/admin/snapshots">Snapshots</a>' in page.text
    listing = client.get("/admin/snapshots")
    assert listing.status_code == 200 and "No snapshots yet" in listing.text


def test_settings_that_do_not_apply_to_the_kind_are_hidden(client, factory) -> None:
    login(client, factory.user("admin"))
    ranking = factory.project(kind="ranking", k=3)
    page = client.get(f"/admin/projects/{ranking.id}").text
    assert re.search(r"<label hidden>Rating scale", page)
    assert re.search(r'<label data-kinds="ranking rating">Responses per task', page)
    demonstration = factory.project(kind="demonstration", k=1)
    page = client.get(f"/admin/projects/{demonstration.id}").text
    assert re.search(r"<label hidden>Responses per task", page)
    assert re.search(r"<label hidden>Criteria flags", page)
    rating = factory.project(kind="rating", k=2)
    page = client.get(f"/admin/projects/{rating.id}").text
    # rankings' alone: a rating project's judge is a reward model, asked no question
    assert re.findall(r"<label hidden>([\w ]+)", page) == [
        "Judge question ",
        "Preference strength ",
    ]
    page = client.get(f"/admin/projects/{ranking.id}").text
    assert re.search(r'<label data-kinds="ranking">Preference strength', page)
    assert 'src="/static/js/project_form.js"' in client.get("/admin/projects/new").text


def test_icons_need_no_emoji_font(client, factory, tmp_path) -> None:
    project = factory.project(kind="rating", k=2, rating_scale="thumbs")
    factory.items(project, ranking_items(1, k=2), tmp_path)
    login(client, factory.user())
    page = client.get(f"/projects/{project.id}/label").text
    assert "\N{THUMBS UP SIGN}" not in page and "\N{THUMBS DOWN SIGN}" not in page
    assert page.count('<svg class="icon"') >= 4


def test_the_leaderboard_explains_each_rank(client, factory, session, tmp_path) -> None:
    from tests.helpers import annotate as store
    from tests.helpers import prompts_of

    project = factory.project(kind="ranking", k=3)
    factory.items(project, ranking_items(30, k=3), tmp_path)
    labeler = factory.user()
    for pid, rids in prompts_of(session, project):
        store(session, project, pid, labeler, {"ranking": rids})  # m0 > m1 > m2, always
    login(client, factory.user("admin"))
    page = client.get(f"/admin/projects/{project.id}/leaderboard?rounds=200").text
    assert "rank = 1 + the number of models whose\n  interval lies entirely above" in page
    assert "no model entirely above" in page
    assert "2 models entirely above: m0, m1" in page
    assert page.count("<line x1=") >= 3 and "95% interval" in page


def test_the_labeler_home_shows_an_empty_project_as_empty(client, factory) -> None:
    labeler = factory.user()
    factory.project(kind="ranking", k=2, name="nothing here yet")
    page = client.get("/", headers=labeler.headers).text
    card = page[page.index("nothing here yet") :]
    assert 'style="width: 0%"' in card.split("</section>")[0]
    assert "No prompts yet." in card.split("</section>")[0]
