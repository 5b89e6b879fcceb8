"""Retrieval metrics, paired significance tests and answer recall.

Ranking metrics come from ranx, whose implementations are checked against trec_eval:
recall, MRR and MAP count a passage as relevant when its grade is at least 1; nDCG uses
the grade itself as gain with a log2 discount (trec_eval's ``ndcg_cut``).

The evaluated queries are those of the qrels that have at least one relevant passage
(grade >= 1); the others are left out and counted in a log warning, because every system
would score zero on them. A judged query missing from a run, or with an empty result list,
scores zero on every metric, as with ranx's ``make_comparable`` (filled in here, which spares
the seconds ranx spends building numba dictionaries). Queries of a run that the qrels do not
judge are ignored. Ties in a run are broken by passage id, larger first, as trec_eval does, so
results do not depend on hash order.

Significance: ``compare`` runs a two-sided paired test per system and metric against the
baseline on the per-query scores, with scipy. ``"student"`` is ``scipy.stats.ttest_rel``,
exactly what ranx's own paired t-test calls. ``"fisher"`` is
``scipy.stats.permutation_test`` with paired (sign-flip) permutations: ranx's Fisher test
runs its permutations in numba threads that ignore its seed, so its p-values change from run
to run, while scipy's are reproducible for a given seed (and exact for small query sets).
No correction for multiple comparisons is applied.
"""

from __future__ import annotations

import logging
import math
import re
import string
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
from scipy import stats

from uae.data.schema import Qrels, SkipReport

log = logging.getLogger(__name__)

Run = dict[str, dict[str, float]]
"""``{query_id: {passage_id: score}}``; a higher score ranks a passage higher."""

Test = Literal["student", "fisher"]

DEFAULT_METRICS: tuple[str, ...] = ("recall@1", "recall@5", "recall@10", "mrr", "map", "ndcg@10")

_RANX_NAMES = {
    "recall": "recall",
    "precision": "precision",
    "hit_rate": "hit_rate",
    "mrr": "mrr",
    "map": "map",
    "ndcg": "ndcg",
    "r_precision": "r-precision",
}


@dataclass(frozen=True)
class MetricResult:
    """One system on one metric, next to the baseline.

    Attributes:
        mean: Mean over the evaluated queries.
        gain_pct: ``(mean - baseline) / baseline * 100``; ``None`` when the baseline is 0.
        p_value: Two-sided paired p-value against the baseline; ``None`` for the baseline.
        significant: ``p_value < alpha``.
    """

    mean: float
    gain_pct: float | None
    p_value: float | None
    significant: bool


