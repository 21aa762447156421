"""`python -m trainer judge` with local models: a reward model scores, a causal LM answers
pairwise in both orders; config refusals; resumption. (The endpoint judge: test_judge_endpoint.)

Two models are built with known preferences: a Llama reward model and a Llama judge whose
blocks add nothing (attention and MLP outputs zeroed), so the last token alone decides — the
reward from the score head, the answer from the LM head's rows for "A" and "B"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaForSequenceClassification,
)

from tests.trainer.trainer_testdata import write_jsonl
from trainer import EXIT_OK, EXIT_PREEMPTED, EXIT_USAGE
from trainer.__main__ import main
from trainer.configs import ConfigError, JudgeConfig, build_config
from trainer.judge import JUDGMENTS_FILE, auto_precision, judge, judge_kind
from trainer.reward import load_reward_model
from trainer.tiny import _corpus, build_tiny_causal_lm

ITEMS = [
    {
        "id": "k4",
        "prompt": "write a short poem about a cat",
        "responses": [
            {"id": "a", "text": "the cat is good"},
            {"id": "b", "text": "a dog and a bird"},
            {"id": "c", "text": "hello world yes no maybe"},
            {"id": "d", "text": "tree river"},
        ],
    },
    {
        "id": 7,
        "messages": [{"role": "user", "content": "explain the reward model"}],
        "responses": [{"id": 1, "text": "it ranks answers"}, {"id": 2, "text": "no"}],
    },
    {"id": "plain", "prompt": "hello", "responses": ["yes hello", "no", "what why how"]},
]


def _rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / JUDGMENTS_FILE).read_text().splitlines()]


def _cfg(tmp_path: Path, model: str, items: list[dict] = ITEMS, **kw) -> JudgeConfig:
    tmp_path.mkdir(parents=True, exist_ok=True)
    data = write_jsonl(tmp_path / "items.jsonl", items)
    return JudgeConfig(model=model, train_file=data, output_dir=str(tmp_path / "out"), **kw)


def _zero_blocks(model: torch.nn.Module) -> None:
    """Attention and MLP add nothing to the residual stream: the last hidden state is the
    final norm of the last token's embedding."""
    for layer in model.model.layers:
        layer.self_attn.o_proj.weight.data.zero_()
        layer.mlp.down_proj.weight.data.zero_()


def _last_hidden(model: torch.nn.Module, token_id: int) -> torch.Tensor:
    return model.model.norm(model.model.embed_tokens.weight[token_id][None])[0].detach()


# ---------------------------------------------------------------------- constructed models


