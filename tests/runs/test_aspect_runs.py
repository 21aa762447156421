"""A reward-model run on a `ratings` snapshot learns one aspect or a weighted sum of them."""

from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from app.labeling.schemas import AnnotationIn
from app.runs.models import TrainingRun
from tests.helpers import ranking_items
from tests.runs.conftest import label_all
from tests.test_pages import login

QUESTIONS = [{"name": "helpfulness", "type": "likert", "min": 1, "max": 7}]


def _answered(task):  # type: ignore[no-untyped-def]
    ids = [str(r.id) for r in task.responses]
    return AnnotationIn(
        scores={rid: 1 if i == 0 else -1 for i, rid in enumerate(ids)},
        answers={"helpfulness": {rid: 7 - i for i, rid in enumerate(ids)}},
    ).model_dump(exclude_unset=True)


def test_an_rm_run_on_ratings_takes_the_aspect_from_the_form_and_the_api(
    client, factory, session, tmp_path, artifacts, reward_dir
) -> None:
    project = factory.project(kind="rating", k=2, questions=QUESTIONS)
    factory.items(project, ranking_items(6, k=2), tmp_path)
    assert label_all(session, project, factory.user(), _answered) == 6
    snapshot, _ = datasets_service.create_snapshot(
        session=session, project=project, data=SnapshotCreate(kind="ratings", split=1.0)
    )
    admin = factory.user("admin")
    token = login(client, admin)
    form = client.get(f"/admin/runs/new?snapshot={snapshot.id}&kind=rm")
    assert 'id="aspect-row"' in form.text and "aspect_weights" in form.text
    data = {"csrf_token": token, "kind": "rm", "snapshot_id": snapshot.id, "model": reward_dir}
    posted = client.post(
        "/admin/runs", data=data | {"aspect": "helpfulness"}, follow_redirects=False
    )
    assert posted.status_code == 303, posted.text
    run = session.get(TrainingRun, int(posted.headers["location"].rsplit("/", 1)[1]))
    assert run.config["aspect"] == "helpfulness"
    weights = {"aspect_weights": {"helpfulness": 1, "score": 0.5}}
    api = client.post(
        "/api/v1/runs",
        json={"kind": "rm", "snapshot_id": snapshot.id, "model": reward_dir, "config": weights},
        headers=admin.headers,
    )
    assert api.status_code == 201, api.text
    assert api.json()["config"]["aspect_weights"] == {"helpfulness": 1.0, "score": 0.5}
    dpo = client.post(
        "/api/v1/runs",
        json={"kind": "dpo", "snapshot_id": snapshot.id, "model": reward_dir},
        headers=admin.headers,
    )
    assert dpo.status_code == 422 and "a dpo run trains on a pairs snapshot" in dpo.text