@dataclass(frozen=True)
class Comparison:
    """Every system against one baseline, per metric.

    Attributes:
        baseline: Name of the baseline system.
        test: ``"student"`` (paired t-test) or ``"fisher"`` (paired randomization test).
        alpha: Significance level.
        n_queries: Number of evaluated queries.
        n_permutations: Permutations of the randomization test; ``None`` for the t-test.
        results: ``{system: {metric: MetricResult}}``, systems in the order given.
    """

    baseline: str
    test: Test
    alpha: float
    n_queries: int
    n_permutations: int | None
    results: dict[str, dict[str, MetricResult]]

    @property
    def test_name(self) -> str:
        """The test in words, for legends."""
        if self.test == "student":
            return "two-sided paired t-test"
        return f"two-sided paired randomization test, {self.n_permutations} permutations"

    def means(self) -> dict[str, dict[str, float]]:
        """``{system: {metric: mean}}``, the shape ``evaluate`` returns."""
        return {s: {m: r.mean for m, r in row.items()} for s, row in self.results.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form."""
        return asdict(self)


def to_ranx_metric(name: str) -> str:
    """Translate one of our metric names (``"recall@5"``, ``"mrr"``, ...) to ranx's.

    Raises:
        ValueError: The name is not a supported metric, or its cutoff is not a positive integer.
    """
    base, _, cutoff = name.lower().partition("@")
    if base not in _RANX_NAMES:
        supported = ", ".join(sorted(_RANX_NAMES))
        raise ValueError(f"unknown metric {name!r}; supported: {supported}, each with an optional @k")
    if not cutoff:
        return _RANX_NAMES[base]
    if not cutoff.isdigit() or int(cutoff) < 1:
        raise ValueError(f"metric {name!r}: the cutoff after '@' must be a positive integer")
    return f"{_RANX_NAMES[base]}@{int(cutoff)}"


def evaluable_qrels(qrels: Qrels) -> tuple[Qrels, SkipReport]:
    """The queries of ``qrels`` that have a relevant passage, and a count of the others."""
    kept: Qrels = {}
    skipped = SkipReport()
    for qid, judged in qrels.items():
        if any(grade >= 1 for grade in judged.values()):
            kept[qid] = judged
        else:
            skipped.add("no relevant passage in qrels", qid)
    return kept, skipped


def evaluate(
    qrels: Qrels, runs: Mapping[str, Run], metrics: Sequence[str] = DEFAULT_METRICS
) -> dict[str, dict[str, float]]:
    """Mean of each metric for each system.

    Args:
        qrels: Graded judgements; they define the evaluated queries.
        runs: ``{system: run}``.
        metrics: Metric names such as ``"recall@5"``, ``"mrr"``, ``"ndcg@10"``.

    Returns:
        ``{system: {metric: mean}}``.
    """
    judged = _judged(qrels)
    return {
        system: {m: _mean(scores) for m, scores in _per_query_scores(judged, run, metrics).items()}
        for system, run in runs.items()
    }


def per_query(qrels: Qrels, run: Run, metric: str) -> dict[str, float]:
    """Score of ``run`` on each evaluated query of ``qrels`` for one metric."""
    return _per_query_scores(_judged(qrels), run, [metric])[metric]


def compare(
    qrels: Qrels,
    runs: Mapping[str, Run],
    baseline: str,
    metrics: Sequence[str] = DEFAULT_METRICS,
    test: Test = "student",
    alpha: float = 0.05,
    n_permutations: int = 10_000,
    seed: int = 42,
) -> Comparison:
    """Means, relative gains and paired p-values of every system against ``baseline``.

    Args:
        qrels: Graded judgements; they define the evaluated queries.
        runs: ``{system: run}``; must contain ``baseline``.
        baseline: The system the others are compared with.
        metrics: Metric names.
        test: ``"student"`` for a paired t-test, ``"fisher"`` for a paired randomization test.
        alpha: Significance level; a result is significant when ``p < alpha``.
        n_permutations: Permutations of the randomization test.
        seed: Seed of the randomization test.

    Raises:
        ValueError: Unknown baseline or test, or ``alpha`` outside (0, 1).
    """
    if baseline not in runs:
        raise ValueError(f"baseline {baseline!r} is not among the runs {sorted(runs)}")
    if test not in ("student", "fisher"):
        raise ValueError(f"unknown test {test!r}; use 'student' or 'fisher'")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    judged = _judged(qrels)
    scores = {s: _per_query_scores(judged, run, metrics) for s, run in runs.items()}
    p_value = partial(_paired_p_value, test=test, n_permutations=n_permutations, seed=seed)
    results = {
        system: {
            m: _metric_result(scores[system][m], scores[baseline][m], system == baseline, p_value, alpha)
            for m in metrics
        }
        for system in runs
    }
    return Comparison(
        baseline=baseline,
        test=test,
        alpha=alpha,
        n_queries=len(judged),
        n_permutations=n_permutations if test == "fisher" else None,
        results=results,
    )


def rank_passages(ranked: Mapping[str, float]) -> list[str]:
    """Passage ids best first; ties go to the larger id, as trec_eval breaks them."""
    return [pid for pid, _ in sorted(ranked.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lowercase, drop punctuation and articles, collapse whitespace.

    Punctuation is every Unicode punctuation character (a superset of ``string.punctuation``).
    """
    text = "".join(c for c in text.lower() if not _is_punctuation(c))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_recall_at_k(
    run: Run, passages_text: Mapping[str, str], answers: Mapping[str, Sequence[str]], k: int
) -> float:
    """Share of queries whose top-``k`` passages contain a gold answer.

    A passage contains an answer when the normalised answer occurs in the normalised passage
    as a whole-token sequence. ``answers`` defines the evaluated queries (pass only the split
    being evaluated); a query missing from ``run`` counts as a miss, a query whose answers all
    normalise to nothing is left out and counted in a log warning.

    Raises:
        ValueError: ``k < 1`` or no query has a usable answer.
        KeyError: A ranked passage has no text in ``passages_text``.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    hits, skipped = [], SkipReport()
    for qid, golds in answers.items():
        normalized = [a for a in (normalize_answer(g) for g in golds) if a]
        if not normalized:
            skipped.add("no usable gold answer", qid)
            continue
        top = rank_passages(run.get(qid, {}))[:k]
        hits.append(any(_contains_any(_passage_text(passages_text, pid), normalized) for pid in top))
    _warn_skipped(skipped)
    if not hits:
        raise ValueError("answer_recall_at_k: no query has a usable gold answer")
    return sum(hits) / len(hits)


def _judged(qrels: Qrels) -> Qrels:
    kept, skipped = evaluable_qrels(qrels)
    _warn_skipped(skipped)
    if not kept:
        raise ValueError("qrels hold no query with a relevant passage (grade >= 1)")
    return kept


def _per_query_scores(qrels: Qrels, run: Run, metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    import ranx

    names = [to_ranx_metric(m) for m in metrics]
    scores = {m: dict.fromkeys(qrels, 0.0) for m in metrics}  # nothing retrieved: every metric is 0
    answered = [qid for qid in qrels if run.get(qid)]
    if not answered:
        return scores
    # Always two or more names: with one name "x@k" and return_mean=False, ranx 0.3.21 looks up
    # "x" in its results and raises KeyError.
    unique = list(dict.fromkeys(names))
    values = ranx.evaluate(
        {qid: {pid: int(g) for pid, g in qrels[qid].items()} for qid in answered},
        {qid: _rank_scores(run[qid]) for qid in answered},
        unique if len(unique) > 1 else unique * 2,
        return_mean=False,
    )
    for metric, name in zip(metrics, names):
        scores[metric].update(zip(answered, map(float, values[name])))
    return scores


def _rank_scores(ranked: Mapping[str, float]) -> dict[str, float]:
    order = rank_passages(ranked)
    return {pid: float(len(order) - i) for i, pid in enumerate(order)}


def _metric_result(
    system: Mapping[str, float],
    base: Mapping[str, float],
    is_baseline: bool,
    p_value: Callable[[np.ndarray, np.ndarray], float],
    alpha: float,
) -> MetricResult:
    mean, base_mean = _mean(system), _mean(base)
    gain = (mean - base_mean) / base_mean * 100.0 if base_mean != 0 else None
    if is_baseline:
        return MetricResult(mean=mean, gain_pct=gain, p_value=None, significant=False)
    qids = sorted(base)
    p = p_value(np.array([system[q] for q in qids]), np.array([base[q] for q in qids]))
    return MetricResult(mean=mean, gain_pct=gain, p_value=p, significant=p < alpha)


def _paired_p_value(
    system: np.ndarray, base: np.ndarray, test: Test, n_permutations: int, seed: int
) -> float:
    diff = system - base
    if len(diff) < 2:
        return math.nan
    if test == "student":
        if np.all(diff == diff[0]):  # zero variance: t is 0/0 or infinite
            return 1.0 if diff[0] == 0 else 0.0
        return float(stats.ttest_rel(system, base).pvalue)
    if not diff.any():
        return 1.0
    result = stats.permutation_test(
        (system, base),
        lambda x, y, axis: np.mean(x - y, axis=axis),
        permutation_type="samples",
        vectorized=True,
        n_resamples=n_permutations,
        random_state=seed,
    )
    return float(result.pvalue)


def _mean(scores: Mapping[str, float]) -> float:
    return float(np.mean(list(scores.values())))


def _passage_text(passages_text: Mapping[str, str], passage_id: str) -> str:
    if passage_id not in passages_text:
        raise KeyError(f"passage {passage_id!r} is ranked in the run but has no text")
    return passages_text[passage_id]


def _contains_any(text: str, normalized_answers: Sequence[str]) -> bool:
    padded = f" {normalize_answer(text)} "
    return any(f" {answer} " in padded for answer in normalized_answers)


def _is_punctuation(char: str) -> bool:
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def _warn_skipped(skipped: SkipReport) -> None:
    for line in skipped.lines():
        log.warning(line)
