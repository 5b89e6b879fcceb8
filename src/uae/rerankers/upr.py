"""UPR: re-rank by the likelihood of the question given the passage (Sachan et al., EMNLP 2022).

``score(d) = (1/|q|) * sum_t log p(q_t | d, instruction, q_<t)``: the mean log-likelihood of the
question's tokens after a passage-then-instruction prompt. Only the question's tokens are scored.

The scoring is exactly a teacher's answer NLL with the question in the answer's place, so any
:class:`~uae.teachers.base.Teacher` works as the backend (``hf:``, ``openai:``, even ``dirichlet``,
which turns UPR into the classical query-likelihood model): the backend is built with
:data:`UPR_TEMPLATES` and asked for ``nll(question | passage)``; the template's ``{question}`` slot
carries the instruction.
"""

from __future__ import annotations

from typing import Any

from uae.rerankers.base import Reranker
from uae.teachers.base import NLLRequest, PromptTemplates, Teacher

UPR_INSTRUCTION = "Please write a question based on this passage."
UPR_TEMPLATES = PromptTemplates(
    with_passage="Passage: {passage}\n{question}\nQuestion: {answer}",
    without_passage="{question}\nQuestion: {answer}",
)
"""Passage, then the instruction (in the ``{question}`` slot), then the scored question (in ``{answer}``)."""


class UPRReranker(Reranker):
    """Unsupervised passage re-ranking by question likelihood.

    Args:
        backend: A teacher built with ``templates=UPR_TEMPLATES`` (see :func:`uae.rerankers.load_reranker`).
        instruction: The line between passage and question.

    Raises:
        ValueError: The backend uses other prompt templates.
    """

    name = "upr"

    def __init__(self, backend: Teacher, instruction: str = UPR_INSTRUCTION) -> None:
        super().__init__(backend)
        templates = getattr(backend, "templates", UPR_TEMPLATES)
        if templates != UPR_TEMPLATES:
            raise ValueError(f"UPR needs a backend built with templates=UPR_TEMPLATES, got {templates!r}")
        self.instruction = instruction

    def score(self, query: str, passages: list[str]) -> list[float]:
        """Mean log-likelihood per question token given each passage (higher is better)."""
        requests = [NLLRequest(question=self.instruction, answer=query, passage=p) for p in passages]
        results = self.backend.score(requests)
        self.count("truncated_passage", sum(r.truncated for r in results))
        return [-r.nll for r in results]

    def describe(self) -> dict[str, Any]:
        """Base description plus the backend's and the instruction."""
        return {**super().describe(), "backend": self.backend.describe(), "instruction": self.instruction}
