"""Hostile and careless input gets a 4xx naming the field, never a 5xx (one test per class)."""

import json
import logging

import pytest

from tests.helpers import ranking_items

HUGE = "99999999999999999999"


@pytest.fixture
def admin(factory):  # type: ignore[no-untyped-def]
    return factory.user("admin")


@pytest.fixture
def labeler(factory):  # type: ignore[no-untyped-def]
    return factory.user("labeler")


OUT_OF_RANGE = [
    f"/api/v1/projects/{HUGE}",
    f"/api/v1/projects/{2**31}",
    "/api/v1/projects/-1",
    f"/api/v1/snapshots/{HUGE}",
    f"/api/v1/runs/{HUGE}",
    f"/api/v1/runs/1/metrics?after={2**31}",
    f"/api/v1/projects/1/leaderboard?seed={HUGE}",
    f"/api/v1/projects/1/consensus?after=-{HUGE}",
    f"/admin/projects/{HUGE}",
    f"/admin/annotations?page={HUGE}",
    f"/admin/projects/1/prompts?after={HUGE}",
    f"/admin/annotations?project_id={2**31}",
]


def test_ids_beyond_the_columns_and_negative_ones_are_422(client, admin) -> None:  # type: ignore[no-untyped-def]
    for path in OUT_OF_RANGE:
        answer = client.get(path, headers=admin.headers)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["detail"][0]["loc"][0] in ("path", "query"), path


def test_a_labeler_gets_422_for_limits_and_offsets_out_of_range(client, labeler) -> None:  # type: ignore[no-untyped-def]
    queries = ["limit=-2692993427000887702534752305152", "limit=-1", "limit=0", "limit=1001"]
    for query in [*queries, "offset=-1", f"offset={HUGE}"]:
        for route in ("/api/v1/annotations", "/api/v1/assignments"):
            answer = client.get(f"{route}?{query}", headers=labeler.headers)
            assert answer.status_code == 422, (route, query, answer.text)
            assert answer.json()["detail"][0]["loc"][1] in ("limit", "offset")
    assert client.get("/api/v1/annotations?limit=1000", headers=labeler.headers).status_code == 200


def test_blank_nul_and_overlong_text_is_refused_by_field(client, admin) -> None:  # type: ignore[no-untyped-def]
    cases = [("name", "   "), ("name", "a\x00b"), ("name", "n" * 201)]
    for field, value in [*cases, ("instructions", "x" * 100_001), ("criteria", ["c" * 61])]:
        body = {"name": "ok", "kind": "ranking"} | {field: value}
        answer = client.post("/api/v1/projects", json=body, headers=admin.headers)
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["detail"][0]["loc"][:2] == ["body", field]
    assert client.get("/api/v1/projects", headers=admin.headers).json() == []


def test_nul_in_free_form_json_is_refused(client, admin, factory) -> None:  # type: ignore[no-untyped-def]
    body = {"kind": "sft", "snapshot_id": 1, "model": "m", "config": {"k\x00": 1}}
    answer = client.post("/api/v1/runs", json=body, headers=admin.headers)
    assert answer.status_code == 422 and answer.json()["detail"][0]["loc"] == ["body", "config"]


def test_json_with_nan_or_infinity_is_refused_cleanly(client, admin) -> None:  # type: ignore[no-untyped-def]
    for constant in ("NaN", "Infinity", "-Infinity"):
        raw = '{"kind": "sft", "snapshot_id": 1, "model": "m", "config": {"lr": CONST}}'
        answer = client.post(
            "/api/v1/runs",
            content=raw.replace("CONST", constant),
            headers=admin.headers | {"Content-Type": "application/json"},
        )
        assert answer.status_code == 422
        assert constant.lstrip("-") in answer.json()["detail"][0]["msg"]


def test_a_422_for_a_body_with_nan_is_strict_json(client, admin) -> None:  # type: ignore[no-untyped-def]
    from app.http.errors import json_safe

    answer = client.post(
        "/api/v1/projects",
        content='{"k": NaN}',
        headers=admin.headers | {"Content-Type": "application/json"},
    )
    assert answer.status_code == 422

    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in the answer")

    json.loads(answer.text, parse_constant=refuse)
    # What a 422 echoes of the input is always plain, small JSON.
    assert json.dumps(json_safe({"k": float("nan")})) == '{"k": "nan"}'
    assert len(json_safe("x" * 10_000)) < 300


def test_patch_with_null_fields_is_422_and_changes_nothing(client, admin, factory) -> None:  # type: ignore[no-untyped-def]
    project = factory.project(name="keep me")
    for field in ("name", "instructions", "k", "overlap", "criteria", "is_archived"):
        answer = client.patch(
            f"/api/v1/projects/{project.id}", json={field: None}, headers=admin.headers
        )
        assert answer.status_code == 422, (field, answer.text)
        assert answer.json()["detail"][0]["loc"] == ["body", field]
    kept = client.get(f"/api/v1/projects/{project.id}", headers=admin.headers).json()
    assert kept["name"] == "keep me"
    renamed = client.patch(
        f"/api/v1/projects/{project.id}", json={"name": "  new  "}, headers=admin.headers
    )
    assert renamed.status_code == 200 and renamed.json()["name"] == "new"


