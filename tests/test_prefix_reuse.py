"""Passage-prefix reuse in the hf teacher: the same NLLs as one plain forward per request, or a logged fallback.

References are computed without the teacher's scoring code: one unpadded ``model(ids)`` forward per
request, log-softmax, the answer tokens' log-probs averaged by hand.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from conftest import BPE_SHAPES, SLIDING_SHAPES
from transformers import AutoModelForCausalLM, AutoTokenizer

from uae.teachers import NLLRequest, PromptTemplates, load_teacher
from uae.teachers.causal_lm import EncodedRequest
from uae.teachers.hf import TURNED_OFF, HFTeacher
from uae.teachers.prefix import common_prefix_length, fed_tokens, prefix_groups

PASSAGES = [
    "the eiffel tower is a wrought iron lattice tower in Paris, France. It was built for the fair of 1889.",
    "the old stone bridge crosses the river near the mill; the market of the town sits by the castle tower.",
]
QUESTIONS = [("where is the eiffel tower?", "in Paris, France"), ("who wrote hamlet?", "William Shakespeare"),
             ("what crosses the river?", "the old stone bridge"), ("name a colour", "blue")]


def mixed_requests() -> list[NLLRequest]:
    """Every question with every passage, interleaved, plus a no-passage question with two answers."""
    requests = [NLLRequest(q, a, p) for q, a in QUESTIONS for p in PASSAGES]
    asked = "who wrote the play hamlet, prince of denmark, in the year 1600 or so?"
    requests += [NLLRequest(asked, "Shakespeare"), NLLRequest(asked, "William Shakespeare, in 1600")]
    return requests


def reference_nlls(model_dir: Path, encoded: list[EncodedRequest]) -> list[float]:
    """One unpadded forward of the plain model per request; mean -log p of the answer tokens."""
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    nlls = []
    with torch.no_grad():
        for item in encoded:
            log_probs = torch.log_softmax(model(torch.tensor([item.ids])).logits[0].float(), dim=-1)
            answer = torch.tensor(item.ids[item.answer_start :])
            nlls.append(-log_probs[item.answer_start - 1 : -1].gather(1, answer[:, None]).mean().item())
    return nlls


@pytest.mark.parametrize("shape", BPE_SHAPES + SLIDING_SHAPES)
def test_reused_nlls_equal_plain_forwards(bpe_lm_builder, shape: str) -> None:
    model_dir = bpe_lm_builder(shape)
    teacher = HFTeacher(str(model_dir), batch_tokens=512)
    assert teacher.reuse.enabled, teacher.reuse.reason
    requests = mixed_requests()
    encoded = [teacher.encode(i, r) for i, r in enumerate(requests)]
    groups, alone = prefix_groups(requests, encoded, teacher.min_prefix_tokens)
    assert len(groups) == 3 and alone == []  # two passages, and the two answers of the no-passage question
    assert any(group.prefix_length > 16 for group in groups), "a shared prefix should outrun the sliding window of 16"
    results = teacher.score(requests)
    assert [r.nll for r in results] == pytest.approx(reference_nlls(model_dir, encoded), abs=1e-4)
    assert [r.answer_tokens for r in results] == [len(e.ids) - e.answer_start for e in encoded]
    assert teacher.reuse.shared_requests == len(requests) and teacher.reuse.groups == 3
    assert teacher.tokens_processed == fed_tokens(encoded, groups) < sum(len(e.ids) for e in encoded)


def test_reuse_equals_the_uncached_path_across_batches_and_with_full_logits(bpe_lm_builder) -> None:
    model_dir = bpe_lm_builder("llama")
    requests = mixed_requests()
    uncached = HFTeacher(str(model_dir), prefix_reuse=False).score(requests)
    small = HFTeacher(str(model_dir), batch_tokens=64)  # a group's continuations span several batches
    encoded = [small.encode(i, r) for i, r in enumerate(requests)]
    assert 2 * max(e.input_length for e in encoded) > 64, "each batch should hold a single row"
    full_logits = HFTeacher(str(model_dir), full_logits=True)
    assert not full_logits.answer_only and full_logits.reuse.enabled
    for teacher in (small, full_logits):
        assert [r.nll for r in teacher.score(requests)] == pytest.approx([r.nll for r in uncached], abs=1e-4)
        assert teacher.reuse.groups == 3


def test_truncated_passages_and_left_padding_side_keep_the_nlls(bpe_lm_builder) -> None:
    model_dir = bpe_lm_builder("llama", 64)
    teacher = HFTeacher(str(model_dir))
    teacher.tokenizer.padding_side = "left"  # a tokenizer setting; the teacher pads continuations itself, on the right
    long = " ".join(PASSAGES * 3)
    requests = [NLLRequest(q, a, long) for q, a in QUESTIONS]
    encoded = [teacher.encode(i, r) for i, r in enumerate(requests)]
    assert all(e.truncated for e in encoded)
    assert len({tuple(e.ids[: e.answer_start]) for e in encoded}) == len(requests), "each question cuts the passage elsewhere"
    results = teacher.score(requests)
    assert all(r.truncated for r in results)
    assert teacher.reuse.groups == 1
    assert [r.nll for r in results] == pytest.approx(reference_nlls(model_dir, encoded), abs=1e-4)


def test_a_bpe_merge_across_the_passage_boundary_cannot_change_a_score(bpe_lm_builder) -> None:
    model_dir = bpe_lm_builder("qwen2")
    templates = PromptTemplates(with_passage="{passage}{question}\nAnswer: {answer}")
    teacher = HFTeacher(str(model_dir), templates=templates, min_prefix_tokens=2)
    passage = "the tower is in Par"
    requests = [NLLRequest("is the answer", "yes"), NLLRequest("is", "Paris")]
    requests = [NLLRequest(r.question, r.answer, passage) for r in requests]
    encoded = [teacher.encode(i, r) for i, r in enumerate(requests)]
    alone = teacher.tokenizer(passage, add_special_tokens=False)["input_ids"]
    shared = common_prefix_length([e.ids for e in encoded])
    assert shared < len(alone), "the passage's last token merges with the question's first characters"
    results = teacher.score(requests)
    assert teacher.reuse.groups == 1
    assert [r.nll for r in results] == pytest.approx(reference_nlls(model_dir, encoded), abs=1e-4)


def test_a_model_whose_cache_cannot_be_reused_falls_back_with_a_logged_reason(tmp_path: Path, caplog) -> None:
    from conftest import bpe_tokenizer
    from transformers import MambaConfig, MambaForCausalLM

    tokenizer = bpe_tokenizer("gpt2")
    torch.manual_seed(0)
    MambaForCausalLM(MambaConfig(hidden_size=32, num_hidden_layers=2, state_size=4, vocab_size=len(tokenizer),
                                 bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                 pad_token_id=tokenizer.pad_token_id)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="uae.teachers.hf"):
        teacher = HFTeacher(str(tmp_path), max_length=256)
    assert not teacher.reuse.enabled
    assert "LinearAttentionLayer" in teacher.reuse.reason
    assert any("prefix reuse is off" in record.message and "LinearAttentionLayer" in record.message for record in caplog.records)
    requests = mixed_requests()[:4]
    encoded = [teacher.encode(i, r) for i, r in enumerate(requests)]
    results = teacher.score(requests)
    assert [r.nll for r in results] == pytest.approx(reference_nlls(tmp_path, encoded), abs=1e-4)
    assert teacher.stats()["prefix_reuse"]["fallbacks"] == {teacher.reuse.reason: 4}
    assert teacher.reuse.groups == 0


def test_a_probe_that_disagrees_turns_reuse_off(bpe_lm_builder, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    original = HFTeacher._cache_kwargs

    def wrong_positions(self, input_ids, after):
        kwargs = original(self, input_ids, after)
        if after is not None:
            kwargs["position_ids"] = kwargs["position_ids"] - after.get_seq_length()  # restarts at 0
        return kwargs

    monkeypatch.setattr(HFTeacher, "_cache_kwargs", wrong_positions)
    with caplog.at_level(logging.WARNING, logger="uae.teachers.hf"):
        teacher = HFTeacher(str(bpe_lm_builder("gpt2")))
    assert not teacher.reuse.enabled and "on a probe, reused and uncached NLLs differ" in teacher.reuse.reason
    assert caplog.records


def test_reuse_can_be_turned_off_in_the_spec(bpe_lm_builder, caplog) -> None:
    model_dir = bpe_lm_builder("qwen2")
    with caplog.at_level(logging.WARNING, logger="uae.teachers.hf"):
        teacher = load_teacher(f"hf:{model_dir},prefix_reuse=false,batch_tokens=1024")
    assert isinstance(teacher, HFTeacher) and teacher.batch_tokens == 1024
    assert not teacher.reuse.enabled and teacher.reuse.reason == TURNED_OFF
    assert not caplog.records, "turning reuse off is no fallback to warn about"
    teacher.score(mixed_requests())
    assert teacher.reuse.fallbacks == {TURNED_OFF: len(mixed_requests())}
    assert load_teacher(f"hf:{model_dir}").reuse.enabled


def test_prefix_groups_on_token_ids() -> None:
    assert common_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 6]]) == 2
    assert common_prefix_length([[1, 2], [1, 2, 3]]) == 2
    assert common_prefix_length([]) == 0
    requests = [NLLRequest("q1", "a", "P"), NLLRequest("q2", "a", "P"), NLLRequest("q3", "a", "other"), NLLRequest("q1", "a")]
    encoded = [EncodedRequest(0, list(range(30)) + [90, 91], 31, False), EncodedRequest(1, list(range(20)) + [80, 81], 21, False),
               EncodedRequest(2, list(range(30)) + [70, 71], 31, False), EncodedRequest(3, [5, 6, 7], 2, False)]
    groups, alone = prefix_groups(requests, encoded, min_prefix_tokens=16)
    # the shared prefix stops one token before the earliest answer, so every answer token is predicted in the continuation
    assert [(g.members, g.prefix_length) for g in groups] == [((0, 1), 20)]
    assert alone == [2, 3]  # a passage of its own and a question of its own share nothing
    assert fed_tokens(encoded, groups) == 32 + 22 + 32 + 3 - 20
    assert prefix_groups(requests, encoded, min_prefix_tokens=21)[0] == []
