"""One of everything an admin can look at: projects of each kind with labels, a snapshot, a
finished run with metrics and its registered model (rows written directly: no files needed)."""

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from tests.helpers import ranking_items


@dataclass
class World:
    admin: Any
    labeler: Any
    other: Any
    ranking: Any
    rating: Any
    demonstration: Any
    snapshot_id: int
    run_id: int
    model_id: int


def build(live: Any) -> World:
    from app.base import utcnow
    from app.datasets.models import Snapshot
    from app.labeling import service as labeling
    from app.labeling.schemas import AnnotationIn
    from app.runs.models import RegisteredModel, RunMetric, TrainingRun

    admin, labeler, other = live.user("admin"), live.user(), live.user()
    ranking = live.project(ranking_items(4, k=3), k=3, criteria=["unsafe"], overlap=2)
    rating = live.project(ranking_items(2, k=2), kind="rating", k=2, rating_scale="thumbs")
    demonstration = live.project(
        [{"id": f"d{i}", "prompt": f"write {i}"} for i in range(2)], kind="demonstration", k=1
    )
    with live.session() as session:
        task = labeling.next_task(session=session, project=ranking, user=other)
        ids = [r.id for r in task.responses]
        labeling.submit(
            session=session,
            assignment_id=task.assignment_id,
            user=other,
            body=AnnotationIn(ranking=ids),
        )
        skipped = labeling.next_task(session=session, project=ranking, user=other)
        labeling.skip(
            session=session, assignment_id=skipped.assignment_id, user=other, reason="unclear"
        )
        labeling.next_task(session=session, project=ranking, user=other)  # an open lease
        snapshot = Snapshot(
            project_id=ranking.id,
            kind="rankings",
            version=1,
            params={"kind": "rankings", "split": 0.9, "method": "ranked-pairs"},
            content_hash="0" * 64,
            train_rows=1,
            test_rows=0,
            directory="snapshots/none",
        )
        session.add(snapshot)
        session.flush()
        start = utcnow() - timedelta(minutes=3)
        run = TrainingRun(
            kind="rm",
            status="succeeded",
            snapshot_id=snapshot.id,
            base_model="/models/encoder",
            name="rm on snapshot",
            attempt=1,
            started_at=start,
            finished_at=start + timedelta(seconds=95),
        )
        session.add(run)
        session.flush()
        model = RegisteredModel(
            name=f"run-{run.id}-rm",
            kind="reward",
            path="/artifacts/runs/x/output",
            base_model="/models/encoder",
            snapshot_content_hash=snapshot.content_hash,
            run_id=run.id,
            metrics={"eval_accuracy": 0.8125, "eval_loss": 0.4321},
        )
        session.add(model)
        session.flush()
        run.output_model_id = model.id
        for step in range(1, 21):
            values = {
                "loss": 0.693 + (step % 3) * 1e-5,  # noise in the 5th decimal
                "tokens_per_s": 123456789.125 + step,  # long values
                "grad_norm": 0.0000123 * step,
            }
            session.add(RunMetric(run_id=run.id, step=step, values=values))
        session.commit()
        return World(
            admin, labeler, other, ranking, rating, demonstration, snapshot.id, run.id, model.id
        )
