"""Judging retrievers by another teacher: graded qrels from utilities, and the cross-teacher measures.

The critical test of UAE: a student trained on teacher A's utilities should keep its advantage
when utility is judged by a held-out teacher B of another model family. This module turns any
teacher's labels into what evaluation consumes, and holds the measures of the test:

- :func:`graded_qrels`: per query, passages with a positive utility (``u > min_utility``) get
  grades ``1..G``, the others 0. Two schemes:

  * ``quantile`` (default): within-query quantiles of the positive utilities. With ``n``
    positive passages and ``r`` the number of positives whose utility is ``<=`` a passage's
    (so ties share a grade), ``grade = ceil(G * r / n)``: the most helpful passage always gets
    ``G``, and grades are comparable across queries whose utilities differ in scale (utilities
    are nats per answer token, and their spread depends on the teacher and the question).
  * ``threshold``: fixed cut points ``t_1 < ... < t_{G-1}`` in nats per answer token;
    ``grade = 1 + #{j : u >= t_j}``. Comparable in absolute terms, but depends on the teacher's
    scale.

  Queries without a positive utility stay in the qrels with grades 0 (evaluation leaves them
  out and counts them).
- :func:`judge_pooled_runs`: what the teacher judges, pooled as TREC does. Judging only the
  mined pools (BM25 + the base encoder) would score 0 for every helpful passage a student finds
  outside them, which favours the base by construction. Instead the judged pool of a query is the
  union of the top-``depth`` of *every* evaluated system (:func:`pooled_judgements`); the judging
  teacher labels that union (:func:`uae.labeling.local.label_pools`), and the graded qrels, utility
  nDCG and Kendall tau of every system are computed on those judgements.
  :func:`pool_contributions` says how many judged passages each system brought and how many only
  it brought. The default depth (:data:`DEFAULT_POOL_DEPTH`, 10) is the deepest cut-off of the
  test's measures (nDCG@10, utility nDCG@10): every passage any system puts in its top 10 is
  judged, so those measures see no unjudged passage for any pooled system; a deeper pool costs
  one teacher pass per extra passage and changes only measures that look past rank 10 (MRR when
  the top 10 holds nothing helpful).
- :func:`utility_ndcg`: nDCG@k whose gains are the teacher's positive utilities themselves
  (``max(u, 0)``, linear gain, log2 discount), the ideal ranking being the teacher's pool sorted
  by utility; passages outside the teacher's pool have gain 0 (unjudged).
- :func:`pool_kendall_tau`: Kendall's tau-b between a student's scores and a teacher's
  utilities over each query's pool (:func:`student_scores` gives a student's ranking and pool
  scores from one encoding of the corpus).

Several teachers' labels mixed into one training target are :mod:`uae.targets.mixing`'s.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from uae.data.schema import Corpus, Qrels, Query, SkipReport
from uae.data.tables import Candidate, Pools
from uae.targets.utilities import utilities_from_labels

if TYPE_CHECKING:
    from uae.labeling import LabelingSummary
    from uae.teachers.base import Teacher

GradeScheme = Literal["quantile", "threshold"]
Utilities = dict[str, dict[str, float]]
"""``{query_id: {passage_id: utility}}``."""
Runs = Mapping[str, Mapping[str, Mapping[str, float]]]
"""``{system: {query_id: {passage_id: score}}}``."""
DEFAULT_POOL_DEPTH = 10
"""Passages of each system's ranking that the judging teacher labels: the deepest cut-off of the test's measures."""


# ---- graded qrels -----------------------------------------------------------------------------


def _quantile_grades(positive: dict[str, float], grades: int) -> dict[str, int]:
    values = sorted(positive.values())
    n = len(values)
    return {pid: -(-grades * _count_at_most(values, u) // n) for pid, u in positive.items()}


def _count_at_most(sorted_values: list[float], value: float) -> int:
    import bisect

    return bisect.bisect_right(sorted_values, value)


def grade_query(utilities: Mapping[str, float], grades: int = 3, scheme: GradeScheme = "quantile",
                thresholds: Sequence[float] | None = None, min_utility: float = 0.0) -> dict[str, int]:
    """Grades ``0..grades`` of one query's passages (see the module docstring for the schemes)."""
    positive = {pid: float(u) for pid, u in utilities.items() if u > min_utility}
    graded = dict.fromkeys(utilities, 0)
    if scheme == "quantile":
        graded.update(_quantile_grades(positive, grades) if positive else {})
    else:
        cuts = list(thresholds or [])
        graded.update({pid: 1 + sum(u >= t for t in cuts) for pid, u in positive.items()})
    return graded


