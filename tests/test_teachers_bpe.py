"""The hf, openai and reuse paths on byte-level BPE tokenisers (GPT-2-, Llama- with a real BOS, Qwen2-shaped models).

The hand reference tokenises independently of the teacher: BOS when the tokenizer has one and
the whole text ``prompt + " " + answer`` at once; the answer's tokens are those after the prompt's,
a space token of its own (byte-level BPE before a digit) staying with the prompt, as an
OpenAI-compatible server sees it. One plain forward per request.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch
from labeling_jobs import make_job
from transformers import AutoModelForCausalLM, AutoTokenizer

from uae.labeling import label_pools, read_labels
from uae.teachers import NLLRequest, PromptTemplates
from uae.teachers.base import NLLResult
from uae.teachers.hf import HFTeacher
from uae.teachers.openai import OpenAICompatTeacher
from uae.testing import serve

REQUESTS = [
    NLLRequest("where is the eiffel tower?", "in Paris, France", "the eiffel tower is a wrought iron lattice tower in Paris."),
    NLLRequest("who wrote hamlet?", "William Shakespeare"),
    NLLRequest("what is 2 + 2?", "4", "Arithmetic: two plus two is four (4)."),
    NLLRequest("name a colour", "blue", ""),
]


def hand_nll(model_dir: Path, request: NLLRequest) -> tuple[float, int]:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    stem = PromptTemplates().prefix(request.question, request.passage).rstrip()
    bos = [] if tokenizer.bos_token_id is None else [tokenizer.bos_token_id]
    prompt = bos + tokenizer(stem, add_special_tokens=False)["input_ids"]
    joint = bos + tokenizer(stem + " " + request.answer, add_special_tokens=False)["input_ids"]
    assert joint[: len(prompt)] == prompt
    answer = joint[len(prompt) :]
    while not tokenizer.decode(answer[:1]).strip():  # a space BPE keeps apart ("Ġ" then "4") ends the prompt, unscored
        prompt, answer = prompt + answer[:1], answer[1:]
    with torch.no_grad():
        log_probs = torch.log_softmax(model(torch.tensor([prompt + answer])).logits[0].float(), dim=-1)
    picked = log_probs[len(prompt) - 1 : -1].gather(1, torch.tensor(answer)[:, None])
    return -picked.mean().item(), len(answer)


def test_tokenizers_are_shaped_like_the_real_ones(bpe_lm_builder) -> None:
    shapes = {shape: AutoTokenizer.from_pretrained(bpe_lm_builder(shape)) for shape in ("gpt2", "llama", "qwen2")}
    assert shapes["llama"]("Paris").input_ids[0] == shapes["llama"].bos_token_id, "Llama's tokenizer adds a real BOS"
    assert shapes["qwen2"].bos_token_id is None
    assert shapes["gpt2"].bos_token == "<|endoftext|>" and shapes["gpt2"]("Paris").input_ids[0] != shapes["gpt2"].bos_token_id
    tokens = shapes["qwen2"].convert_ids_to_tokens(shapes["qwen2"](" Paris", add_special_tokens=False).input_ids)
    assert tokens[0].startswith("Ġ"), "byte-level BPE carries the space inside the word's token"


def test_hf_teacher_matches_the_hand_computation(bpe_lm_dir: Path) -> None:
    teacher = HFTeacher(str(bpe_lm_dir))
    results = teacher.score(REQUESTS)
    for request, result in zip(REQUESTS, results):
        expected, n_answer = hand_nll(bpe_lm_dir, request)
        assert result.nll == pytest.approx(expected, abs=1e-5)
        assert result.answer_tokens == n_answer


@pytest.mark.parametrize("mode", ["echo", "prompt_logprobs"])
def test_openai_teacher_on_the_loopback_server_matches_hf(bpe_lm_dir: Path, mode: str) -> None:
    expected = HFTeacher(str(bpe_lm_dir), prefix_reuse=False).score(REQUESTS)
    with serve(bpe_lm_dir) as server, OpenAICompatTeacher(server.base_url, mode=mode, concurrency=3) as teacher:
        actual = teacher.score(REQUESTS)
    assert [r.nll for r in actual] == pytest.approx([r.nll for r in expected], abs=1e-4)
    assert [r.answer_tokens for r in actual] == [r.answer_tokens for r in expected]


def test_labeling_with_reuse_equals_labeling_without(bpe_lm_dir: Path, tmp_path: Path) -> None:
    corpus, queries, pools = make_job(n_queries=6, pool_size=4, n_passages=6)
    reused = HFTeacher(str(bpe_lm_dir), min_prefix_tokens=4)
    summary = label_pools(queries, pools, corpus, reused, tmp_path / "reused", part_queries=3, progress=False)
    label_pools(queries, pools, corpus, HFTeacher(str(bpe_lm_dir), prefix_reuse=False), tmp_path / "plain",
                part_queries=3, progress=False)
    plain = {(r.query_id, r.passage_id, r.answer_index): r.nll for r in read_labels(tmp_path / "plain")}
    records = read_labels(tmp_path / "reused")
    assert [r.nll for r in records] == pytest.approx([plain[(r.query_id, r.passage_id, r.answer_index)] for r in records], abs=1e-4)
    stats = summary.teacher_stats["prefix_reuse"]
    assert stats["enabled"] and stats["shared_requests"] > len(records) / 2 and stats["tokens_saved"] > 0
    uncached_tokens = sum(len(reused.encode(0, NLLRequest(q.text, q.answers[0], p)).ids) for q in queries
                          for p in [None] + [corpus[c.passage_id].full_text for c in pools[q.id]])
    assert summary.tokens == uncached_tokens - stats["tokens_saved"]


def test_openai_sends_a_passage_group_after_its_first_request(monkeypatch: pytest.MonkeyPatch) -> None:
    events: list[tuple[str, int, float]] = []
    lock = threading.Lock()

    def fake_score_one(self, index: int, request: NLLRequest) -> NLLResult:
        with lock:
            events.append(("start", index, time.perf_counter()))
        time.sleep(0.02)
        with lock:
            events.append(("end", index, time.perf_counter()))
        return NLLResult(float(index), 1)

    monkeypatch.setattr(OpenAICompatTeacher, "_score_one", fake_score_one)
    teacher = OpenAICompatTeacher("http://127.0.0.1:1/v1", model="m", concurrency=3)
    passages = "PPQRPQQRSS"
    requests = [NLLRequest(f"q{i}", "a", passage) for i, passage in enumerate(passages)]
    results = teacher.score(requests)
    assert [r.nll for r in results] == [float(i) for i in range(len(requests))]
    start = {i: t for kind, i, t in events if kind == "start"}
    end = {i: t for kind, i, t in events if kind == "end"}
    for passage in set(passages):
        members = [i for i, p in enumerate(passages) if p == passage]
        assert all(start[i] >= end[members[0]] for i in members[1:]), f"group {passage} started before its first request ended"
    order = [i for kind, i, _ in events if kind == "start"]
    assert order[:3] == [0, 2, 3], "up to `concurrency` leaders go first, in order of first appearance"
    assert len(order) == len(requests) == len(set(order))
