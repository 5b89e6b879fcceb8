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


def test_rankgpt_through_chat_completions_orders_as_the_local_model_does(bpe_lm_builder):
    """The same greedy model behind the chat endpoint and in-process: the same windows, outputs and order."""
    model = bpe_lm_builder("gpt2", 1024)
    question = "how high is kappa?"
    passages = PASSAGES + ["kappa towers over the plain", "a note on rivers"]
    local = load_reranker(f"rankgpt:hf:{model}", window=3, step=2, chat_template=False, max_new_tokens=6)
    local_order = local.order(question, passages)
    with serve(model) as server:
        context = local.generator.max_length
        chat = load_reranker(f"rankgpt:openai:{server.base_url},chat=true,context={context},tokenizer={model}",
                             window=3, step=2, max_new_tokens=6)
        chat_order = chat.order(question, passages)
        sent = server.state.requests
    assert len(chat.outputs) == 2 and sent == 2  # two windows, one request each
    assert [o.strip() for o in chat.outputs] == [o.strip() for o in local.outputs]
    assert chat_order == local_order
    described = chat.describe()["backend"]
    assert described["endpoint"] == "/chat/completions" and described["token_counting"].startswith("tokenizer")


def test_rankgpt_over_an_endpoint_without_a_tokenizer_estimates_tokens_and_fits_the_context(bpe_lm_builder):
    long_passages = ["kappa " * 400, "iota " * 400, "river " * 400]
    with serve(bpe_lm_builder("gpt2", 1024)) as server:
        reranker = load_reranker(f"rankgpt:openai:{server.base_url},context=1024", window=3, max_new_tokens=4)
        order = reranker.order("kappa?", long_passages)
    assert sorted(order) == [0, 1, 2] and len(reranker.outputs) == 1
    # 3 characters a token is too few for this tokenizer: the server refused, its count corrected the estimate
    assert 1 <= reranker.repairs["refitted_prompt"] <= 3 and reranker.repairs["truncated_passage"] >= 3
    counting = reranker.describe()["backend"]["token_counting"]
    assert counting.startswith("estimated") and float(counting.split()[1]) < 3
    with pytest.raises(ValueError, match="unknown option 'windw'"):
        load_reranker(f"rankgpt:openai:{server.base_url},windw=3")