def check_grading(grades: int, scheme: str, thresholds: Sequence[float] | None, min_utility: float) -> None:
    """Refuse settings that cannot grade.

    Raises:
        ValueError: ``grades < 1``, an unknown scheme, or thresholds that are not ``grades - 1``
            increasing values above ``min_utility`` (threshold scheme), or given to the quantile scheme.
    """
    if grades < 1:
        raise ValueError(f"grades must be at least 1, got {grades}")
    if scheme not in ("quantile", "threshold"):
        raise ValueError(f"scheme must be 'quantile' or 'threshold', got {scheme!r}")
    if scheme == "quantile":
        if thresholds:
            raise ValueError("thresholds belong to the 'threshold' scheme; the quantile scheme grades by within-query rank")
        return
    cuts = list(thresholds or [])
    if len(cuts) != grades - 1 or any(b <= a for a, b in zip(cuts, cuts[1:])) or any(t <= min_utility for t in cuts):
        raise ValueError(f"the threshold scheme needs {grades - 1} increasing thresholds above min_utility={min_utility} "
                         f"(nats per answer token), got {cuts}")


def graded_qrels(utilities: Mapping[str, Mapping[str, float]], grades: int = 3, scheme: GradeScheme = "quantile",
                 thresholds: Sequence[float] | None = None, min_utility: float = 0.0) -> tuple[Qrels, SkipReport]:
    """Graded qrels of every query from one teacher's utilities.

    Args:
        utilities: ``{query_id: {passage_id: utility}}``.
        grades: ``G``, the highest grade.
        scheme: ``"quantile"`` (within-query) or ``"threshold"`` (fixed cut points).
        thresholds: ``G - 1`` increasing utilities (threshold scheme only).
        min_utility: a passage is helpful when its utility exceeds this (default 0).

    Returns:
        ``(qrels, report)``; the report counts queries with no helpful passage, which stay in
        the qrels with grades 0.
    """
    check_grading(grades, scheme, thresholds, min_utility)
    qrels: Qrels = {}
    report = SkipReport()
    for query_id, row in utilities.items():
        qrels[query_id] = grade_query(row, grades, scheme, thresholds, min_utility)
        if not any(qrels[query_id].values()):
            report.add("no passage with positive utility (all grades 0)", query_id)
    return qrels, report


def grade_histogram(qrels: Qrels) -> dict[int, int]:
    """``{grade: judged passages}``."""
    counts: dict[int, int] = {}
    for judged in qrels.values():
        for grade in judged.values():
            counts[grade] = counts.get(grade, 0) + 1
    return dict(sorted(counts.items()))


# ---- pooled judgements (TREC pooling) --------------------------------------------------------


def _top(ranked: Mapping[str, float], depth: int) -> list[str]:
    """A system's top-``depth`` for one query, in the order the metrics rank it (ties as trec_eval)."""
    from uae.evaluation.metrics import rank_passages

    return rank_passages(ranked)[:depth]


def _check_depth(depth: int) -> None:
    if depth < 1:
        raise ValueError(f"pool depth must be at least 1, got {depth}")


