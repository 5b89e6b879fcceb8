"""Pointwise utility judge: ask the LLM whether each passage helps answer the question.

``score(d) = log p("Yes" | prompt(q, d)) - log p("No" | prompt(q, d))`` at the token right after
the prompt. On a transformers backend that is one forward pass per passage, batched, with the LM
head applied at the last prompt position only. Any other teacher is asked for the NLLs of the
answers "Yes" and "No" instead (two scored requests per passage; the same number when both labels
are single tokens, since a teacher's NLL is the mean over answer tokens). A chat endpoint
(``judge:openai:URL,chat=true``) cannot score prompts: it is asked for the top-20 log-probs of the
first answer token, and a label missing from them gets the smallest log-prob listed (an upper
bound on its own).
"""

from __future__ import annotations

from typing import Any

from uae.rerankers.base import Reranker
from uae.teachers.base import NLLRequest, PromptTemplates, Teacher
from uae.teachers.causal_lm import encode_prompt_answer
from uae.teachers.hf import HFTeacher

JUDGE_TEMPLATES = PromptTemplates(
    with_passage=(
        "Passage: {passage}\nQuestion: {question}\n"
        "Does the passage contain information that helps answer the question? Answer Yes or No.\nAnswer: {answer}"
    ),
    without_passage="Question: {question}\nAnswer Yes or No.\nAnswer: {answer}",
)


class JudgeReranker(Reranker):
    """Scores each passage by the judge's Yes-versus-No log-odds.

    On the fast path the first token of each label is compared (the labels' token ids are in
    :meth:`describe`); with single-token labels, as "Yes" and "No" are for common tokenizers, both
    paths give the same score.

    Args:
        backend: A teacher built with ``templates=JUDGE_TEMPLATES``; an ``HFTeacher`` takes the fast path.
        yes: The positive label.
        no: The negative label.
        top_logprobs: Chat backends: how many of the first token's top log-probs to ask for (OpenAI allows 20).

    Raises:
        ValueError: The backend uses other templates, or both labels start with the same token.
    """

    name = "judge"

    def __init__(self, backend: Teacher, yes: str = "Yes", no: str = "No", top_logprobs: int = 20) -> None:
        super().__init__(backend)
        templates = getattr(backend, "templates", JUDGE_TEMPLATES)
        if templates != JUDGE_TEMPLATES:
            raise ValueError(f"the judge needs a backend built with templates=JUDGE_TEMPLATES, got {templates!r}")
        self.yes, self.no = yes, no
        self.fast = isinstance(backend, HFTeacher)
        self.chat = bool(getattr(backend, "chat", False))
        self.top_logprobs = int(top_logprobs)
        self.label_tokens: tuple[list[int], list[int]] | None = self._label_tokens() if self.fast else None

    def _label_tokens(self) -> tuple[list[int], list[int]]:
        prefix = JUDGE_TEMPLATES.prefix("q", "p")
        yes_ids = encode_prompt_answer(self.backend.tokenizer, prefix, self.yes)[1]
        no_ids = encode_prompt_answer(self.backend.tokenizer, prefix, self.no)[1]
        if not yes_ids or not no_ids or yes_ids[0] == no_ids[0]:
            raise ValueError(f"labels {self.yes!r} and {self.no!r} must start with different tokens, got {yes_ids} and {no_ids}")
        return yes_ids, no_ids

    def score(self, query: str, passages: list[str]) -> list[float]:
        """Yes-versus-No log-odds of each passage (higher is better)."""
        if self.chat:
            return [self._score_by_top_logprobs(query, p) for p in passages]
        return self._score_fast(query, passages) if self.fast else self._score_by_nll(query, passages)

    def _score_by_top_logprobs(self, query: str, passage: str) -> float:
        """``log p(yes) - log p(no)`` from the first answer token's top log-probs (chat endpoints)."""
        tops = self.backend.next_token_logprobs(JUDGE_TEMPLATES.prefix(query, passage), self.top_logprobs)
        floor = min(tops.values())
        self.count("label_not_in_top", int(self.yes not in tops) + int(self.no not in tops))
        return tops.get(self.yes, floor) - tops.get(self.no, floor)

    def _score_fast(self, query: str, passages: list[str]) -> list[float]:
        """One forward per passage; the prompt is cut exactly as the teacher would cut it for the answer "Yes"."""
        prompts = []
        for index, passage in enumerate(passages):
            encoded = self.backend.encode(index, NLLRequest(query, self.yes, passage))
            prompts.append(encoded.ids[: encoded.answer_start])
            self.count("truncated_passage", int(encoded.truncated))
        yes_ids, no_ids = self.label_tokens
        log_probs = self.backend.next_token_log_probs(prompts, [yes_ids[0], no_ids[0]])
        return (log_probs[:, 0] - log_probs[:, 1]).tolist()

    def _score_by_nll(self, query: str, passages: list[str]) -> list[float]:
        """Any teacher: ``log p(yes) - log p(no)`` from the two answers' NLLs."""
        requests = [NLLRequest(query, label, p) for p in passages for label in (self.yes, self.no)]
        results = self.backend.score(requests)
        self.count("truncated_passage", sum(r.truncated for r in results[::2]))
        log_p = [-r.nll * r.answer_tokens for r in results]
        return [log_p[i] - log_p[i + 1] for i in range(0, len(log_p), 2)]

    def describe(self) -> dict[str, Any]:
        """Base description plus backend, labels, their token ids and the path taken."""
        return {
            **super().describe(),
            "backend": self.backend.describe(),
            "labels": [self.yes, self.no],
            "label_tokens": self.label_tokens,
            "path": "one forward, last position" if self.fast else
                    "top-20 log-probs of the first answer token (chat)" if self.chat else "answer NLLs of Yes and No",
        }
