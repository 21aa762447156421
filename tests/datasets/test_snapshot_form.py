"""A snapshot fits its project: only the kinds and options that can have rows are offered (page)
and taken (API, 422 naming the field); the form's errors name what the admin sees; and a
snapshot's page shows its dataset card, rendered safely."""

import re

import pytest
from sqlalchemy import func, select

from app.datasets.models import Snapshot
from tests.helpers import annotate, prompts_of, ranking_items
from tests.test_pages import login

HTML = {"Accept": "text/html"}
LIKERT = [{"name": "helpfulness", "type": "likert", "min": 1, "max": 7}]


@pytest.fixture(autouse=True)
def artifacts(tmp_path, monkeypatch, engine):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def _snapshots(session) -> int:  # type: ignore[no-untyped-def]
    session.rollback()
    return session.scalar(select(func.count()).select_from(Snapshot))


def _offered(html: str) -> list[str]:
    select_ = re.search(r'<select name="kind".*?</select>', html, re.S).group(0)
    return re.findall(r'<option value="([^"]+)"', select_)


def _form(html: str) -> str:
    return re.search(r'<form[^>]*id="snapshot-form".*?</form>', html, re.S).group(0)


REFUSED = [
    # (project kind, questions, body, field)
    ("ranking", [], {"kind": "ratings"}, "kind"),
    ("ranking", [], {"kind": "sft"}, "include_top_ranked"),
    ("ranking", LIKERT, {"kind": "ratings", "normalize": True}, "normalize"),
    ("demonstration", [], {"kind": "rankings"}, "kind"),
    ("demonstration", [], {"kind": "pairs"}, "kind"),
    ("demonstration", [], {"kind": "ratings"}, "kind"),
    ("demonstration", [], {"kind": "kto"}, "kind"),
    ("demonstration", [], {"kind": "sft", "include_top_ranked": True}, "include_top_ranked"),
    ("rating", [], {"kind": "rankings"}, "kind"),
    ("rating", [], {"kind": "pairs"}, "kind"),
    ("rating", [], {"kind": "sft"}, "kind"),
]