@pytest.fixture(scope="module")
def known_rm(tmp_path_factory: pytest.TempPathFactory, causal_lm: str) -> str:
    """A reward model that scores a response by its last word: "good" +8, "bad" −8, any other
    word strictly in between (Cauchy–Schwarz: |h·u| < |h||u| unless h ∥ u)."""
    tok = AutoTokenizer.from_pretrained(causal_lm)
    torch.manual_seed(0)
    model = LlamaForSequenceClassification.from_pretrained(causal_lm, num_labels=1)
    model.config.pad_token_id = tok.pad_token_id
    model.config.reward_pooling = "last"  # as an rm run records it
    _zero_blocks(model)
    good, bad = (tok(f" {w}", add_special_tokens=False)["input_ids"] for w in ("good", "bad"))
    assert len(good) == len(bad) == 1
    emb = model.model.embed_tokens.weight.data
    emb[bad[0]] = -emb[good[0]]
    h = _last_hidden(model, good[0])
    model.score.weight.data[0] = h / h.norm() * (8.0 / h.norm())  # score(good) = 8
    path = tmp_path_factory.mktemp("known") / "rm"
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def known_lm(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A causal LM judge that answers by the last token it reads: after "yes" it says A, after
    "no" it says B. With a template that ends with response A, it prefers a response ending in
    "yes" over one ending in "no" in both orders, and follows the position when both end alike."""
    corpus = _corpus() + ["the answer is A", "the answer is B"] * 200
    path = build_tiny_causal_lm(tmp_path_factory.mktemp("known") / "lm", corpus=corpus)
    tok = AutoTokenizer.from_pretrained(path)
    ids = {w: tok(f" {w}", add_special_tokens=False)["input_ids"] for w in ("A", "B", "yes", "no")}
    assert all(len(v) == 1 for v in ids.values()), ids  # " A" and " B" are single tokens
    model = AutoModelForCausalLM.from_pretrained(path)
    _zero_blocks(model)
    h_yes, h_no = _last_hidden(model, ids["yes"][0]), _last_hidden(model, ids["no"][0])
    head = model.lm_head.weight.data
    head.zero_()
    head[ids["A"][0]] = h_yes - h_no
    head[ids["B"][0]] = h_no - h_yes
    assert float(h_yes @ (h_yes - h_no)) > 0 > float(h_no @ (h_yes - h_no))
    model.save_pretrained(path)
    return str(path)


# ---------------------------------------------------------------------- reward model


def test_reward_model_ranks_each_item_as_the_trained_scorer_scores(
    tmp_path: Path, encoder: str
) -> None:
    # fp32: the scores are the scorer's own to 1e-5 (auto may pick bf16, which moves them in
    # the third digit: test_auto_precision_is_bf16_only_where_the_hardware_has_it)
    cfg = _cfg(tmp_path, encoder, batch_size=3, mixed_precision="no")
    assert judge(cfg) == EXIT_OK
    rows = {str(r["id"]): r for r in _rows(tmp_path / "out")}
    assert list(rows) == ["k4", "7", "plain"]  # one line per item, in file order
    rm = load_reward_model(encoder)
    for item in ITEMS:
        row = rows[str(item["id"])]
        responses = [
            r if isinstance(r, dict) else {"id": n, "text": r}
            for n, r in enumerate(item["responses"])
        ]
        ids = [r["id"] for r in responses]
        prompt = item.get("prompt", item.get("messages"))
        expected = rm.score_responses([prompt] * len(ids), [r["text"] for r in responses])
        scores = [row["scores"][str(i)] for i in ids]
        assert scores == pytest.approx(expected.tolist(), abs=1e-5)
        assert sorted(map(str, row["ranking"])) == sorted(map(str, ids))
        assert row["ranking"][0] in ids  # written as given: ints stay ints
        ranked = [row["scores"][str(i)] for i in row["ranking"]]
        assert ranked == sorted(ranked, reverse=True)
        assert row["margin"] == pytest.approx(ranked[0] - ranked[1], abs=2e-6)
        assert row["abstained"] is False and row["orders_agree"] is None
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["step"] == 3 and all(m["items_per_second"] > 0 for m in metrics)
    assert metrics[-1]["abstentions"] == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["judge_kind"] == "reward_model" and summary["items"] == 3


def test_auto_precision_is_bf16_only_where_the_hardware_has_it(
    tmp_path: Path, encoder: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`mixed_precision: auto` (the default) reads the CPU's flags: bf16 with AVX-512 BF16 or
    AMX, fp32 without them or when they cannot be read; the job logs what it chose, and bf16
    scores stay close to fp32's."""
    assert JudgeConfig().mixed_precision == "auto"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert auto_precision(cpuinfo) == "bf16"
    cpuinfo.write_text("flags\t: fpu sse avx2 amx_tile amx_bf16\n")
    assert auto_precision(cpuinfo) == "bf16"
    cpuinfo.write_text("flags\t: fpu sse avx2 avx512f avx512_vnni avx512_bf16x\n")
    assert auto_precision(cpuinfo) == "no"
    assert auto_precision(tmp_path / "absent") == "no"

    chosen = auto_precision()
    assert judge(_cfg(tmp_path / "auto", encoder, batch_size=3)) == EXIT_OK
    assert f"reward_model, precision {chosen}," in capsys.readouterr().err
    AcceleratorState._reset_state(reset_partial_state=True)  # a run is a process of its own
    assert judge(_cfg(tmp_path / "fp32", encoder, batch_size=3, mixed_precision="no")) == EXIT_OK
    auto_rows, fp32_rows = _rows(tmp_path / "auto" / "out"), _rows(tmp_path / "fp32" / "out")
    for auto, fp32 in zip(auto_rows, fp32_rows, strict=True):
        for rid, score in fp32["scores"].items():
            assert auto["scores"][rid] == pytest.approx(score, rel=0.02, abs=0.02)


def test_reward_model_scores_do_not_depend_on_the_batch(tmp_path: Path, encoder: str) -> None:
    many = [
        {
            "id": f"i{n}",
            "prompt": "the cat " * (1 + n % 5),
            "responses": [{"id": r, "text": "good dog " * (1 + (n * r) % 7)} for r in range(3)],
        }
        for n in range(12)
    ]
    assert judge(_cfg(tmp_path / "one", encoder, many, batch_size=1)) == EXIT_OK
    assert judge(_cfg(tmp_path / "many", encoder, many, batch_size=16)) == EXIT_OK
    one, batched = _rows(tmp_path / "one" / "out"), _rows(tmp_path / "many" / "out")
    assert [r["id"] for r in one] == [r["id"] for r in batched]
    for a, b in zip(one, batched, strict=True):
        assert list(a["scores"]) == list(b["scores"])
        assert list(a["scores"].values()) == pytest.approx(list(b["scores"].values()), abs=1e-5)


def test_a_reward_model_that_prefers_a_known_response_ranks_it_first(
    tmp_path: Path, known_rm: str
) -> None:
    items = [
        {"id": "x", "prompt": "p", "responses": ["that was bad", "so good", "a cat"]},
        {"id": "y", "prompt": "q", "responses": ["a dog", "yes bad", "very good"]},
        {"id": "z", "prompt": "r", "responses": ["so good", "so bad"]},
    ]
    assert judge(_cfg(tmp_path, known_rm, items)) == EXIT_OK
    rows = {r["id"]: r for r in _rows(tmp_path / "out")}
    assert rows["x"]["ranking"] == [1, 2, 0]
    assert rows["y"]["ranking"] == [2, 0, 1]
    assert rows["z"]["ranking"] == [0, 1]
    assert rows["z"]["scores"] == pytest.approx({"0": 8.0, "1": -8.0}, abs=1e-3)
    assert rows["z"]["margin"] == pytest.approx(16.0, abs=1e-3)  # K = 2: the difference


def test_ratings_map_rewards_onto_the_project_scale(tmp_path: Path, known_rm: str) -> None:
    items = [{"id": "x", "prompt": "p", "responses": ["so good", "that was bad", "a cat"]}]
    linear = _cfg(
        tmp_path / "lin",
        known_rm,
        items,
        project_kind="rating",
        rating_score_low=-8.0,
        rating_score_high=8.0,
        scale_low=0,
        scale_high=4,
    )
    assert judge(linear) == EXIT_OK
    (row,) = _rows(tmp_path / "lin" / "out")
    assert "ranking" not in row and row["ratings"]["0"] == 4 and row["ratings"]["1"] == 0
    cat = row["scores"]["2"]
    assert row["ratings"]["2"] == min(4, max(0, int((cat + 8) / 16 * 4 + 0.5)))
    thumbs = _cfg(
        tmp_path / "thumbs",
        known_rm,
        items,
        project_kind="rating",
        scale_low=-1,
        scale_high=1,
        scale_step=2,
        rating_map="thresholds",
        rating_thresholds=[cat + 0.5],
    )
    assert judge(thumbs) == EXIT_OK
    (row,) = _rows(tmp_path / "thumbs" / "out")
    assert row["ratings"] == {"0": 1, "1": -1, "2": -1}


# ---------------------------------------------------------------------- causal LM, pairwise


def test_both_orders_are_asked_and_a_position_bias_is_an_abstention(
    tmp_path: Path, known_lm: str
) -> None:
    items = [
        {
            "id": "three",
            "prompt": "p",
            "responses": ["good answer yes", "bad answer no", "cat yes"],
        },
        {"id": "same", "prompt": "p", "responses": ["one yes", "two yes"]},
        {"id": "clear", "prompt": "p", "responses": ["bad no", "fine yes"]},
    ]
    cfg = _cfg(
        tmp_path,
        known_lm,
        items,
        judge_template="{prompt}\n{b}\n{a}",  # ends with response A: its last word decides
        judge_chat_template=False,
        batch_size=4,
    )
    assert judge(cfg) == EXIT_OK
    rows = {r["id"]: r for r in _rows(tmp_path / "out")}
    three = rows["three"]
    # (0,1): "yes" wins both ways; (0,2): both end in yes → A both times → tie; (1,2): 2 wins.
    assert three["scores"] == {"0": 1.5, "1": 0.0, "2": 1.5}
    assert three["ranking"] == [0, 2, 1] and three["margin"] == 0.0
    assert three["abstained"] is False and three["orders_agree"] is False
    assert three["pairs"] == 3 and three["tied_pairs"] == 1
    same = rows["same"]
    assert same["abstained"] is True and same["ranking"] is None and same["margin"] is None
    assert same["orders_agree"] is False and "the two orders disagree on 1" in same["reason"]
    clear = rows["clear"]
    assert clear["ranking"] == [1, 0] and clear["orders_agree"] is True
    assert clear["reason"] is None and clear["preference"] > 0.5
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    run = summary["this_run"]
    assert summary["abstained"] == 1 and summary["orders_disagree"] == 2
    assert run["pairs"] == 5 and run["tied_pairs"] == 2 and run["disagreeing_pairs"] == 2
    assert run["questions"] == 10  # every pair in both orders
    metrics = [json.loads(x) for x in (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()]
    assert metrics[-1]["abstentions"] == 1 and metrics[-1]["step"] == 3


def test_the_answer_is_read_where_the_model_would_write_it(causal_lm: str) -> None:
    """With the chat template the answer follows a newline ("A"); in plain text it follows the
    question (" A", split into "Ġ" + "A" by this tokenizer: the shared "Ġ" is read first)."""
    from contextlib import nullcontext

    from trainer.judge_local import PairwiseLMJudge

    tok = AutoTokenizer.from_pretrained(causal_lm)
    chat = PairwiseLMJudge(JudgeConfig(model=causal_lm), "cpu", nullcontext)
    ids, a, b = chat.encode("which? Answer:")
    assert tok.convert_ids_to_tokens([a, b]) == ["A", "B"]
    assert tok.decode(ids).endswith("<|assistant|>\n")
    cfg = JudgeConfig(model=causal_lm, judge_chat_template=False)
    ids, a, b = PairwiseLMJudge(cfg, "cpu", nullcontext).encode("which? Answer:")
    assert tok.convert_ids_to_tokens(ids[-2:]) == [":", "Ġ"] and ids[0] == tok.bos_token_id
    assert tok.convert_ids_to_tokens([a, b]) == ["A", "B"]


def test_lm_judge_probabilities_do_not_depend_on_the_batch(causal_lm: str) -> None:
    """Left padding with position ids counted from the first real token: batched = alone."""
    from contextlib import nullcontext

    from trainer.judge_local import PairwiseLMJudge

    texts = [f"question {'the cat ' * n} Answer:" for n in range(1, 8)]
    probs = {}
    for size in (1, 8):
        j = PairwiseLMJudge(JudgeConfig(model=causal_lm, batch_size=size), "cpu", nullcontext)
        probs[size] = j.p_first([j.encode(t) for t in texts])
    assert probs[1] == pytest.approx(probs[8], abs=1e-5)
    assert len(set(round(p, 4) for p in probs[1])) > 1  # the texts really differ to the model


# ---------------------------------------------------------------------- resumption


def test_a_restart_judges_only_what_is_missing_each_id_once(tmp_path: Path, encoder: str) -> None:
    many = [{"id": f"i{n}", "prompt": "p", "responses": ["yes", f"no {n}"]} for n in range(9)]
    assert judge(_cfg(tmp_path / "ref", encoder, many)) == EXIT_OK
    reference = _rows(tmp_path / "ref" / "out")
    cfg = _cfg(tmp_path / "b", encoder, many)
    out = tmp_path / "b" / "out"
    out.mkdir()
    lines = (tmp_path / "ref" / "out" / JUDGMENTS_FILE).read_text().splitlines(keepends=True)
    (out / JUDGMENTS_FILE).write_text("".join(lines[:4]) + lines[4][:15])  # died mid-line
    assert judge(cfg) == EXIT_OK
    rows = _rows(out)
    assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in reference)
    assert {r["id"]: r["scores"] for r in rows} == {r["id"]: r["scores"] for r in reference}
    assert judge(cfg) == EXIT_OK and len(_rows(out)) == 9  # nothing left: nothing written


def test_sigterm_stops_between_chunks_and_a_rerun_finishes(
    tmp_path: Path, encoder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainer import runtime

    real = runtime.Run.log_metrics

    def preempted_log(self, step, metrics):  # SIGTERM arrives while the first chunk runs
        real(self, step, metrics)
        self.preempted = True

    many = [{"id": n, "prompt": "p", "responses": ["a b", "c", "d e f"]} for n in range(6)]
    cfg = _cfg(tmp_path, encoder, many, batch_size=1)  # chunks of 8 sequences: 2 items
    monkeypatch.setattr(runtime.Run, "log_metrics", preempted_log)
    assert judge(cfg) == EXIT_PREEMPTED
    assert [r["id"] for r in _rows(tmp_path / "out")] == [0, 1]
    monkeypatch.setattr(runtime.Run, "log_metrics", real)
    assert judge(cfg) == EXIT_OK
    assert sorted(r["id"] for r in _rows(tmp_path / "out")) == list(range(6))


# ---------------------------------------------------------------------- config and input


@pytest.mark.parametrize(
    ("values", "key", "message"),
    [
        ({"endpoint": "http://x/v1"}, "endpoint_model", "endpoint_model is required"),
        ({"endpoint": "x.com/v1", "endpoint_model": "m"}, "endpoint", "http:// or https://"),
        ({"judge_kind": "endpoint"}, "endpoint", "needs the endpoint URL"),
        ({"judge_template": "{prompt} {a}"}, "judge_template", "{b} missing"),
        ({"judge_template": "{prompt}"}, "judge_template", "{a} and {b} missing"),
        ({"project_kind": "rating", "scale_low": 5, "scale_high": 1}, "scale_high", "above"),
        ({"project_kind": "rating", "scale_step": 2}, "scale_step", "whole steps"),
        ({"project_kind": "rating", "scale_high": 5000}, "scale_step", "at most 1000"),
        ({"project_kind": "rating", "scale_step": 0}, "scale_step", "must be > 0"),
        (
            {"project_kind": "rating", "rating_map": "thresholds", "rating_thresholds": [0, 1]},
            "rating_thresholds",
            "needs 5 ascending",
        ),
        (
            {
                "project_kind": "rating",
                "rating_map": "thresholds",
                "rating_thresholds": [0, 1, 1, 2, 3],
            },
            "rating_thresholds",
            "strictly ascending",
        ),
        (
            {"project_kind": "rating", "rating_score_low": 1, "rating_score_high": 1},
            "rating_score_high",
            "above",
        ),
        ({"project_kind": "rating", "judge_kind": "pairwise_lm"}, "judge_kind", "reward_model"),
        ({"rating_thresholds": [0, "nan"]}, "rating_thresholds", "finite"),
        ({"judge_kind": "oracle"}, "judge_kind", "must be one of"),
    ],
)
def test_bad_judge_configs_are_refused_naming_the_key(values, key, message) -> None:
    with pytest.raises(ConfigError) as refused:
        build_config("judge", values)
    assert refused.value.key == key and message in str(refused.value)


def test_set_reads_thresholds_as_numbers() -> None:
    cfg = build_config("judge", {}, {"rating_thresholds": "[-1, 0.5, 2]"})
    assert cfg.rating_thresholds == [-1.0, 0.5, 2.0]
    assert build_config("judge", {}, {"rating_thresholds": "-1,2"}).rating_thresholds == [-1, 2]


def test_the_judge_kind_follows_the_model(encoder: str, causal_lm: str, tmp_path: Path) -> None:
    assert judge_kind(JudgeConfig(model=encoder)) == "reward_model"
    assert judge_kind(JudgeConfig(model=causal_lm)) == "pairwise_lm"
    assert judge_kind(JudgeConfig(model=causal_lm, endpoint="http://h/v1")) == "endpoint"
    with pytest.raises(ConfigError, match="'model'.*or 'endpoint' is required"):
        judge_kind(JudgeConfig())
    body = tmp_path / "body"
    body.mkdir()
    (body / "config.json").write_text(json.dumps({"architectures": ["BertModel"]}))
    with pytest.raises(ConfigError, match="set judge_kind"):
        judge_kind(JudgeConfig(model=str(body)))


def test_the_cli_refuses_bad_input_with_exit_2(
    tmp_path: Path, encoder: str, causal_lm: str, capsys: pytest.CaptureFixture[str]
) -> None:
    good = write_jsonl(tmp_path / "items.jsonl", ITEMS)
    out = str(tmp_path / "out")
    one = write_jsonl(tmp_path / "one.jsonl", [{"id": 1, "prompt": "p", "responses": ["x"]}])
    dup = write_jsonl(tmp_path / "dup.jsonl", [ITEMS[0], ITEMS[0]])
    bad = write_jsonl(
        tmp_path / "bad.jsonl", [{"id": 1, "prompt": "p", "responses": [{"text": "x"}]}]
    )
    refusals = [
        ([encoder, good, "--set", "judge_template=no slots"], "judge_template must contain"),
        ([causal_lm, good, "--set", "project_kind=rating"], "a rating project needs a reward"),
        ([str(tmp_path / "nowhere"), good], "no such directory"),
        ([encoder, one], "one.jsonl:1: a ranking item needs at least 2 responses"),
        ([encoder, dup], "dup.jsonl:2: id 'k4' appears twice"),
        ([encoder, bad], 'responses[0] must be {"id", "text"}'),
    ]
    for (model, data, *extra), message in refusals:
        argv = ["judge", "--model", model, "--train-file", data, "--output-dir", out, *extra]
        assert main(argv) == EXIT_USAGE, argv
        assert message in capsys.readouterr().err, argv
    assert not (tmp_path / "out" / JUDGMENTS_FILE).exists()
    argv = ["judge", "--model", encoder, "--train-file", good, "--output-dir", out]
    assert main(argv) == EXIT_OK and len(_rows(tmp_path / "out")) == 3
