"""`rlhf quality PROJECT`: which labelers to trust, and why."""

from typing import Annotated

import typer

from app.cli_support import JsonOpt, db_session, output

commands = typer.Typer()


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "–" if value is None else format(value, fmt)


def _human(report: dict) -> str:
    interval = report["alpha_interval"]
    lines = [
        f"Krippendorff's alpha (ordinal) {_num(report['alpha'], '.3f')}"
        + (f"  95% interval {interval[0]:.3f}–{interval[1]:.3f}" if interval else "")
        + f"  · {report['labels']} labels · {report['gold_items']} gold items",
    ]
    if report["ai_labels"]:
        with_ai = report["alpha_with_ai_interval"]
        lines.append(
            f"with AI labels {_num(report['alpha_with_ai'], '.3f')}"
            + (f"  95% interval {with_ai[0]:.3f}–{with_ai[1]:.3f}" if with_ai else "")
            + f"  · {report['ai_labels']} AI labels (alpha above leaves them out)"
        )
    lines += [
        f"{'labeler':32} {'labels':>6} {'gold':>4} {'gold acc':>8} {'agree':>6} "
        f"{'reliab.':>7} {'w/ AI':>6} {'median s':>8}  flags",
    ]
    for r in report["labelers"]:
        state = " [AI]" if r["ai"] else ""
        state += " [excluded]" if r["excluded"] else " [held]" if r["held"] else ""
        lines.append(
            f"{r['email'][:32]:32} {r['labels']:>6} {r['gold_seen']:>4} "
            f"{_num(r['gold_accuracy']):>8} {_num(r['agreement']):>6} "
            f"{_num(r['reliability']):>7} {_num(r['suggestion_agreement']):>6} "
            f"{_num(r['median_seconds'], '.1f'):>8}  "
            f"{', '.join(r['flags']) or '-'}{state}"
        )
        for flag in r["evidence"]:
            lines.append(f"{'':34}{flag['name']}: {flag['evidence']}")
    return "\n".join(lines)


@commands.command()
def quality(
    project: str,
    rounds: Annotated[int, typer.Option(help="Bootstrap rounds for alpha's interval.")] = 200,
    as_json: JsonOpt = False,
) -> None:
    """Labeler quality: alpha, and per labeler agreement, reliability, gold accuracy, flags."""
    from app.projects import service as project_service
    from app.quality import service

    with db_session() as session:
        found = project_service.get_by_ref(session=session, ref=project)
        report = service.project_quality(session=session, project=found, rounds=rounds)
    output(report.model_dump(mode="json"), as_json, _human)
