"""The vllm teacher: a clear message without vLLM, and, on a fake engine, prefix caching and passage-grouped calls."""

from __future__ import annotations

import math
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

from uae.teachers import NLLRequest, load_teacher


def test_missing_vllm_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match=r"pip install 'uae\[vllm\]'"):
        load_teacher("vllm:Qwen/Qwen2.5-0.5B")


def test_vllm_spec_needs_a_model() -> None:
    with pytest.raises(ValueError, match="vllm:"):
        load_teacher("vllm:")


@dataclass
class Logprob:
    logprob: float


class FakeLLM:
    """What the teacher uses of ``vllm.LLM``: the engine's options, its tokenizer and ``generate`` with prompt log-probs.

    The log-prob of token ``t`` at position ``p`` is ``-(1 + (t + p) % 7) / 10``, so a wrong position
    or token in the teacher's arithmetic shows in the NLL.
    """

    instances: list[FakeLLM] = []

    def __init__(self, model: str, tokenizer=None, **options) -> None:
        from transformers import AutoTokenizer

        self.options = options
        self.calls: list[list[list[int]]] = []
        self._tokenizer = AutoTokenizer.from_pretrained(tokenizer or model)
        self.llm_engine = types.SimpleNamespace(model_config=types.SimpleNamespace(max_model_len=options.get("max_model_len") or 256))
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return self._tokenizer

    def generate(self, prompts, sampling, use_tqdm=False):
        assert sampling["prompt_logprobs"] == 1 and sampling["max_tokens"] == 1
        ids = [prompt["prompt_token_ids"] for prompt in prompts]
        self.calls.append(ids)
        return [types.SimpleNamespace(prompt_logprobs=[None] + [{t: Logprob(fake_logprob(t, p))} for p, t in enumerate(row) if p > 0])
                for row in ids]


def fake_logprob(token: int, position: int) -> float:
    return -(1 + (token + position) % 7) / 10


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeLLM
    module.SamplingParams = lambda **kwargs: kwargs
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = lambda prompt_token_ids: {"prompt_token_ids": prompt_token_ids}
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    FakeLLM.instances.clear()
    return module


def test_prefix_caching_is_on_and_a_passage_is_computed_before_its_other_requests(fake_vllm, bpe_lm_builder) -> None:
    model_dir: Path = bpe_lm_builder("qwen2")
    teacher = load_teacher(f"vllm:{model_dir},gpu_memory_utilization=0.5,max_num_seqs=8,prefix_window=2")
    [engine] = FakeLLM.instances
    assert engine.options["enable_prefix_caching"] is True
    assert engine.options["gpu_memory_utilization"] == 0.5 and engine.options["max_num_seqs"] == 8
    requests = [NLLRequest(f"question {i}?", f"answer {i}", passage) for i, passage in enumerate("PQPRQPP")]
    requests.append(NLLRequest("question 9?", "answer 9"))
    results = teacher.score(requests)
    # windows of 2 groups: (P, Q) leaders, then their followers; then (R, none) leaders, which have no followers
    assert teacher.waves(requests) == [[0, 1], [2, 5, 6, 4], [3, 7]]
    assert len(engine.calls) == 3
    for request, result in zip(requests, results):
        encoded = teacher.prompts.encode(0, request)
        expected = [-fake_logprob(t, p) for p, t in enumerate(encoded.ids) if p >= encoded.answer_start]
        assert result.nll == pytest.approx(sum(expected) / len(expected))
        assert result.answer_tokens == len(expected) and not math.isnan(result.nll)
    assert load_teacher(f"vllm:{model_dir},enable_prefix_caching=false") and FakeLLM.instances[-1].options["enable_prefix_caching"] is False