def pooled_judgements(runs: Runs, depth: int = DEFAULT_POOL_DEPTH) -> Pools:
    """TREC pools: per query, the union of every system's top-``depth`` passages.

    Args:
        runs: ``{system: run}``; a system's top-``depth`` is read as the metrics rank its run.
        depth: Passages taken from each system's ranking.

    Returns:
        ``{query_id: [Candidate, ...]}`` for every query some system retrieved for. Candidates are
        ordered by their best rank in any system (then by the order of ``runs``); a candidate's
        ``score`` is the number of systems whose top-``depth`` holds it; ``is_gold`` is ``False``
        (judging reads no evidence labels).

    Raises:
        ValueError: ``depth < 1``.
    """
    _check_depth(depth)
    best: dict[str, dict[str, tuple[int, int]]] = {}
    votes: dict[str, dict[str, int]] = {}
    for index, run in enumerate(runs.values()):
        for query_id, ranked in run.items():
            row, counts = best.setdefault(query_id, {}), votes.setdefault(query_id, {})
            for rank, pid in enumerate(_top(ranked, depth)):
                row[pid] = min(row.get(pid, (rank, index)), (rank, index))
                counts[pid] = counts.get(pid, 0) + 1
    return {query_id: [Candidate(pid, float(votes[query_id][pid]), False) for pid in sorted(row, key=row.__getitem__)]
            for query_id, row in best.items() if row}


@dataclass(frozen=True)
class PoolContribution:
    """What one system brought to the judged pool, in (query, passage) pairs summed over queries.

    Attributes:
        contributed: Judged passages in the system's top-``depth``.
        unique: Of those, the ones in no other system's top-``depth`` (judged only because of it).
    """

    contributed: int
    unique: int

    def to_dict(self) -> dict[str, int]:
        return {"contributed": self.contributed, "unique": self.unique}


def pool_contributions(runs: Runs, depth: int = DEFAULT_POOL_DEPTH,
                       judged: Mapping[str, Iterable[str]] | None = None) -> dict[str, PoolContribution]:
    """Per system, how many judged passages came from its top-``depth`` and how many only from it.

    Args:
        runs: ``{system: run}``, as given to :func:`pooled_judgements`.
        depth: The pool depth.
        judged: ``{query_id: passage ids}`` the teacher actually judged (e.g. its utilities, which
            leave out queries it skipped); default: the whole pool of ``runs``.

    Returns:
        ``{system: PoolContribution}`` in the order of ``runs``.
    """
    _check_depth(depth)
    if judged is None:
        judged = {query_id: [c.passage_id for c in pool] for query_id, pool in pooled_judgements(runs, depth).items()}
    tops = {system: {query_id: set(_top(ranked, depth)) for query_id, ranked in run.items()} for system, run in runs.items()}
    counts = {}
    for system, top in tops.items():
        contributed = unique = 0
        for query_id, passages in judged.items():
            mine = top.get(query_id, set()) & set(passages)
            others = set().union(*(tops[other].get(query_id, set()) for other in tops if other != system))
            contributed += len(mine)
            unique += len(mine - others)
        counts[system] = PoolContribution(contributed, unique)
    return counts


@dataclass
class PooledJudgement:
    """One teacher's judgement of the pooled runs: what was judged, the utilities, the graded qrels.

    Attributes:
        depth: The pool depth.
        pools: The pooled union per query (:func:`pooled_judgements`), restricted to the queries asked for.
        utilities: The teacher's ``{query_id: {passage_id: utility}}`` over the pools it judged.
        qrels: Graded qrels from ``utilities`` (:func:`graded_qrels`).
        contributions: ``{system: PoolContribution}`` over the judged passages.
        labeling: The labeling run's summary (time, pairs, truncations).
        skipped: Queries and answers left out by labeling and by the utilities (no usable answer,
            no pool, non-finite NLLs, ...).
        no_positive: Judged queries without a passage of positive utility (grades all 0).
    """

    depth: int
    pools: Pools
    utilities: Utilities
    qrels: Qrels
    contributions: dict[str, PoolContribution]
    labeling: LabelingSummary
    skipped: SkipReport = field(default_factory=SkipReport)
    no_positive: SkipReport = field(default_factory=SkipReport)

    @property
    def judged(self) -> int:
        """Judged (query, passage) pairs."""
        return sum(len(row) for row in self.utilities.values())

    def summary(self) -> dict:
        """Depth, judged queries and passages, per-system contributions, skips and labeling time, for reports and JSON."""
        return {"depth": self.depth, "queries": len(self.utilities), "judged": self.judged,
                "contributions": {s: c.to_dict() for s, c in self.contributions.items()},
                "skipped": self.skipped.to_dict(), "no_positive": self.no_positive.total, "seconds": round(self.labeling.seconds, 3)}


