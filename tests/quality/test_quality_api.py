"""The quality report through the API, the CLI and the pages; who may see it."""

import json

from typer.testing import CliRunner

from app.cli import app as cli
from tests.quality import sim


def _project(factory, session, tmp_path):  # type: ignore[no-untyped-def]
    project = factory.project(k=4, overlap=3, gold_rate=0.2)
    factory.items(project, sim.items(36, gold=6), tmp_path)
    crew = sim.crew(session, ["careful"] * 4 + ["first"])
    sim.work(session, project, crew, seed=3)
    return project, crew


def test_api_cli_and_pages_show_the_report_to_admins_only(client, factory, session, tmp_path):  # type: ignore[no-untyped-def]
    admin, labeler = factory.user("admin"), factory.user("labeler")
    project, crew = _project(factory, session, tmp_path)
    url = f"/api/v1/projects/{project.id}/quality?rounds=30"
    body = client.get(url, headers=admin.headers).json()
    assert body["alpha"] is not None and len(body["alpha_interval"]) == 2
    row = next(r for r in body["labelers"] if r["user_id"] == crew[-1][0].id)
    assert set(row) >= {
        "email",
        "labels",
        "gold_seen",
        "gold_accuracy",
        "agreement",
        "reliability",
        "median_seconds",
        "flags",
        "excluded",
    }
    assert "position-bias" in row["flags"] and row["gold_seen"] >= 1

    result = CliRunner().invoke(cli, ["quality", project.name, "--json", "--rounds", "20"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["labelers"][-1]["email"] == row["email"]
    human = CliRunner().invoke(cli, ["quality", str(project.id), "--rounds", "0"])
    assert "position-bias: ranked the first shown response first" in human.output
    missing = CliRunner().invoke(cli, ["quality", "no-such-project"])
    assert missing.exit_code == 2 and "no-such-project" in missing.output

    page = client.get(f"/admin/projects/{project.id}/quality?sort=agreement", headers=admin.headers)
    assert page.status_code == 200 and row["email"] in page.text and "alpha-chart" in page.text
    drill = client.get(
        f"/admin/projects/{project.id}/quality/labelers/{crew[-1][0].id}", headers=admin.headers
    )
    assert drill.status_code == 200 and "gold" in drill.text and "shown order" in drill.text
    assert client.get("/admin/quality", headers=admin.headers).status_code == 200

    for path in (
        url,
        f"/api/v1/projects/{project.id}/quality/labelers/{crew[0][0].id}",
        f"/api/v1/projects/{project.id}/quality/alpha",
    ):
        assert client.get(path, headers=labeler.headers).status_code == 403
    assert (
        client.get(f"/admin/projects/{project.id}/quality", headers=labeler.headers).status_code
        == 403
    )
    bad_sort = client.get(f"/admin/projects/{project.id}/quality?sort=nope", headers=admin.headers)
    assert bad_sort.status_code == 422 and "sort" in bad_sort.text
