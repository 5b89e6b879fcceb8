"""The teacher with the gold answer: re-rank by utility ``u(d) = nll(a | q) - nll(a | q, d)``.

An upper bound, not a system anyone can deploy: it reads the answer it is asked to find. It is
the label-producing teacher used as a re-ranker, so it shows how much of the teacher's signal a
student could at best recover from the same first stage. With several gold answers the per-answer
utilities are aggregated (``mean`` or ``max``) exactly as for training labels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from uae.data.schema import Query
from uae.data.tables import NO_PASSAGE, NLLRecord
from uae.labeling.jobs import EMPTY_ANSWER, answer_problem
from uae.rerankers.base import Reranker
from uae.targets import utilities_from_nlls
from uae.teachers.base import NLLRequest, Teacher


class OracleReranker(Reranker):
    """Utility of each passage for the gold answers, from any teacher.

    Args:
        teacher: The teacher that scores answer NLLs (``dirichlet``, ``hf:...``, ...).
        aggregate: ``mean`` or ``max`` over a query's gold answers.
    """

    name = "oracle"
    upper_bound = True

    def __init__(self, teacher: Teacher, aggregate: Literal["mean", "max"] = "mean") -> None:
        super().__init__(teacher)
        if aggregate not in ("mean", "max"):
            raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")
        self.aggregate = aggregate

    def score(self, query: str, passages: list[str], answers: Sequence[str] = ()) -> list[float]:
        """Utility of each passage for ``answers`` (nats per answer token).

        Answers that labeling would skip (empty, or without a word token: :func:`uae.labeling.jobs.answer_problem`)
        are left out here too.

        Raises:
            ValueError: No usable gold answer was given (the oracle has nothing to score).
        """
        answers = [a for a in answers if answer_problem(a) is None]
        if not answers:
            raise ValueError(f"the oracle re-ranker needs gold answers with a word token; none given for {query!r}")
        requests, keys = [], []
        for answer_index, answer in enumerate(answers):
            for position, passage in [(NO_PASSAGE, None), *((str(i), p) for i, p in enumerate(passages))]:
                requests.append(NLLRequest(query, answer, passage))
                keys.append((position, answer_index))
        results = self.backend.score(requests)
        self.count("truncated_passage", sum(r.truncated for r in results))
        records = [NLLRecord("q", pid, a, r.nll, r.answer_tokens, r.truncated) for (pid, a), r in zip(keys, results)]
        utilities, skipped = utilities_from_nlls(records, self.aggregate)
        if skipped.total:
            self.count("unscorable_query")
        row = utilities.get("q", {})
        return [row.get(str(i), float("nan")) for i in range(len(passages))]

    def score_query(self, query: Query, passages: list[str]) -> list[float]:
        """Utilities for the query's gold answers; a query without a usable one keeps the first-stage order (counted)."""
        problems = [answer_problem(a) for a in query.answers]
        if all(problems):
            self.count("no_gold_answer" if all(p == EMPTY_ANSWER for p in problems) else "no_usable_gold_answer")
            return [0.0] * len(passages)
        return self.score(query.text, passages, query.answers)

    def describe(self) -> dict[str, Any]:
        """Base description plus the teacher's and the aggregation."""
        return {**super().describe(), "teacher": self.backend.describe(), "aggregate": self.aggregate}