def judge_pooled_runs(runs: Runs, queries: Sequence[Query], corpus: Corpus, teacher: Teacher, out_dir: str | os.PathLike,
                      depth: int = DEFAULT_POOL_DEPTH, grades: int = 3, scheme: GradeScheme = "quantile",
                      thresholds: Sequence[float] | None = None, min_utility: float = 0.0,
                      aggregate: Literal["mean", "max"] = "mean", progress: bool = False) -> PooledJudgement:
    """Pool every system's top-``depth``, have ``teacher`` label the union, and grade it.

    Labeling is :func:`uae.labeling.local.label_pools` into ``out_dir`` (resumable; a folder that holds
    another pool or teacher is refused), utilities are :func:`uae.targets.utilities.utilities_from_nlls`, and
    the qrels :func:`graded_qrels`.

    Args:
        runs: ``{system: run}`` of every evaluated system.
        queries: The queries to judge (with their gold answers); others in ``runs`` are ignored.
        corpus: Passage texts.
        teacher: The judging teacher.
        out_dir: Labeling folder.
        depth: Pool depth (see :data:`DEFAULT_POOL_DEPTH`).
        grades: ``G`` of the graded qrels.
        scheme: ``"quantile"`` or ``"threshold"``.
        thresholds: The threshold scheme's cut points.
        min_utility: A passage is helpful when its utility exceeds this.
        aggregate: ``"mean"`` or ``"max"`` over a query's answers.
        progress: Show the labeling progress bar.

    Raises:
        ValueError: bad grading settings or depth (before any labeling).
    """
    from uae.labeling.local import label_pools

    check_grading(grades, scheme, thresholds, min_utility)
    pooled = pooled_judgements(runs, depth)
    pools = {q.id: pooled[q.id] for q in queries if q.id in pooled}
    summary = label_pools(queries, pools, corpus, teacher, out_dir, progress=progress)
    utilities, unusable = utilities_from_labels(out_dir, aggregate)
    qrels, no_positive = graded_qrels(utilities, grades, scheme, thresholds, min_utility)
    skipped = SkipReport()
    skipped.merge(summary.skipped)
    skipped.merge(unusable)
    return PooledJudgement(depth, pools, utilities, qrels, pool_contributions(runs, depth, utilities), summary, skipped, no_positive)


# ---- measures ---------------------------------------------------------------------------------


def _dcg(gains: Sequence[float]) -> float:
    return sum(g / math.log2(i + 2) for i, g in enumerate(gains))


def utility_ndcg(run: Mapping[str, Mapping[str, float]], utilities: Mapping[str, Mapping[str, float]], k: int = 10) -> dict[str, float]:
    """nDCG@k with the teacher's positive utilities as gains, per query that has a helpful passage.

    Args:
        run: ``{query_id: {passage_id: score}}``; a query missing from it scores 0.
        utilities: the judging teacher's ``{query_id: {passage_id: utility}}``.
        k: cut-off.

    Returns:
        ``{query_id: nDCG@k}`` for the queries with at least one positive utility.
    """
    from uae.evaluation.metrics import rank_passages

    scores = {}
    for query_id, row in utilities.items():
        ideal = _dcg(sorted((max(u, 0.0) for u in row.values()), reverse=True)[:k])
        if ideal <= 0:
            continue
        ranked = rank_passages(run.get(query_id, {}))[:k]
        scores[query_id] = _dcg([max(row.get(pid, 0.0), 0.0) for pid in ranked]) / ideal
    return scores


