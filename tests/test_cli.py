"""The `rlhf` command against the test database."""

import json

from typer.testing import CliRunner

from app.cli import app
from tests.helpers import ranking_items

runner = CliRunner()


def rlhf(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), input=input)


def test_users_projects_import_export_round_trip(engine, tmp_path) -> None:
    made = rlhf(
        "users",
        "create",
        "boss@example.com",
        "--role",
        "admin",
        "--password-stdin",
        "--token",
        "--json",
        input="a-long-password\n",
    )
    assert made.exit_code == 0, made.output
    assert json.loads(made.stdout)["token"].startswith("rlhf_")

    created = rlhf(
        "projects",
        "create",
        "cli project",
        "--kind",
        "ranking",
        "--k",
        "2",
        "--overlap",
        "2",
        "--criteria",
        "unsafe,rude",
    )
    assert created.exit_code == 0, created.output
    project_id = created.stdout.strip()
    assert project_id.isdigit()

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps(x) + "\n" for x in ranking_items(3, k=2)))
    imported = rlhf("import", "cli project", str(items), "--json")
    assert imported.exit_code == 0, imported.output
    assert json.loads(imported.stdout)["imported"] == 3

    shown = json.loads(rlhf("projects", "show", project_id, "--json").stdout)
    assert shown["criteria"] == ["unsafe", "rude"] and shown["stats"]["prompts"] == 3

    out = tmp_path / "prompts.jsonl"
    exported = rlhf("export", project_id, "--kind", "prompts", "-o", str(out))
    assert exported.exit_code == 0, exported.output
    assert len(out.read_text().splitlines()) == 3


def test_bad_import_line_is_reported_with_its_number(engine, tmp_path) -> None:
    rlhf("projects", "create", "p", "--kind", "ranking", "--k", "2")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(ranking_items(1, k=2)[0]) + "\n[1, 2]\n")
    result = rlhf("import", "p", str(bad))
    assert result.exit_code == 2
    assert "line 2: each line must be a JSON object" in result.stderr


def test_unknown_project_and_bad_options_are_clear_errors(engine) -> None:
    missing = rlhf("projects", "show", "nope")
    assert missing.exit_code == 2 and "no project with id or name 'nope'" in missing.stderr
    bad = rlhf("projects", "create", "x", "--kind", "ranking", "--k", "1")
    assert bad.exit_code == 2 and "k ≥ 2" in bad.stderr