def test_export_of_a_project_named_outside_latin_1(client, admin, factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    project = factory.project(name='排名 "тест" 🚀')
    factory.items(project, ranking_items(1), tmp_path)
    answer = client.get(f"/api/v1/projects/{project.id}/export?kind=prompts", headers=admin.headers)
    assert answer.status_code == 200
    disposition = answer.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="')
    assert "filename*=UTF-8''%E6%8E%92%E5%90%8D%20%22" in disposition
    assert json.loads(answer.text.splitlines()[0]) == {"prompt": "question 0"}


def test_body_over_the_limit_is_413_by_header_and_by_streamed_bytes(
    client, admin, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from tests.helpers import reset_caches

    monkeypatch.setenv("RLHF_MAX_BODY_BYTES", "1000")
    reset_caches()
    big = json.dumps({"name": "x", "kind": "ranking", "instructions": "y" * 2000})
    declared = client.post(
        "/api/v1/projects",
        content=big,
        headers=admin.headers | {"Content-Type": "application/json"},
    )
    assert declared.status_code == 413

    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(4):
            yield b" " * 400  # no Content-Length: sent chunked

    streamed = client.post(
        "/api/v1/projects",
        content=chunks(),
        headers=admin.headers | {"Content-Type": "application/json"},
    )
    assert streamed.status_code == 413
    assert "1000 bytes" in streamed.json()["detail"]
    small = {"name": "small", "kind": "ranking"}
    assert client.post("/api/v1/projects", json=small, headers=admin.headers).status_code == 201


def test_an_unexpected_error_is_a_logged_500_with_a_request_id(
    app, admin, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from app.projects import service

    def broken(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "list_projects", broken)
    with TestClient(app, raise_server_exceptions=False) as client, caplog.at_level(logging.ERROR):
        answer = client.get("/api/v1/projects", headers=admin.headers)
    assert answer.status_code == 500
    request_id = answer.headers["x-request-id"]
    assert answer.json()["request_id"] == request_id
    assert "boom" not in answer.text
    assert any(request_id in r.getMessage() and r.exc_info for r in caplog.records)
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_every_page_and_answer_carries_the_security_headers(client, admin, factory) -> None:  # type: ignore[no-untyped-def]
    from tests.test_access import ACCESS

    project = factory.project()
    pages = [p.replace("{project_id}", str(project.id)) for m, p in ACCESS if m == "GET"]
    extra = ["/api/v1/nothing", "/static/css/app.css", "/openapi.json", "/login?next=//x"]
    seen = set()
    for path in [*pages, *extra]:
        if "{" in path:
            continue  # ids of objects this test does not make
        answer = client.get(path, headers=admin.headers, follow_redirects=False)
        csp = answer.headers["content-security-policy"]
        script_src = csp.split("script-src")[1].split(";")[0]
        assert script_src.strip() == "'self'", (path, csp)
        assert "frame-ancestors 'none'" in csp
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert len(answer.headers["x-request-id"]) == 32
        seen.add(answer.status_code)
    assert 200 in seen and 404 in seen


def _assert_request_id_and_security_headers(answer) -> None:  # type: ignore[no-untyped-def]
    assert len(answer.headers["x-request-id"]) == 32, answer.headers
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"


def test_early_answers_carry_the_request_id_and_security_headers(
    engine, admin, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The 503 of back-pressure and the 413 of the body limit are sent before any route runs:
    they carry the same headers as every other answer."""
    from fastapi.testclient import TestClient

    from app.config import get_settings
    from app.main import create_app

    monkeypatch.setenv("RLHF_MAX_BODY_BYTES", "100")
    get_settings.cache_clear()
    try:
        with TestClient(create_app()) as client:
            big = client.post("/api/v1/projects", content=b"x" * 200, headers=admin.headers)
            assert big.status_code == 413
            _assert_request_id_and_security_headers(big)
        monkeypatch.setenv("RLHF_MAX_IN_FLIGHT", "0")  # every request finds the process full
        get_settings.cache_clear()
        with TestClient(create_app()) as client:
            for path in ("/api/v1/projects", "/login", "/api/v1/projects/1/tasks/next"):
                busy = client.get(path, headers=admin.headers)
                assert busy.status_code == 503 and busy.headers["retry-after"], path
                _assert_request_id_and_security_headers(busy)
    finally:
        get_settings.cache_clear()


def test_templates_have_no_inline_executable_scripts() -> None:
    import re

    from app.templating import ROOT

    for template in (ROOT / "templates").rglob("*.html"):
        text = template.read_text()
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, (template, tag)
        assert not re.search(r"\son[a-z]+\s*=", text), template
        assert "javascript:" not in text, template


def test_cookies_are_secure_over_https(app, factory) -> None:  # type: ignore[no-untyped-def]
    import re

    from fastapi.testclient import TestClient

    user = factory.user("admin")
    with TestClient(app, base_url="https://testserver") as client:
        page = client.get("/login")
        assert "Secure" in page.headers["set-cookie"]
        token = re.search(r'name="csrf-token" content="([^"]+)"', page.text).group(1)
        form = {"email": user.email, "password": "correct-horse-battery", "csrf_token": token}
        answer = client.post("/login", data=form, follow_redirects=False)
        assert answer.status_code == 303
        assert "rlhf_session=" in answer.headers["set-cookie"]
        assert "Secure" in answer.headers["set-cookie"]
        assert answer.headers["strict-transport-security"].startswith("max-age=")
    with TestClient(app) as plain:
        assert "Secure" not in plain.get("/login").headers["set-cookie"]


def test_the_api_explorer_runs_without_inline_scripts(client) -> None:  # type: ignore[no-untyped-def]
    import re

    page = client.get("/docs")
    assert page.status_code == 200
    assert "<script>" not in page.text
    assert re.findall(r"<script[^>]*src=\"([^\"]+)\"", page.text)[-1] == "/static/js/api_docs.js"
    assert "script-src 'self';" in page.headers["content-security-policy"]
    for src in re.findall(r"(?:src|href)=\"([^\"]+)\"", page.text):
        assert src.startswith("/static/"), src  # vendored, no CDN
        assert client.get(src).status_code == 200
    assert client.get("/openapi.json").json()["components"]["schemas"]["Error"]
