"""Every snapshot kind, single- and multi-turn: its row shape and the run kinds it feeds."""

import json
import re
from collections.abc import Iterator

import pytest

from app.datasets import service
from app.datasets.kinds import DatasetKind
from app.datasets.schemas import SnapshotCreate
from app.runs.models import RunKind, run_kinds_for
from tests.helpers import annotate, prompts_of

CONVERSATION = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello"},
    {"role": "assistant", "content": "hi, how can I help"},
    {"role": "user", "content": "write a poem"},
]
SHAPES = ("single", "multi")
# The row fields that carry an answer, per kind: strings after a plain prompt, lists of
# assistant messages after a conversation.
ANSWERS = {
    DatasetKind.sft: ("completion",),
    DatasetKind.pairs: ("chosen", "rejected"),
    DatasetKind.rankings: ("responses",),
    DatasetKind.ratings: ("response",),
    DatasetKind.prompts: (),
    DatasetKind.kto: ("completion",),
}
# What each kind feeds, as the product promises it (the table must agree).
FEEDS = {
    DatasetKind.sft: [RunKind.sft],
    DatasetKind.rankings: [RunKind.rm],
    DatasetKind.pairs: [RunKind.rm, RunKind.dpo],
    DatasetKind.ratings: [RunKind.rm],
    DatasetKind.prompts: [RunKind.ppo],
    DatasetKind.kto: [],
}


