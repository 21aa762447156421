"""The demo seed: logins that work and three projects with prompts, idempotent."""

from app.auth import service as auth_service
from app.demo import seed


def test_demo_seeds_users_and_projects_once(session, tmp_path, monkeypatch) -> None:
    from app.config import get_settings

    monkeypatch.setenv("RLHF_ARTIFACTS_DIR", str(tmp_path))
    get_settings.cache_clear()
    first = seed(session=session)
    again = seed(session=session)
    assert {m["name"]: m["kind"] for m in first["models"]} == {
        "tiny-causal-lm": "policy",
        "tiny-encoder": "reward",
    }
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # the registered policy loads the way a user's model does and scores a prompt's next token
    path = first["models"][0]["path"]
    model, tokenizer = (
        AutoModelForCausalLM.from_pretrained(path),
        AutoTokenizer.from_pretrained(path),
    )
    logits = model(**tokenizer("hello there", return_tensors="pt")).logits  # (1, T, V)
    assert logits.shape[-1] == len(tokenizer) and bool(logits.isfinite().all())
    assert first == again
    # The next round: tiny-causal-lm-v2 against its base, blind, K = 2 models × 2 samples.
    assert first["next_round"]["k"] == 4 and first["next_round"]["model"] == "tiny-causal-lm-v2"
    from app.runs import service as runs_service

    queued = runs_service.list_runs(session=session, kind="generate")
    assert len(queued) == 1 and queued[0].project_id == first["next_round"]["id"]
    kinds = {p["kind"]: p["prompts"] for p in first["projects"]}
    assert kinds == {"ranking": 30, "rating": 30, "demonstration": 30}
    for login in first["users"]:
        user = auth_service.authenticate(
            session=session,
            email=login["email"],
            password=login["password"],
            max_failures=5,
            lock_seconds=60,
        )
        assert user is not None and user.role == login["role"]
    assert sum(u["role"] == "labeler" for u in first["users"]) == 3
