"""The teacher protocol: anything that returns the NLL of a gold answer given a prompt.

A teacher scores :class:`NLLRequest` objects. For each it returns the mean negative
log-likelihood per *answer* token (prompt tokens are never scored), in nats::

    nll(a | x) = -(1/|a|) * sum_t log p(a_t | x, a_<t)

with ``x`` the prompt built from the question and, when given, the passage. The utility
of a passage is then ``nll(a | q) - nll(a | q, d)`` (see ``uae.targets``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

DEFAULT_WITH_PASSAGE = "Context: {passage}\nQuestion: {question}\nAnswer: {answer}"
DEFAULT_WITHOUT_PASSAGE = "Question: {question}\nAnswer: {answer}"


@dataclass(frozen=True)
class PromptTemplates:
    """Prompt templates; ``{answer}`` must come last, since only its tokens are scored."""

    with_passage: str = DEFAULT_WITH_PASSAGE
    without_passage: str = DEFAULT_WITHOUT_PASSAGE

    def __post_init__(self) -> None:
        for name, template, fields in (
            ("with_passage", self.with_passage, ("{passage}", "{question}")),
            ("without_passage", self.without_passage, ("{question}",)),
        ):
            if not template.endswith("{answer}"):
                raise ValueError(f"prompt template {name!r} must end with '{{answer}}', got {template!r}")
            for field_name in fields:
                if field_name not in template:
                    raise ValueError(f"prompt template {name!r} must contain {field_name}, got {template!r}")

    def prefix(self, question: str, passage: str | None) -> str:
        """The prompt up to (not including) the answer."""
        if passage is None:
            return self.without_passage.removesuffix("{answer}").format(question=question)
        return self.with_passage.removesuffix("{answer}").format(question=question, passage=passage)


@dataclass(frozen=True)
class NLLRequest:
    """Score ``answer`` after ``question`` and, unless ``None``, ``passage``."""

    question: str
    answer: str
    passage: str | None = None


@dataclass(frozen=True)
class NLLResult:
    """Mean NLL per answer token; ``truncated`` is set when the passage was cut to fit the context."""

    nll: float
    answer_tokens: int
    truncated: bool = False


class Teacher(ABC):
    """Base class of every teacher; subclasses implement :meth:`score`."""

    name: str = "teacher"

    def fit(self, passages: Sequence[str]) -> None:  # noqa: B027 - optional hook
        """See the corpus before scoring (only corpus-statistics teachers need it)."""

    @abstractmethod
    def score(self, requests: Sequence[NLLRequest]) -> list[NLLResult]:
        """Return one :class:`NLLResult` per request, in order."""

    def describe(self) -> dict[str, Any]:
        """What produced the labels, for model cards and reports."""
        return {"teacher": self.name}

    def stats(self) -> dict[str, Any]:
        """Counters of what the teacher did since it was built (how it saved work, what fell back); not part of any fingerprint."""
        return {}
