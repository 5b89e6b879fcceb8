"""Chat endpoints (hosted APIs) on the loopback testing server: the judge by top log-probs, a clear refusal to label."""

from __future__ import annotations

import pytest

from uae.errors import PromptLogprobsUnavailable
from uae.rerankers import load_reranker
from uae.teachers import load_teacher
from uae.teachers.base import NLLRequest
from uae.testing import serve

PASSAGES = ["kappa is a mountain 2000 metres high", "iota is a small island", "the river is long"]


def test_judge_through_chat_completions_matches_the_local_judge(tiny_gpt2_dir, monkeypatch):
    from transformers import AutoTokenizer

    vocabulary = len(AutoTokenizer.from_pretrained(str(tiny_gpt2_dir)))
    local = load_reranker(f"judge:hf:{tiny_gpt2_dir}", yes="yes", no="no")  # the uncased MiniLM tokenizer lowercases
    monkeypatch.setenv("OPENAI_API_KEY", "sk-judge")
    with serve(tiny_gpt2_dir, api_key="sk-judge") as server:
        chat = load_reranker(f"judge:openai:{server.base_url},chat=true", yes="yes", no="no", top_logprobs=vocabulary)
        assert chat.describe()["path"].startswith("top-20") or "chat" in chat.describe()["path"]
        scores = chat.score("how high is kappa?", PASSAGES)
    assert scores == pytest.approx(local.score("how high is kappa?", PASSAGES), abs=1e-4)


def test_a_chat_endpoint_cannot_label_and_says_what_to_use(tiny_gpt2_dir):
    with serve(tiny_gpt2_dir) as server:
        teacher = load_teacher(f"openai:{server.base_url},chat=true")
        with pytest.raises(PromptLogprobsUnavailable, match=r"chat endpoint.*use one of those servers or a local hf:"):
            teacher.score([NLLRequest("q?", "a", "p")])
