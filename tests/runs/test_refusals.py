"""Bad run input is refused where it is typed (API 422 naming the field, the start form with the
message beside the field, `rlhf runs start` exit 2), and nothing is queued: mistyped or missing
models, a hub id this machine does not have, a model of the wrong kind for its role, and every
config number out of its bounds."""

import importlib.util
import json
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import func, select
from typer.testing import CliRunner

from app.cli import app as cli
from app.datasets import service as datasets_service
from app.datasets.schemas import SnapshotCreate
from app.runs import registry
from app.runs.models import RegisteredModel, TrainingRun
from tests.runs.conftest import label_all
from tests.test_pages import login


@pytest.fixture
def world(factory, session, tmp_path, artifacts, policy_dir, reward_dir, monkeypatch):  # type: ignore[no-untyped-def]
    """Snapshots of every kind a run trains on, a ranking project to generate for, registered
    tiny models, an empty hub cache and a machine that cannot download."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    demo = factory.project(kind="demonstration", k=1)
    factory.items(demo, [{"id": f"d{i}", "prompt": f"say hi {i}"} for i in range(4)], tmp_path)
    label_all(session, demo, factory.user(), lambda t: {"demonstration": "hi"})
    ranking = factory.project(kind="ranking", k=2)
    items = [
        {"id": f"r{i}", "prompt": f"q {i}", "responses": [f"good {i}", "bad"]} for i in range(4)
    ]
    factory.items(ranking, items, tmp_path)
    label_all(session, ranking, factory.user(), lambda t: {"ranking": [r.id for r in t.responses]})
    snapshots = {}
    for project, kind in ((demo, "sft"), (demo, "prompts"), (ranking, "pairs")):
        snapshots[kind], _ = datasets_service.create_snapshot(
            session=session, project=project, data=SnapshotCreate(kind=kind, split=1.0)
        )
    fill = factory.project(kind="ranking", k=2)
    factory.items(fill, [{"id": "g", "prompt": "hello", "responses": []}], tmp_path)
    registry.register_model(session=session, name="tiny-causal-lm", kind="policy", path=policy_dir)
    registry.register_model(session=session, name="tiny-rm", kind="reward", path=reward_dir)
    session.commit()
    empty = tmp_path / "no-config"
    empty.mkdir()
    return {"snapshots": snapshots, "project": fill, "policy": policy_dir, "empty": str(empty)}


# Without the deepspeed package every deepspeed run is refused for that; with it, PPO alone.
DEEPSPEED_PPO = (
    "strategy deepspeed does not run PPO yet"
    if importlib.util.find_spec("deepspeed")
    else "the deepspeed package is not installed"
)
# (what, kind, model, reward model, config, field, what the message says)
CASES = [
    ("mistyped name", "sft", "tiny-causal-lmm", None, {}, "model",
     "model 'tiny-causal-lmm' is not a registered model, a local directory, or a hub id in the "
     "local cache (this machine cannot download)"),
    ("hub id not cached", "dpo", "Qwen/Qwen2.5-0.5B", None, {}, "model",
     "model 'Qwen/Qwen2.5-0.5B' is not a registered model, a local directory, or a hub id in the "
     "local cache (this machine cannot download)"),
    ("no such directory", "sft", "/no/such/model", None, {}, "model",
     "model '/no/such/model': no such directory"),
    ("a directory that holds no model", "sft", "{empty}", None, {}, "model",
     "is a directory without a config.json"),
    ("a reward model's weights for sft", "sft", "tiny-rm", None, {}, "model",
     "model 'tiny-rm' is a reward model in the registry; a policy must be a causal LM"),
    ("a reward model's directory for dpo", "dpo", "{reward}", None, {}, "model",
     "is a reward model (BertForSequenceClassification); a policy must be a causal LM"),
    ("a policy as ppo's reward model", "ppo", "tiny-causal-lm", "{policy}", {}, "reward_model",
     "is a causal LM (LlamaForCausalLM); a reward model is a sequence classifier with one label"),
    ("learning rate 0", "sft", "tiny-causal-lm", None, {"learning_rate": 0},
     "config.learning_rate", "learning_rate must be > 0 and ≤ 0.1; got 0"),
    ("learning rate huge", "dpo", "tiny-causal-lm", None, {"learning_rate": 1e30},
     "config.learning_rate", "learning_rate must be > 0 and ≤ 0.1; got 1e+30"),
    ("max_steps -5", "sft", "tiny-causal-lm", None, {"max_steps": -5}, "config.max_steps",
     "max_steps must be ≥ 1 and ≤ 10000000, or -1 (num_epochs decide); got -5"),
    ("0 epochs", "rm", "tiny-rm", None, {"num_epochs": 0}, "config.num_epochs",
     "num_epochs must be > 0"),
    ("batch size 0", "sft", "tiny-causal-lm", None, {"batch_size": 0}, "config.batch_size",
     "batch_size must be ≥ 1"),
    ("dpo beta 0", "dpo", "tiny-causal-lm", None, {"beta": 0}, "config.beta",
     "beta must be > 0"),
    ("negative kl", "ppo", "tiny-causal-lm", "tiny-rm", {"kl_coef": -1}, "config.kl_coef",
     "kl_coef must be ≥ 0"),
    ("ppo temperature 0", "ppo", "tiny-causal-lm", "tiny-rm", {"temperature": 0},
     "config.temperature", "temperature must be > 0"),
    ("a scheduler typo", "sft", "tiny-causal-lm", None, {"lr_scheduler": "cosin"},
     "config.lr_scheduler", "lr_scheduler must be one of cosine, linear, constant; got 'cosin'"),
    ("generate temperature -3", "generate", "tiny-causal-lm", None, {"temperature": -3},
     "config.temperature", "temperature must be ≥ 0 and ≤ 100; got -3"),
    ("generate n 10^12", "generate", "tiny-causal-lm", None, {"n": 10**12}, "config.n",
     "n must be ≥ 1 and ≤ 64; got 1000000000000"),
    ("generate top_p 0", "generate", "tiny-causal-lm", None, {"top_p": 0}, "config.top_p",
     "top_p must be > 0 and ≤ 1; got 0"),
    ("generate with a reward model", "generate", "tiny-rm", None, {}, "models",
     "model 'tiny-rm' is a reward model in the registry; a policy must be a causal LM"),
    ("0 processes", "sft", "tiny-causal-lm", None, {"processes": 0}, "config.processes",
     "processes must be ≥ 1 and ≤ 1024; got 0"),
    ("a strategy typo", "dpo", "tiny-causal-lm", None, {"strategy": "fsdp2"}, "config.strategy",
     "strategy must be one of ddp, fsdp, deepspeed; got 'fsdp2'"),
    ("ppo under deepspeed", "ppo", "tiny-causal-lm", "tiny-rm", {"strategy": "deepspeed"},
     "config.strategy", DEEPSPEED_PPO),
    ("a zero stage under ddp", "sft", "tiny-causal-lm", None, {"zero_stage": 3},
     "config.zero_stage", "zero_stage applies to strategy deepspeed, not ddp"),
    ("ppo with lora under fsdp", "ppo", "tiny-causal-lm", "tiny-rm",
     {"strategy": "fsdp", "lora": True}, "config.strategy",
     "strategy fsdp does not train LoRA adapters yet"),
    ("two machines", "sft", "tiny-causal-lm", None, {"machines": 2}, "config.machines",
     "machines must be 1 here"),
    ("a strategy for generate", "generate", "tiny-causal-lm", None, {"strategy": "fsdp"},
     "config.strategy", "unknown config key 'strategy'"),
]  # fmt: skip
SNAPSHOT_OF = {"sft": "sft", "rm": "pairs", "dpo": "pairs", "ppo": "prompts"}


def _fill(value, world, reward_dir):  # type: ignore[no-untyped-def]
    if value is None:
        return None
    return value.format(empty=world["empty"], reward=reward_dir, policy=world["policy"])


def _runs(session) -> int:  # type: ignore[no-untyped-def]
    return session.scalar(select(func.count()).select_from(TrainingRun))


def _body(case, world, reward_dir) -> dict:  # type: ignore[no-untyped-def]
    _, kind, model, reward, config, _, _ = case
    body = {"kind": kind, "config": config}
    if kind == "generate":
        body |= {"project": world["project"].id, "models": [_fill(model, world, reward_dir)]}
    else:
        body |= {"snapshot_id": world["snapshots"][SNAPSHOT_OF[kind]].id}
        body |= {"model": _fill(model, world, reward_dir)}
    if kind == "ppo":
        body["reward_model"] = _fill(reward, world, reward_dir)
    return body


def test_the_api_refuses_each_bad_input_naming_the_field(
    client, factory, session, world, reward_dir
) -> None:
    admin = factory.user("admin")
    for case in CASES:
        what, _, _, _, _, field, message = case
        answer = client.post(
            "/api/v1/runs", json=_body(case, world, reward_dir), headers=admin.headers
        )
        assert answer.status_code == 422, (what, answer.text)
        if field.startswith("config."):
            [error] = answer.json()["detail"]
            assert error["loc"] == ["body", "config", field.split(".", 1)[1]], what
            assert message in error["msg"], (what, error["msg"])
        else:
            assert answer.json()["field"] == field, (what, answer.text)
            assert message in answer.json()["detail"], (what, answer.json()["detail"])
    assert _runs(session) == 0
    # the same models and numbers within their bounds are queued
    good = {"kind": "sft", "snapshot_id": world["snapshots"]["sft"].id, "model": "tiny-causal-lm"}
    made = client.post(
        "/api/v1/runs",
        json=good | {"config": {"learning_rate": 0.1, "max_steps": -1}},
        headers=admin.headers,
    )
    assert made.status_code == 201, made.text
    rm = {"kind": "rm", "snapshot_id": world["snapshots"]["pairs"].id, "model": world["policy"]}
    assert client.post("/api/v1/runs", json=rm, headers=admin.headers).status_code == 201
    ppo = {
        "kind": "ppo",
        "snapshot_id": world["snapshots"]["prompts"].id,
        "model": "tiny-causal-lm",
        "reward_model": reward_dir,  # an unregistered reward model's directory will do
        "config": {"strategy": "fsdp"},  # PPO is sharded as SFT, RM and DPO are
    }
    assert client.post("/api/v1/runs", json=ppo, headers=admin.headers).status_code == 201
    generate = {"kind": "generate", "project": world["project"].id, "models": ["tiny-causal-lm"]}
    generate["config"] = {"temperature": 0, "n": 64, "top_p": 1}
    assert client.post("/api/v1/runs", json=generate, headers=admin.headers).status_code == 201


def test_the_start_form_shows_the_message_beside_the_field(
    client, factory, session, world, reward_dir
) -> None:
    token = login(client, factory.user("admin"))
    main_fields = {"max_steps", "num_epochs", "learning_rate", "batch_size", "max_length", "seed"}
    # fields of the form's own too: the distribution
    form_fields = main_fields | {"strategy", "processes", "machines", "zero_stage"}
    for case in CASES:
        what, kind, _, _, config, field, message = case
        if kind == "generate":
            continue  # started from a project's page
        body = _body(case, world, reward_dir)
        form = {k: str(v) for k, v in body.items() if k not in ("config", "models")}
        shown = {k: v for k, v in config.items() if k in form_fields}
        form |= {k: str(v) for k, v in shown.items()}
        rest = {k: v for k, v in config.items() if k not in form_fields}
        form["extra_config"] = json.dumps(rest) if rest else ""
        page = client.post("/admin/runs", data=form | {"csrf_token": token})
        assert page.status_code == 422, (what, page.text[:300])
        key = field.split(".", 1)[1] if field.startswith("config.") else field
        box = key if key in form_fields or not field.startswith("config.") else "extra_config"
        beside = page.text.split(f'id="error-{box}"', 1)
        assert len(beside) == 2, (what, box)
        assert escape(message) in beside[1].split("</span>", 1)[0], (what, beside[1][:300])
        # what was typed is still there to correct
        if key in main_fields:
            assert f'name="{key}" data-field="{key}" value="{config[key]}"' in page.text, what
    assert _runs(session) == 0


def test_rlhf_runs_start_exits_2_with_the_message(session, world, reward_dir) -> None:
    runner = CliRunner()
    for case in CASES:
        what, kind, model, reward, config, _, message = case
        args = ["runs", "start", "--kind", kind, "--model", _fill(model, world, reward_dir)]
        if kind == "generate":
            args += ["--project", world["project"].name]
        else:
            args += ["--snapshot", str(world["snapshots"][SNAPSHOT_OF[kind]].id)]
        if reward:
            args += ["--reward-model", _fill(reward, world, reward_dir)]
        for key, value in config.items():
            args += ["--set", f"{key}={json.dumps(value)}"]
        result = runner.invoke(cli, args)
        assert result.exit_code == 2, (what, result.output)
        assert message in result.stderr.replace("\n", " "), (what, result.stderr)
    assert _runs(session) == 0


def test_a_hub_id_in_the_local_cache_is_a_model_and_its_architecture_is_checked(
    client, factory, session, world, tmp_path, reward_dir
) -> None:
    """A hub id is found in the local cache without a download; its config.json decides."""
    for repo, source in (("org/tiny-lm", world["policy"]), ("org/tiny-rm", reward_dir)):
        snap = tmp_path / "hub" / f"models--{repo.replace('/', '--')}"
        (snap / "refs").mkdir(parents=True)
        (snap / "refs" / "main").write_text("abc123")
        (snap / "snapshots" / "abc123").mkdir(parents=True)
        config = (Path(source) / "config.json").read_text()
        (snap / "snapshots" / "abc123" / "config.json").write_text(config)
    admin = factory.user("admin")
    body = {"kind": "sft", "snapshot_id": world["snapshots"]["sft"].id}
    made = client.post("/api/v1/runs", json=body | {"model": "org/tiny-lm"}, headers=admin.headers)
    assert made.status_code == 201, made.text
    assert made.json()["base_model"] == "org/tiny-lm"
    wrong = client.post("/api/v1/runs", json=body | {"model": "org/tiny-rm"}, headers=admin.headers)
    assert wrong.status_code == 422 and wrong.json()["field"] == "model"
    assert "'org/tiny-rm' is a reward model" in wrong.json()["detail"]


def test_a_machine_that_can_download_is_told_how(client, factory, world, monkeypatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    admin = factory.user("admin")
    body = {"kind": "sft", "snapshot_id": world["snapshots"]["sft"].id, "model": "org/absent"}
    answer = client.post("/api/v1/runs", json=body, headers=admin.headers)
    assert answer.status_code == 422
    assert "download it here first: `huggingface-cli download org/absent`" in answer.text


def test_registering_a_model_checks_its_path_and_kind(
    client, factory, session, world, reward_dir, tmp_path
) -> None:
    admin = factory.user("admin")
    cases = [
        ({"path": "/no/such/dir", "kind": "policy"}, "model '/no/such/dir': no such directory"),
        ({"path": world["empty"], "kind": "policy"}, "is a directory without a config.json"),
        ({"path": "org/absent", "kind": "policy"}, "(this machine cannot download)"),
        ({"path": reward_dir, "kind": "policy"}, "a policy must be a causal LM"),
        ({"path": world["policy"], "kind": "reward"}, "a reward model is a sequence classifier"),
    ]
    token = None
    for body, message in cases:
        answer = client.post("/api/v1/models", json=body | {"name": "new"}, headers=admin.headers)
        assert answer.status_code == 422 and answer.json()["field"] == "path", answer.text
        assert message in answer.json()["detail"]
        result = CliRunner().invoke(
            cli, ["models", "register", "new", body["path"], "--kind", body["kind"]]
        )
        assert result.exit_code == 2 and message in result.stderr.replace("\n", " "), result.output
        token = token or login(client, admin)
        page = client.post("/admin/models", data=body | {"name": "new", "csrf_token": token})
        assert page.status_code == 422
        beside = page.text.split('id="error-path"', 1)[1].split("</span>", 1)[0]
        assert escape(message) in beside
        assert f'name="path" required value="{escape(body["path"])}"' in page.text
    assert session.scalar(select(func.count()).where(RegisteredModel.name == "new")) == 0
    # a model whose directory went away since it was registered is refused when a run names it
    gone = tmp_path / "moved"
    gone.mkdir()
    (gone / "config.json").write_text((Path(world["policy"]) / "config.json").read_text())
    registry.register_model(session=session, name="moved", kind="policy", path=str(gone))
    session.commit()
    (gone / "config.json").unlink()
    gone.rmdir()
    body = {"kind": "sft", "snapshot_id": world["snapshots"]["sft"].id, "model": "moved"}
    answer = client.post("/api/v1/runs", json=body, headers=admin.headers)
    assert answer.status_code == 422 and answer.json()["field"] == "model"
    assert f"registered model 'moved': model '{gone}': no such directory" in answer.text


def test_a_relative_directory_is_kept_absolute_for_the_worker(
    client, factory, world, monkeypatch
) -> None:
    """The trainer runs in its run directory: a path typed relative to here must not reach it."""
    policy = Path(world["policy"])
    monkeypatch.chdir(policy.parent)
    admin = factory.user("admin")
    body = {"kind": "sft", "snapshot_id": world["snapshots"]["sft"].id, "model": f"./{policy.name}"}
    made = client.post("/api/v1/runs", json=body, headers=admin.headers)
    assert made.status_code == 201 and made.json()["base_model"] == str(policy.resolve())
    model = {"name": "relative", "kind": "policy", "path": policy.name}
    registered = client.post("/api/v1/models", json=model, headers=admin.headers)
    assert registered.status_code == 201 and registered.json()["path"] == str(policy.resolve())
