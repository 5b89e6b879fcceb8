"""The offline teacher: a Dirichlet-smoothed document language model (Zhai and Lafferty, 2001).

    p(w | x) = (c(w, x) + mu * p(w | C)) / (|x| + mu)

with ``x`` the context (the question, plus the passage when given) and ``C`` the corpus.
The answer NLL is the mean of ``-log p(a_t | x)`` over the answer's words, the same
formula as for an LLM; only the language model differs. It is a real, classical language
model, not an LLM: it rewards passages that make the answer's words likely. Every report
that uses it says so.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from uae.teachers.base import NLLRequest, NLLResult, Teacher

_WORD = re.compile(r"\w+", re.UNICODE)


def tokenize(text: str) -> list[str]:
    """Lower-cased word tokens; the answer and the context use the same tokenizer."""
    return _WORD.findall(text.lower())


class DirichletTeacher(Teacher):
    """Dirichlet-smoothed unigram LM over question + passage, backed off to the corpus.

    Args:
        mu: Dirichlet prior mass; larger trusts the corpus model more than the context.
    """

    def __init__(self, mu: float = 1000.0):
        if not mu > 0:
            raise ValueError(f"mu must be positive, got {mu}")
        self.mu = float(mu)
        self.name = "dirichlet" if mu == 1000.0 else f"dirichlet:mu={mu:g}"
        self._counts: Counter[str] = Counter()
        self._total = 0

    def fit(self, passages: Sequence[str]) -> None:
        """Estimate the collection model ``p(w | C)`` from the corpus."""
        self._counts = Counter()
        for text in passages:
            self._counts.update(tokenize(text))
        self._total = sum(self._counts.values())

    def collection_probability(self, word: str) -> float:
        """``p(w | C)`` with add-one smoothing, so a word unseen in the corpus keeps a finite NLL."""
        vocabulary = len(self._counts) + 1
        return (self._counts.get(word, 0) + 1) / (self._total + vocabulary)

    def score(self, requests: Sequence[NLLRequest]) -> list[NLLResult]:
        if not self._total:
            raise RuntimeError("DirichletTeacher.fit(corpus) must be called before score()")
        return [self._score_one(request) for request in requests]

    def _score_one(self, request: NLLRequest) -> NLLResult:
        answer = tokenize(request.answer)
        if not answer:
            raise ValueError(f"answer {request.answer!r} has no word tokens to score")
        context = tokenize(request.question)
        if request.passage is not None:
            context += tokenize(request.passage)
        counts = Counter(context)
        denominator = len(context) + self.mu
        total = 0.0
        for word in answer:
            p = (counts.get(word, 0) + self.mu * self.collection_probability(word)) / denominator
            total -= math.log(p)
        return NLLResult(nll=total / len(answer), answer_tokens=len(answer))

    def describe(self) -> dict[str, Any]:
        return {
            "teacher": self.name,
            "kind": "Dirichlet-smoothed document language model (offline; not an LLM)",
            "mu": self.mu,
        }