def pool_kendall_tau(scores: Mapping[str, Mapping[str, float]], utilities: Mapping[str, Mapping[str, float]]) -> tuple[dict[str, float], SkipReport]:
    """Kendall's tau-b between student scores and teacher utilities over each query's pool.

    Args:
        scores: ``{query_id: {passage_id: student score}}`` over (at least) the teacher's pool.
        utilities: the teacher's ``{query_id: {passage_id: utility}}``.

    Returns:
        ``({query_id: tau}, report)``; left out and counted: queries without student scores, pools
        of fewer than 2 passages and pools where either side is constant (tau undefined).

    Raises:
        ValueError: a pooled passage without a student score.
    """
    from scipy.stats import kendalltau

    taus: dict[str, float] = {}
    report = SkipReport()
    for query_id, row in utilities.items():
        if query_id not in scores:
            report.add("no student scores", query_id)
            continue
        if missing := [pid for pid in row if pid not in scores[query_id]]:
            raise ValueError(f"query {query_id!r}: no student score for pooled passages {missing[:5]}")
        pids = list(row)
        tau = kendalltau([scores[query_id][p] for p in pids], [row[p] for p in pids]).statistic if len(pids) > 1 else math.nan
        if math.isnan(tau):
            report.add("tau undefined (pool < 2 or constant scores/utilities)", query_id)
            continue
        taus[query_id] = float(tau)
    return taus, report


def teacher_agreement(a: Mapping[str, Mapping[str, float]], b: Mapping[str, Mapping[str, float]]) -> tuple[dict[str, float], SkipReport]:
    """Kendall's tau-b between two teachers' utilities over the pools both scored."""
    shared = {q: {p: u for p, u in row.items() if p in b[q]} for q, row in a.items() if q in b}
    return pool_kendall_tau(b, shared)


def student_scores(model_path: str, queries: Sequence[Query], corpus: Corpus, pools: Mapping[str, Sequence[str]], depth: int = 100,
                   batch_size: int = 64, max_seq_length: int | None = None, progress: bool = False) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    """A student's ranking of the corpus and its scores over each pool, from one encoding of the corpus.

    Scores are cosine similarities (unit vectors, inner product): the ranking is the exact search a
    FAISS flat index gives, restricted to a query's ``doc_id`` scope when it has one.

    Args:
        model_path: a sentence-transformers folder or ``minilm``.
        queries: the queries to score.
        corpus: the passages.
        pools: ``{query_id: [passage_id, ...]}``; a query without a pool gets no pool scores.
        depth: passages kept per query in the run.
        batch_size: encoder batch size.
        max_seq_length: tokens per text (default: the model's own setting).
        progress: show encoding progress.

    Returns:
        ``(run, pool scores)``: ``{query_id: {passage_id: cosine}}`` for the top-``depth`` and for the pool.
    """
    from uae.retrieval.encoders import encode, load_encoder

    model = load_encoder(model_path, max_seq_length=max_seq_length)
    passages = encode(model, corpus.texts, batch_size, "encoding passages", progress)
    similarities = encode(model, [q.text for q in queries], batch_size, "encoding queries", progress) @ passages.T
    ids = corpus.ids
    run, pooled = {}, {}
    for row, query in enumerate(queries):
        scope = corpus.rows_in_scope(query.doc_id)
        candidates = np.arange(len(ids)) if scope is None else np.asarray(scope, dtype=np.int64)
        top = candidates[np.argsort(-similarities[row, candidates], kind="stable")[:depth]]
        run[query.id] = {ids[i]: float(similarities[row, i]) for i in top}
        if pools.get(query.id):
            pooled[query.id] = {pid: float(similarities[row, corpus.row_of[pid]]) for pid in pools[query.id]}
    return run, pooled


def mean(values: Mapping[str, float] | Sequence[float]) -> float:
    """Mean of the values (NaN when there are none)."""
    data = list(values.values()) if isinstance(values, Mapping) else list(values)
    return float(np.mean(data)) if data else math.nan