@pytest.fixture
def artifacts(tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield tmp_path / "artifacts"
    get_settings.cache_clear()


def _items(shape: str, n: int = 4, k: int = 3) -> list[dict]:
    items = []
    for i in range(n):
        prompt = f"question {i}" if shape == "single" else CONVERSATION
        items.append(
            {"id": f"{shape}{i}", "prompt": prompt, "responses": [f"answer {j}" for j in range(k)]}
        )
    return items


def make_snapshots(session, factory, tmp_path, shape: str) -> dict[DatasetKind, object]:  # type: ignore[no-untyped-def]
    """One snapshot of every kind from labeled projects whose prompts have this shape."""
    labeler = factory.user()
    ranking = factory.project(kind="ranking", k=3)
    rating = factory.project(kind="rating", k=3, rating_scale="0-5")
    demonstration = factory.project(kind="demonstration", k=1)
    for project in (ranking, rating, demonstration):
        factory.items(project, _items(shape), tmp_path)
    for pid, rids in prompts_of(session, ranking):
        annotate(session, ranking, pid, labeler, {"ranking": rids})
    for pid, rids in prompts_of(session, rating):
        scores = {str(rid): (5, 3, 0)[i] for i, rid in enumerate(rids)}  # kto: true, –, false
        annotate(session, rating, pid, labeler, {"scores": scores}, kind="rating")
    for pid, _ in prompts_of(session, demonstration):
        payload = {"demonstration": "roses are red"}
        annotate(session, demonstration, pid, labeler, payload, kind="demonstration")
    source = {
        DatasetKind.sft: demonstration,
        DatasetKind.rankings: ranking,
        DatasetKind.pairs: ranking,
        DatasetKind.ratings: rating,
        DatasetKind.prompts: ranking,
        DatasetKind.kto: rating,
    }
    made = {}
    for kind, project in source.items():
        data = SnapshotCreate(kind=kind.value, split=1.0)  # type: ignore[arg-type]
        made[kind], _ = service.create_snapshot(session=session, project=project, data=data)
    return made


def train_rows(snapshot) -> list[dict]:  # type: ignore[no-untyped-def]
    path = service.snapshot_files(snapshot=snapshot)["train.jsonl"]
    return [json.loads(line) for line in path.read_text().splitlines()]


# The dataset formats TRL documents (huggingface.co/docs/trl/dataset_formats), written out so
# that no TRL install is needed: the columns a row must have, those it may have, and the type
# of each. "text" is a string in the standard form, a list of {"role", "content"} messages in
# the conversational form (every text column of a row in the same form). `rankings` and
# `ratings` are our own forms (TRL has no K-wise or scalar-score trainer): `datasets` loads
# them as they are, and a rankings row expands into TRL preference pairs.
TRL_FORMATS: dict[DatasetKind, dict[str, dict[str, str]]] = {
    # "prompt-completion" (SFTTrainer); a demonstrated conversation is "language modeling".
    DatasetKind.sft: {"required": {"prompt": "text", "completion": "text"}, "optional": {}},
    # "preference" with explicit prompt (DPOTrainer, RewardTrainer; RewardTrainer reads "margin").
    DatasetKind.pairs: {
        "required": {"prompt": "text", "chosen": "text", "rejected": "text"},
        "optional": {"margin": "number"},
    },
    # "unpaired preference" (KTOTrainer, BCO).
    DatasetKind.kto: {
        "required": {"prompt": "text", "completion": "text", "label": "bool"},
        "optional": {},
    },
    # "prompt-only" (GRPOTrainer, RLOOTrainer, OnlineDPOTrainer, PPO).
    DatasetKind.prompts: {"required": {"prompt": "text"}, "optional": {}},
    DatasetKind.rankings: {
        "required": {"prompt": "text", "responses": "texts"},
        "optional": {"ranks": "ints"},
    },
    DatasetKind.ratings: {
        "required": {"prompt": "text", "response": "text", "score": "number"},
        "optional": {"scores": "aspects"},
    },
}


def _is_messages(value: object) -> bool:
    return (
        isinstance(value, list)
        and len(value) > 0
        and all(isinstance(m, dict) and set(m) == {"role", "content"} for m in value)
        and all(m["role"] in ("system", "user", "assistant") for m in value)
        and all(isinstance(m["content"], str) for m in value)
    )


def _fits(value: object, kind: str, conversational: bool) -> bool:
    if kind == "text":
        return _is_messages(value) if conversational else isinstance(value, str)
    if kind == "texts":
        return isinstance(value, list) and all(_fits(v, "text", conversational) for v in value)
    if kind == "ints":
        return isinstance(value, list) and all(type(v) is int for v in value)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "aspects":
        return isinstance(value, dict) and all(_fits(v, "number", False) for v in value.values())
    return isinstance(value, int | float) and not isinstance(value, bool)  # number


@pytest.mark.parametrize("shape", SHAPES)
def test_every_snapshot_kind_is_in_the_format_trl_documents(
    session, factory, tmp_path, artifacts, shape
) -> None:
    assert set(TRL_FORMATS) == set(DatasetKind)
    for kind, snapshot in make_snapshots(session, factory, tmp_path, shape).items():
        spec = TRL_FORMATS[kind]
        rows = train_rows(snapshot)
        assert rows, kind
        for row in rows:
            # Beside TRL's columns, the one rlhf-studio adds: where the labels behind a row
            # came from (a prompts row has no label behind it).
            source = row.pop("source", None)
            assert source == (None if kind == DatasetKind.prompts else "human"), (kind, row)
            if kind == DatasetKind.sft and "messages" in row:
                assert set(row) == {"messages"} and _is_messages(row["messages"])
                continue
            assert (
                set(spec["required"]) <= set(row) <= set(spec["required"]) | set(spec["optional"])
            ), (kind, row)
            conversational = not isinstance(row["prompt"], str)
            assert conversational == (shape == "multi"), kind
            for column, type_ in (spec["required"] | spec["optional"]).items():
                if column in row:
                    assert _fits(row[column], type_, conversational), (kind, column, row)


def test_the_table_covers_every_snapshot_kind() -> None:
    assert {kind: run_kinds_for(kind) for kind in DatasetKind} == FEEDS


@pytest.mark.parametrize("shape", SHAPES)
def test_rows_are_standard_or_conversational_whole(
    session, factory, tmp_path, artifacts, shape
) -> None:
    snapshots = make_snapshots(session, factory, tmp_path, shape)
    assistant = [{"role": "assistant", "content": "roses are red"}]
    for kind, snapshot in snapshots.items():
        rows = train_rows(snapshot)
        assert rows, kind
        for row in rows:
            if shape == "single":
                assert re.fullmatch(r"question \d", row["prompt"]), kind
            else:
                assert row["prompt"] == CONVERSATION, kind
            for field in ANSWERS[kind]:
                values = row[field] if field == "responses" else [row[field]]
                for value in values:
                    if shape == "single":
                        assert isinstance(value, str), (kind, field)
                    else:
                        assert isinstance(value, list) and len(value) == 1, (kind, field)
                        assert value[0]["role"] == "assistant", (kind, field)
    sft = train_rows(snapshots[DatasetKind.sft])[0]
    expected = "roses are red" if shape == "single" else assistant
    assert sft["completion"] == expected


@pytest.mark.parametrize("kind", list(DatasetKind))
def test_a_snapshot_offers_only_the_run_kinds_it_feeds(
    client, session, factory, tmp_path, artifacts, kind
) -> None:
    admin = factory.user("admin")
    snapshot = make_snapshots(session, factory, tmp_path, "single")[kind]
    feeds = FEEDS[kind]

    page = client.get(
        f"/admin/projects/{snapshot.project_id}/snapshots", headers=admin.headers
    ).text
    row = re.search(rf'<tr id="snapshot-{snapshot.id}">(.*?)</tr>', page, re.S).group(1)
    offered = re.findall(rf"/admin/runs/new\?snapshot={snapshot.id}&amp;kind=(\w+)", row)
    assert offered == [k.value for k in feeds]

    form = client.get(f"/admin/runs/new?snapshot={snapshot.id}", headers=admin.headers)
    if not feeds:
        assert form.status_code == 422
        assert f"snapshot {snapshot.id} is a {kind} snapshot: no run kind trains on it" in form.text
    else:
        assert form.status_code == 200
        assert f'<option value="{feeds[0]}" selected>' in form.text
    models = {}  # a model is a directory with a config.json of the architecture its role needs
    for role, config in (
        ("policy", {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}),
        ("reward", {"architectures": ["BertForSequenceClassification"], "id2label": {"0": "x"}}),
    ):
        (tmp_path / role).mkdir()
        (tmp_path / role / "config.json").write_text(json.dumps(config))
        models[role] = str(tmp_path / role)
    for run_kind in RunKind:
        page = client.get(
            f"/admin/runs/new?snapshot={snapshot.id}&kind={run_kind}", headers=admin.headers
        )
        assert page.status_code == (200 if run_kind in feeds else 422), run_kind
        if run_kind in feeds:
            assert f'<option value="{run_kind}" selected>' in page.text
        started = client.post(
            "/api/v1/runs",
            json={
                "kind": run_kind,
                "snapshot_id": snapshot.id,
                "model": models["policy"],
                "reward_model": models["reward"],
            },
            headers=admin.headers,
        )
        assert started.status_code == (201 if run_kind in feeds else 422), started.text
        if run_kind not in feeds:
            assert started.json()["field"] == "snapshot_id"


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    from trainer.tiny import build_tiny_causal_lm

    return str(build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "causal-lm"))


