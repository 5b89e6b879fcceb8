"""The re-ranker base class: score a query's passages, re-rank a first stage, time each query.

A re-ranker implements one method, :meth:`Reranker.score`, which turns a query and its passages
into one score per passage, in input order (higher is better). :meth:`Reranker.rerank` does the rest for every
re-ranker alike: it takes the first stage's top-``depth`` passages of each query, scores them,
sorts them, keeps the first stage's tail below them, records each query's wall time, and
repairs non-finite scores (counted in :attr:`Reranker.repairs`, never silent).

Ties: the sort is stable, so passages the re-ranker scores alike keep the first stage's order
(the order the metrics see, :func:`uae.evaluation.metrics.rank_passages`). A run
(``{passage_id: score}``) holds that order only through its scores, and the metrics break tied
scores by passage id as trec_eval does, so :func:`rerank_run` writes scores that strictly
decrease down the re-ranked list (:func:`strictly_decreasing`); the raw scores stay on the hits
that :meth:`Reranker.rerank` returns.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from uae.data.schema import Corpus, Query
from uae.retrieval.types import Hit, Run
from uae.teachers.base import Teacher

TOY_PARAMETERS = 50_000_000
"""Below this size an LM re-ranker is a smoke test (tiny random test models), and reports say so."""


class Reranker(ABC):
    """Base class of every re-ranker; subclasses implement :meth:`score`.

    Args:
        backend: The teacher that scores (``None`` for re-rankers without one); fitted on the
            corpus by :meth:`prepare`.

    Attributes:
        name: Short method name (``upr``, ``rankgpt``, ``judge``, ``oracle``).
        spec: The ``METHOD:BACKEND`` string it was built from (set by ``load_reranker``).
        upper_bound: ``True`` when the re-ranker reads the gold answer (not deployable).
        latencies: Seconds spent on each query by the last :meth:`rerank` call.
        repairs: What was repaired or cut so far (non-finite scores, unparsable output, truncated
            passages, ...), by kind.
    """

    name: str = "reranker"
    upper_bound: bool = False

    def __init__(self, backend: Teacher | None = None) -> None:
        self.backend = backend
        self.latencies: list[float] = []
        self.repairs: Counter[str] = Counter()
        self.spec: str = self.name
        self._fitted_on: Corpus | None = None

    @abstractmethod
    def score(self, query: str, passages: list[str]) -> list[float]:
        """One score per passage, in input order; higher means more useful.

        Args:
            query: The question text.
            passages: Candidate passage texts.

        Returns:
            ``len(passages)`` scores.
        """

    def score_query(self, query: Query, passages: list[str]) -> list[float]:
        """Score ``passages`` for a full :class:`Query` (the oracle reads its answers)."""
        return self.score(query.text, passages)

    def prepare(self, corpus: Corpus) -> None:
        """Fit the backend on ``corpus`` once (only corpus-statistics teachers such as Dirichlet need it)."""
        if self.backend is not None and self._fitted_on is not corpus:
            self.backend.fit(corpus.texts)
            self._fitted_on = corpus

    def count(self, kind: str, n: int = 1) -> None:
        """Add ``n`` to the repairs of ``kind`` (nothing when ``n`` is 0)."""
        if n:
            self.repairs[kind] += int(n)

    def describe(self) -> dict[str, Any]:
        """Method, spec, whether it is an upper bound, model size, and the repairs counted so far."""
        return {
            "reranker": self.name,
            "spec": self.spec,
            "upper_bound": self.upper_bound,
            "parameters": self.parameters(),
            "repairs": dict(self.repairs),
        }

    def parameters(self) -> int | None:
        """Parameters of the backend's neural model; ``None`` when it has none (Dirichlet, a server)."""
        model = getattr(self.backend, "model", None)
        return sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else None

    def caveat(self) -> str | None:
        """A warning a report must print next to this re-ranker's quality numbers, if any."""
        notes = []
        if self.upper_bound:
            notes.append("reads the gold answer: an upper bound, not deployable")
        parameters = self.parameters()
        if parameters is not None and parameters < TOY_PARAMETERS:
            notes.append(f"toy-sized LM ({parameters:,} parameters): its quality numbers are meaningless")
        return "; ".join(notes) or None

    def rerank(
        self,
        queries: Sequence[Query | str],
        first_stage_hits: Sequence[Sequence[Hit]],
        corpus: Corpus,
        depth: int,
        keep_tail: bool = True,
        progress: bool = False,
    ) -> list[list[Hit]]:
        """Re-rank the top-``depth`` first-stage hits of each query.

        Args:
            queries: Queries (or bare question texts), parallel to ``first_stage_hits``.
            first_stage_hits: Each query's first-stage ranking, best first.
            corpus: Where passage texts are looked up (``Passage.full_text``).
            depth: How many first-stage hits are re-ranked.
            keep_tail: Append the first stage's hits below ``depth``, in their order, under
                the re-ranked ones, so metrics at deeper cut-offs stay comparable.
            progress: Show a progress bar over queries.

        Returns:
            One ranking per query, best first; re-ranked hits carry the re-ranker's scores.
        """
        from uae.progress import progress_bar

        if depth < 1:
            raise ValueError(f"re-rank depth must be >= 1, got {depth}")
        if len(queries) != len(first_stage_hits):
            raise ValueError(f"{len(queries)} queries but {len(first_stage_hits)} first-stage rankings")
        self.prepare(corpus)
        self.latencies = []
        results = []
        with progress_bar(len(queries), f"re-ranking with {self.name}", unit="queries", enabled=progress) as advance:
            for query, hits in zip(queries, first_stage_hits):
                query = query if isinstance(query, Query) else Query(id="", text=query)
                results.append(self._rerank_one(query, list(hits), corpus, depth, keep_tail))
                advance(1)
        return results

    def _rerank_one(self, query: Query, hits: list[Hit], corpus: Corpus, depth: int, keep_tail: bool) -> list[Hit]:
        head, tail = hits[:depth], hits[depth:]
        started = time.perf_counter()
        scores = self.score_query(query, [corpus[h.passage_id].full_text for h in head]) if head else []
        self.latencies.append(time.perf_counter() - started)
        scores = self._checked_scores(scores, len(head))
        order = sorted(range(len(head)), key=lambda i: -scores[i])  # stable: ties keep first-stage order
        ranked = [Hit(head[i].passage_id, scores[i]) for i in order]
        if keep_tail and tail:
            floor = min(scores) if scores else 0.0
            ranked += [Hit(h.passage_id, floor - 1.0 - rank) for rank, h in enumerate(tail)]
        return ranked

    def _checked_scores(self, scores: Sequence[float], expected: int) -> list[float]:
        """Replace non-finite scores by one below the lowest finite score (counted as repairs)."""
        scores = [float(s) for s in scores]
        if len(scores) != expected:
            raise RuntimeError(f"{type(self).__name__}.score returned {len(scores)} scores for {expected} passages")
        finite = [s for s in scores if math.isfinite(s)]
        floor = (min(finite) if finite else 0.0) - 1.0
        bad = sum(not math.isfinite(s) for s in scores)
        self.count("non_finite_score", bad)
        return [s if math.isfinite(s) else floor for s in scores]


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Median, 95th percentile and mean of per-query latencies.

    Args:
        seconds: One wall time per query, in seconds.

    Returns:
        ``{"queries", "p50_ms", "p95_ms", "mean_ms"}``; the times are NaN when there are none.
    """
    if not seconds:
        return {"queries": 0, "p50_ms": math.nan, "p95_ms": math.nan, "mean_ms": math.nan}
    values = np.asarray(seconds, dtype=float) * 1000.0
    return {
        "queries": len(values),
        "p50_ms": float(np.percentile(values, 50)),
        "p95_ms": float(np.percentile(values, 95)),
        "mean_ms": float(values.mean()),
    }


def run_to_hits(run: Run, query_ids: Sequence[str]) -> list[list[Hit]]:
    """Each query's ranking in ``run`` as hits, in the order the metrics rank them; empty when absent.

    Tied scores are ordered as :func:`uae.evaluation.metrics.rank_passages` orders them (larger
    passage id first, as trec_eval), so "the first stage's order" is the same here and in the metrics.
    """
    from uae.evaluation.metrics import rank_passages

    return [[Hit(pid, run[qid][pid]) for pid in rank_passages(run[qid])] if run.get(qid) else [] for qid in query_ids]


def strictly_decreasing(hits: Sequence[Hit]) -> list[Hit]:
    """The hits with scores that strictly decrease in list order, each as close to its own as floats allow.

    A score is kept when it is below the previous (adjusted) one, else set one floating-point step
    below that (:func:`math.nextafter`). Sorting by the new scores, with any tie-breaking rule, gives
    back the list's order exactly, and a score moves only where it tied with (or exceeded) the one
    above it, by a few units in the last place.

    Args:
        hits: A ranking, best first, e.g. a re-ranker's output with tied scores.

    Returns:
        The same passages in the same order.
    """
    adjusted: list[Hit] = []
    for hit in hits:
        score = float(hit.score)
        if adjusted and not score < adjusted[-1].score:
            score = math.nextafter(adjusted[-1].score, -math.inf)
        adjusted.append(Hit(hit.passage_id, score))
    return adjusted


def rerank_run(reranker: Reranker, queries: Sequence[Query], first_stage: Run, corpus: Corpus, depth: int, keep_tail: bool = True, progress: bool = False) -> Run:
    """:meth:`Reranker.rerank` on a ``{query_id: {passage_id: score}}`` run; returns a run.

    The run's scores are the re-ranker's made strictly decreasing down its ranking
    (:func:`strictly_decreasing`), so passages it scores alike keep the first stage's order through
    the metrics, whose tie-breaking by passage id would otherwise re-order them. The raw scores are
    on the hits of :meth:`Reranker.rerank`.
    """
    hits = reranker.rerank(queries, run_to_hits(first_stage, [q.id for q in queries]), corpus, depth, keep_tail, progress)
    return {q.id: {h.passage_id: h.score for h in strictly_decreasing(query_hits)} for q, query_hits in zip(queries, hits)}
