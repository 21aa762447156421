"""`rlhf` commands of aggregation: leaderboard, exclude."""

from typing import Annotated, Any

import typer

from app.cli_support import JsonOpt, db_session, output

# Top-level `rlhf` commands; app/cli.py registers them.
commands = typer.Typer()


@commands.command()
def leaderboard(
    project: str,
    rounds: Annotated[int, typer.Option(help="Bootstrap rounds for the intervals.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Models ranked by Bradley-Terry with bootstrap 95% intervals, and their Elo."""
    from app.aggregation import service
    from app.projects import service as project_service

    with db_session() as session:
        found = project_service.get_by_ref(session=session, ref=project)
        board = service.model_leaderboard(session=session, project=found, rounds=rounds, seed=seed)
    output(
        board.model_dump(),
        as_json,
        lambda b: "\n".join(
            [f"{'rank':>4}  {'model':30} {'rating':>8}  {'95% interval':>17}  {'elo':>7}  games"]
            + [
                f"{r['rank']:>4}  {r['model'][:30]:30} {r['rating']:8.1f}  "
                f"{r['lower']:8.1f}–{r['upper']:<8.1f}  {r['elo']:7.1f}  {r['comparisons']}"
                for r in b["rows"]
            ]
            + [f"{b['comparisons']} comparisons, {b['rounds']} rounds, seed {b['seed']}"]
        ),
    )


@commands.command()
def exclude(
    user: Annotated[str, typer.Argument(help="User id or email.")],
    project: Annotated[
        str | None, typer.Option(help="Project id or name; leave out for all projects.")
    ] = None,
    reason: str = "",
    undo: Annotated[bool, typer.Option(help="Count the labeler in again.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Leave a labeler out of every aggregate of a project (or of all projects)."""
    from app.aggregation import service
    from app.aggregation.schemas import ExclusionOut
    from app.auth import service as auth_service
    from app.projects import service as project_service

    with db_session() as session:
        found = auth_service.get_by_ref(session=session, ref=user)
        project_id = (
            project_service.get_by_ref(session=session, ref=project).id if project else None
        )
        if undo:
            service.include_labeler(session=session, user_id=found.id, project_id=project_id)
            session.commit()
            data: dict[str, Any] = {"user_id": found.id, "project_id": project_id, "removed": True}
        else:
            made = service.exclude_labeler(
                session=session, user_id=found.id, project_id=project_id, reason=reason
            )
            session.commit()
            data = ExclusionOut.model_validate(made).model_dump(mode="json")
    where = f"project {project_id}" if project_id else "all projects"
    output(
        data,
        as_json,
        lambda d: f"{'counted in again' if undo else 'excluded'}: user {found.id} ({where})",
    )