@pytest.fixture
def fresh_accelerate_state() -> Iterator[None]:
    """TRL's trainers set accelerate's process-wide state; later in-process trainers
    (ours, with other precision flags) need it cleared again."""
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)


def test_trl_trains_one_step_on_every_snapshot_kind_unchanged(
    session, factory, tmp_path, artifacts, backend, tiny_lm, fresh_accelerate_state
) -> None:
    """The files are TRL's formats: each kind, single- and multi-turn, loads with `datasets`
    and trains one step in the matching TRL trainer (kto: KTOTrainer). TRL has no K-wise reward
    trainer, so a rankings file goes to RewardTrainer through its pairs; no TRL trainer reads
    ratings."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset, load_dataset
    from transformers import AutoTokenizer

    if backend != "sqlite":
        pytest.skip("the files do not depend on the database; trained once, on SQLite")
    tokenizer = AutoTokenizer.from_pretrained(tiny_lm)
    common = {
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "report_to": [],
        "save_strategy": "no",
        "use_cpu": True,
        "disable_tqdm": True,
    }

    def reward_length(completions, **_):  # type: ignore[no-untyped-def]
        return [float(len(str(c))) for c in completions]

    def trainer_for(kind: DatasetKind, data: Dataset, out: str):  # type: ignore[no-untyped-def]
        args = {"output_dir": out, **common}
        if kind == DatasetKind.sft:
            return trl.SFTTrainer(
                model=tiny_lm, args=trl.SFTConfig(**args), train_dataset=data,
                processing_class=tokenizer,
            )  # fmt: skip
        if kind in (DatasetKind.pairs, DatasetKind.rankings):
            return trl.RewardTrainer(
                model=tiny_lm, args=trl.RewardConfig(**args), train_dataset=data,
                processing_class=tokenizer,
            )  # fmt: skip
        if kind == DatasetKind.kto:
            return trl.KTOTrainer(
                model=tiny_lm, args=trl.KTOConfig(**args), train_dataset=data,
                processing_class=tokenizer,
            )  # fmt: skip
        if kind == DatasetKind.prompts:
            grpo = trl.GRPOConfig(**args, num_generations=2, max_completion_length=8)
            return trl.GRPOTrainer(
                model=tiny_lm, reward_funcs=reward_length, args=grpo, train_dataset=data,
                processing_class=tokenizer,
            )  # fmt: skip
        raise AssertionError(kind)

    for shape in SHAPES:
        (tmp_path / shape).mkdir()
        snapshots = make_snapshots(session, factory, tmp_path / shape, shape)
        for kind, snapshot in snapshots.items():
            if kind == DatasetKind.ratings:
                continue
            path = service.snapshot_files(snapshot=snapshot)["train.jsonl"]
            data = load_dataset(
                "json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf")
            )
            if kind == DatasetKind.rankings:
                data = Dataset.from_list(
                    [
                        {"prompt": row["prompt"], "chosen": better, "rejected": worse}
                        for row in data
                        for i, better in enumerate(row["responses"])
                        for worse in row["responses"][i + 1 :]
                    ]
                )
            runs = [trainer_for(kind, data, str(tmp_path / f"{shape}-{kind}"))]
            if kind == DatasetKind.pairs:
                dpo = trl.DPOConfig(output_dir=str(tmp_path / f"{shape}-dpo"), **common)
                runs.append(
                    trl.DPOTrainer(
                        model=tiny_lm, args=dpo, train_dataset=data, processing_class=tokenizer
                    )
                )
            for trainer in runs:
                result = trainer.train()
                assert trainer.state.global_step == 1, (shape, kind)
                assert result.training_loss == result.training_loss, (shape, kind)  # not NaN
