"""A run's status changes only through the lifecycle table, and nothing outside it is allowed."""

import ast
from pathlib import Path

import pytest
from sqlalchemy import select

from app.runs import lifecycle
from app.runs.lifecycle import TRANSITIONS, Event, IllegalTransition
from app.runs.models import FINISHED, RunStatus, TrainingRun

RUNS = Path(__file__).resolve().parents[2] / "app" / "runs"
EVERY_PAIR = [(status, event) for status in RunStatus for event in Event]


def _run(status: RunStatus, **fields: object) -> TrainingRun:
    return TrainingRun(
        id=7,
        kind="sft",
        base_model="m",
        status=status,
        worker="w1",
        attempt=1,
        cancel_requested=False,
        **fields,
    )


@pytest.mark.parametrize(("status", "event"), EVERY_PAIR)
def test_every_status_and_event_moves_as_the_table_says_or_raises(
    status: RunStatus, event: Event
) -> None:
    run = _run(status)
    to = TRANSITIONS.get((status, event))
    if to is None:
        with pytest.raises(IllegalTransition, match=f"run 7 is {status}; it cannot be {event}"):
            lifecycle.move(run, event)
        assert run.status == status  # nothing changed
        return
    lifecycle.move(run, event, run_dir="/runs/7")  # the caller's fields go with the move
    assert run.status == to.status and run.run_dir == "/runs/7"
    for key, value in to.sets.items():
        assert getattr(run, key) == value, key
    assert (run.finished_at is not None) == (to.status in FINISHED)


def test_the_table_covers_what_a_run_goes_through() -> None:
    assert lifecycle.sources(Event.cancel) == [RunStatus.queued, RunStatus.running]
    assert lifecycle.sources(Event.retried) == [RunStatus.failed, RunStatus.cancelled]
    assert all(
        not lifecycle.allows(status, event) for status in FINISHED for event in Event
        if event != Event.retried
    )  # fmt: skip
    reached = {to.status for to in TRANSITIONS.values()}
    assert reached == set(RunStatus)  # every status is reachable, and left only by the table
    retried = lifecycle.move(
        _run(RunStatus.failed, exit_code=1, error="boom", retry_at=None), Event.retried
    )
    assert (retried.worker, retried.exit_code, retried.error, retried.finished_at) == (
        None,
        None,
        None,
        None,
    )


@pytest.mark.parametrize("status", list(RunStatus))
def test_a_conditional_move_changes_only_a_row_in_a_status_the_event_leaves(
    session, status: RunStatus
) -> None:
    for event in Event:
        run = TrainingRun(kind="sft", base_model="m", status=status, worker="w1")
        session.add(run)
        session.commit()
        to = TRANSITIONS.get((status, event))
        moved = lifecycle.move_where(session, run.id, event)
        session.commit()
        stored = session.scalar(select(TrainingRun.status).where(TrainingRun.id == run.id))
        if to is None:
            assert moved is None and stored == status, event
        else:
            assert moved == stored == to.status, event
    other = TrainingRun(kind="sft", base_model="m", status=RunStatus.running, worker="w1")
    session.add(other)
    session.commit()
    taken = lifecycle.move_where(session, other.id, Event.heartbeat, TrainingRun.worker == "w2")
    assert taken is None  # a condition that does not hold changes nothing


def _status_writes(source: str, name: str) -> list[str]:
    """Lines of `source` that set a `status` field by hand: `x.status = …`, `setattr(x,
    "status", …)`, or `.values(status=…)` in an UPDATE."""
    found = []
    for node in ast.walk(ast.parse(source, filename=name)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = [t for target in node.targets for t in ast.walk(target)]
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        found += [
            f"{name}:{node.lineno}"
            for t in targets
            if isinstance(t, ast.Attribute) and t.attr == "status"
        ]
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            by_setattr = (
                called == "setattr"
                and len(node.args) > 1
                and isinstance(node.args[1], ast.Constant)
                and node.args[1].value == "status"
            )
            by_update = called == "values" and any(k.arg == "status" for k in node.keywords)
            if by_setattr or by_update:
                found.append(f"{name}:{node.lineno}")
    return found


def test_no_module_of_the_runs_domain_sets_a_status_but_the_lifecycle() -> None:
    by_hand = (
        "run.status = 'failed'\n"
        "run.status, run.worker = 'queued', None\n"
        "setattr(run, 'status', 'running')\n"
        "session.execute(update(TrainingRun).values(status='cancelled'))\n"
    )
    assert _status_writes(by_hand, "x.py") == ["x.py:1", "x.py:2", "x.py:3", "x.py:4"]
    files = sorted(RUNS.glob("*.py"))
    assert len(files) > 10  # the scan saw the domain
    offenders = [
        w for f in files if f.name != "lifecycle.py" for w in _status_writes(f.read_text(), f.name)
    ]
    assert offenders == []
