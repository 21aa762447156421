"""The progress bar of long CLI commands: rows, rate and ETA on stderr, only when wanted."""

import io
import json

from typer.testing import CliRunner

from app.cli import app
from app.progress import TerminalBar
from tests.helpers import annotate, prompts_of, ranking_items


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_shows_rows_rate_and_an_eta_on_a_terminal_only() -> None:
    tty = _Tty()
    bar = TerminalBar("import", unit="prompts", stream=tty)
    bar.started -= 10  # ten seconds in
    bar(5000, 250, 1000)
    line = bar.line(bar.started + 10)
    assert "25%" in line and "5,000 prompts" in line and "500/s" in line
    assert "ETA 0:30" in line  # a quarter took 10 s: three quarters take 30 s more
    bar.close()
    assert tty.getvalue().endswith("\n") and "import [######" in tty.getvalue()

    pipe = io.StringIO()  # not a terminal: nothing
    quiet = TerminalBar("import", stream=pipe)
    quiet(1, 1, 2)
    quiet.close()
    assert pipe.getvalue() == ""


def test_export_and_snapshot_show_progress_when_asked(engine, factory, tmp_path) -> None:
    labeler = factory.user()
    project = factory.project(kind="ranking", k=2)
    factory.items(project, ranking_items(5, k=2), tmp_path)
    for pid, rids in prompts_of(factory.session, project):
        annotate(factory.session, project, pid, labeler, {"ranking": rids})
    runner = CliRunner()
    out = tmp_path / "rankings.jsonl"
    shown = runner.invoke(
        app, ["export", str(project.id), "--kind", "rankings", "-o", str(out), "--progress"]
    )
    assert shown.exit_code == 0, shown.output
    assert "export [" in shown.stderr and "wrote 5 rows" in shown.stderr
    assert len(out.read_text().splitlines()) == 5
    quiet = runner.invoke(app, ["export", str(project.id), "--kind", "rankings"])
    assert quiet.exit_code == 0 and "export [" not in quiet.stderr
    assert len(quiet.stdout.splitlines()) == 5

    snap = runner.invoke(
        app,
        ["snapshot", str(project.id), "--kind", "rankings", "--method", "all", "--progress"],
    )
    assert snap.exit_code == 0, snap.output
    assert "snapshot [" in snap.stderr
    again = runner.invoke(
        app, ["snapshot", str(project.id), "--kind", "rankings", "--method", "all", "--json"]
    )
    assert again.exit_code == 0 and "snapshot [" not in again.stderr
    assert json.loads(again.stdout)["created"] is False