def test_the_api_refuses_a_snapshot_that_could_have_no_rows(client, factory, session) -> None:
    admin = factory.user("admin")
    for kind, questions, body, field in REFUSED:
        k = 1 if kind == "demonstration" else 2
        project = factory.project(kind=kind, k=k, questions=questions)
        url = f"/api/v1/projects/{project.id}/snapshots"
        refused = client.post(url, json=body, headers=admin.headers)
        assert refused.status_code == 422, (kind, body, refused.text)
        assert refused.json()["field"] == field, (kind, body)
        assert f"{kind} project" in refused.json()["detail"]
    assert _snapshots(session) == 0
    # what each project kind can make is taken
    ranking = factory.project(kind="ranking", k=2, questions=LIKERT)
    for body in ({"kind": "sft", "include_top_ranked": True}, {"kind": "ratings"}):
        made = client.post(
            f"/api/v1/projects/{ranking.id}/snapshots", json=body, headers=admin.headers
        )
        assert made.status_code == 201, made.text
    rating = factory.project(kind="rating", k=2)
    made = client.post(
        f"/api/v1/projects/{rating.id}/snapshots",
        json={"kind": "ratings", "normalize": True},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text


def test_the_form_offers_only_what_the_project_can_fill(client, factory) -> None:
    admin = factory.user("admin")
    login(client, admin)
    ranking = factory.project(kind="ranking", k=2)
    demo = factory.project(kind="demonstration", k=1)
    rating = factory.project(kind="rating", k=2, rating_scale="0-5")
    thumbs = factory.project(kind="rating", k=2, rating_scale="thumbs")
    with_likert = factory.project(kind="ranking", k=2, questions=LIKERT)

    def page(project) -> str:  # type: ignore[no-untyped-def]
        answer = client.get(f"/admin/projects/{project.id}/snapshots")
        assert answer.status_code == 200
        return answer.text

    text = page(ranking)
    assert _offered(text) == ["rankings", "pairs", "sft", "prompts", "kto"]
    assert "sft (the top consensus response of each ranked prompt)" in text
    form = _form(text)
    assert 'name="include_top_ranked"' not in form and 'name="normalize"' not in form
    assert 'name="desirable_at"' not in form and 'name="method"' in form
    assert _offered(page(with_likert)) == ["rankings", "pairs", "sft", "ratings", "prompts", "kto"]

    text = page(demo)
    assert _offered(text) == ["sft", "prompts"]
    form = _form(text)
    for name in ("method", "weighting", "include_top_ranked", "normalize", "desirable_at"):
        assert f'name="{name}"' not in form, name

    text = page(rating)
    assert _offered(text) == ["ratings", "prompts", "kto"]
    form = _form(text)
    assert 'name="normalize"' in form and 'name="desirable_at"' in form
    assert 'name="desirable_at"' not in _form(page(thumbs))  # 👍/👎: no thresholds


def test_the_form_makes_a_ranking_projects_sft_and_names_its_labels_in_errors(
    client, factory, session, tmp_path
) -> None:
    admin = factory.user("admin")
    token = login(client, admin)
    ranking = factory.project(kind="ranking", k=2)
    factory.items(ranking, ranking_items(2, k=2), tmp_path)
    for pid, (a, b) in prompts_of(session, ranking):
        annotate(session, ranking, pid, factory.user(), {"ranking": [a, b]})
    session.commit()
    url = f"/admin/projects/{ranking.id}/snapshots"

    made = client.post(url, data={"csrf_token": token, "kind": "sft", "split": "1"})
    assert made.status_code == 200 and "Snapshot <a" in made.text
    snapshot = session.scalars(select(Snapshot)).one()
    assert snapshot.params["include_top_ranked"] is True and snapshot.train_rows == 2

    bad = client.post(url, data={"csrf_token": token, "kind": "sft", "method": "all"}, headers=HTML)
    assert bad.status_code == 422
    error = re.search(r'<p class="error" role="alert">(.*?)</p>', bad.text, re.S).group(1)
    assert "sft (the top consensus response of each ranked prompt)" in error
    assert "include_top_ranked" not in error and "form:" not in error

    bad = client.post(url, data={"csrf_token": token, "kind": "ratings"}, headers=HTML)
    error = re.search(r'<p class="error" role="alert">(.*?)</p>', bad.text, re.S).group(1)
    assert bad.status_code == 422 and error.startswith("Kind: project")
    assert "its snapshot kinds are rankings, pairs, sft, prompts, kto" in error

    rating = factory.project(kind="rating", k=2, rating_scale="0-5")
    bad = client.post(
        f"/admin/projects/{rating.id}/snapshots",
        data={"csrf_token": token, "kind": "kto", "desirable_at": "2", "undesirable_at": "3"},
        headers=HTML,
    )
    error = re.search(r'<p class="error" role="alert">(.*?)</p>', bad.text, re.S).group(1)
    assert bad.status_code == 422 and "undesirable_at" not in error
    assert "kto of 0–5 ratings: undesirable at ≤" in error
    assert _snapshots(session) == 1


def test_a_snapshots_page_shows_its_card_rendered_and_escaped(client, factory, session) -> None:
    from app.datasets import service

    admin = factory.user("admin")
    login(client, admin)
    name = "<script>alert(1)</script> [x](javascript:alert(1)) **bold**"
    project = factory.project(kind="ranking", k=2, name=name)
    made = client.post(
        f"/api/v1/projects/{project.id}/snapshots", json={"kind": "prompts"}, headers=admin.headers
    )
    snapshot_id = made.json()["id"]
    page = client.get(f"/admin/snapshots/{snapshot_id}")
    assert page.status_code == 200
    card = re.search(r'<section[^>]*id="dataset-card".*?</section>', page.text, re.S).group(0)
    assert "<h3>" in card and "<h4>Counts</h4>" in card  # markdown, under the page's headings
    assert "<li>train: 0 rows" in card and "<code>" in card
    assert "<script" not in card and "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    assert "<strong>bold</strong>" in card and "href" not in card  # no link made of a name
    for listing in (f"/admin/projects/{project.id}/snapshots", "/admin/snapshots"):
        assert f'href="/admin/snapshots/{snapshot_id}"' in client.get(listing).text

    snapshot = service.get_snapshot(session=session, snapshot_id=snapshot_id)
    service.snapshot_file(snapshot=snapshot, name="README.md").unlink()
    missing = client.get(f"/admin/snapshots/{snapshot_id}")
    assert missing.status_code == 200 and "The card is missing on disk" in missing.text
    assert client.get("/admin/snapshots/999999").status_code == 404


def test_the_cards_weights_table_renders_as_a_table() -> None:
    from app.templating import markdown_tables

    html = markdown_tables("# t\n\n| labeler | weight |\n|---|---|\n| <b>a</b> | 0.5 |\n", 2)
    assert "<h3>t</h3>" in html and "<table>" in html and "<td>&lt;b&gt;a&lt;/b&gt;</td>" in html
