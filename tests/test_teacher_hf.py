"""HFTeacher against hand-computed NLLs on tiny random GPT-2 and Llama models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from uae.teachers import NLLRequest, PromptTemplates, load_teacher
from uae.teachers.causal_lm import encode_prompt_answer, token_budget_batches
from uae.teachers.hf import HFTeacher

WITH_PASSAGE = NLLRequest(
    question="where is the eiffel tower?",
    answer="in paris, france",
    passage="the eiffel tower is a wrought iron lattice tower in paris.",
)
WITHOUT_PASSAGE = NLLRequest(question="who wrote hamlet?", answer="william shakespeare")


def hand_nll(path: Path, request: NLLRequest) -> tuple[float, int]:
    """Full forward of the plain model on prompt + answer; mean -log p of the answer tokens."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    prefix = PromptTemplates().prefix(request.question, request.passage)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    prompt_ids = bos + tokenizer(prefix, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(request.answer, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(torch.tensor([prompt_ids + answer_ids])).logits[0]
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    start = len(prompt_ids)
    picked = log_probs[start - 1 : -1].gather(1, torch.tensor(answer_ids)[:, None])
    return -picked.mean().item(), len(answer_ids)


@pytest.fixture(scope="module", params=["gpt2", "llama"])
def model_dir(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(f"tiny_{request.param}_dir")


@pytest.fixture(scope="module")
def teacher(model_dir: Path) -> HFTeacher:
    return HFTeacher(str(model_dir), batch_tokens=256)


@pytest.mark.parametrize("request_", [WITH_PASSAGE, WITHOUT_PASSAGE], ids=["with_passage", "without_passage"])
def test_matches_hand_computation(teacher: HFTeacher, model_dir: Path, request_: NLLRequest) -> None:
    assert teacher.answer_only, "the backbone + LM head path should be used for this architecture"
    expected, n_answer = hand_nll(model_dir, request_)
    [result] = teacher.score([request_])
    assert result.nll == pytest.approx(expected, abs=1e-5)
    assert result.answer_tokens == n_answer
    assert not result.truncated


def test_answer_only_path_equals_full_logits(teacher: HFTeacher) -> None:
    requests = [WITH_PASSAGE, WITHOUT_PASSAGE]
    answer_only = teacher.score(requests)
    teacher.answer_only = False
    try:
        full = teacher.score(requests)
    finally:
        teacher.answer_only = True
    assert [r.nll for r in answer_only] == pytest.approx([r.nll for r in full], abs=1e-5)


def test_batched_equals_one_by_one_in_input_order(teacher: HFTeacher) -> None:
    requests = [
        NLLRequest(question=f"question number {i}?", answer=" ".join(["answer"] * (1 + i % 3)), passage=passage)
        for i, passage in enumerate(
            [None, "short passage.", "a much longer passage " * 8, None, "medium length passage here " * 3, "x y z"]
        )
    ]
    batched = teacher.score(requests)
    lengths = [teacher.encode(i, r).input_length for i, r in enumerate(requests)]
    assert len(list(token_budget_batches(lengths, teacher.batch_tokens))) > 1
    single = [teacher.score([request])[0] for request in requests]
    assert [r.nll for r in batched] == pytest.approx([r.nll for r in single], abs=1e-5)
    assert [r.answer_tokens for r in batched] == [r.answer_tokens for r in single]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_long_passage_is_truncated(tiny_lm_builder, arch: str) -> None:
    teacher = HFTeacher(str(tiny_lm_builder(arch, 40)))
    assert teacher.max_length == 40
    long = NLLRequest(question="who built it?", answer="gustave eiffel", passage="the tower was built in paris. " * 30)
    [short_result, long_result] = teacher.score([WITH_PASSAGE, long])
    assert not short_result.truncated
    assert long_result.truncated
    assert long_result.answer_tokens == len(teacher.tokenizer("gustave eiffel", add_special_tokens=False)["input_ids"])
    encoded = teacher.encode(0, long)
    assert encoded.input_length <= 40
    assert encoded.input_length >= 38, "the passage should be cut no more than needed"


def test_question_and_answer_that_cannot_fit_raise(tiny_lm_builder) -> None:
    teacher = HFTeacher(str(tiny_lm_builder("gpt2", 40)))
    request = NLLRequest(question="why " * 50, answer="because", passage="some passage")
    with pytest.raises(ValueError, match="why why"):
        teacher.score([request])


def test_load_teacher_builds_hf_teacher(tiny_gpt2_dir: Path) -> None:
    teacher = load_teacher(f"hf:{tiny_gpt2_dir}", batch_tokens=128)
    assert isinstance(teacher, HFTeacher)
    assert teacher.name == f"hf:{tiny_gpt2_dir}"
    description = teacher.describe()
    assert description["dtype"] == "float32"
    assert description["templates"]["with_passage"] == PromptTemplates().with_passage


@pytest.mark.parametrize("answer", ["", "   "])
def test_empty_answer_raises(tiny_gpt2_dir: Path, answer: str) -> None:
    teacher = HFTeacher(str(tiny_gpt2_dir))
    with pytest.raises(ValueError, match="request 1 .*who wrote hamlet"):
        teacher.score([WITH_PASSAGE, NLLRequest(question="who wrote hamlet?", answer=answer)])


def test_trailing_prompt_space_joins_a_byte_level_bpe_answer() -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    backend.train_from_iterator(["Question: where is Paris?\nAnswer: Paris, in France."] * 20, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    prefix_ids, answer_ids = encode_prompt_answer(tokenizer, "Question: where is Paris?\nAnswer: ", "Paris")
    joint = tokenizer("Question: where is Paris?\nAnswer: Paris", add_special_tokens=False)["input_ids"]
    assert prefix_ids + answer_ids == joint
    assert tokenizer.decode(answer_ids) == " Paris"
