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

Confidence intervals, at level ``1 - alpha`` (95% by default), of each system's mean and of
its paired difference from the baseline (the mean of the per-query differences): with the
t-test, Student t-intervals, ``mean +- t_{1-alpha/2, n-1} * sd / sqrt(n)`` (scipy's
``ttest_1samp(...).confidence_interval``; on the differences this is the interval of the paired
t-test itself, so a difference interval excludes 0 exactly when ``p < alpha``). With the
randomization test, paired bootstrap percentile intervals (the per-query differences resampled
with replacement, as many resamples as permutations, same seed); they usually but not always
agree with the randomization test's verdict, which makes no interval of its own.
"""

from __future__ import annotations

import logging
import math
import re
import string
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
from scipy import stats

from uae.data.schema import Dataset, Qrels, Query, SkipReport
from uae.retrieval.types import Run

log = logging.getLogger(__name__)

Test = Literal["student", "fisher"]

Interval = Literal["t", "bootstrap"]

DEFAULT_METRICS: tuple[str, ...] = ("recall@1", "hit_rate@1", "recall@5", "recall@10", "mrr", "map", "ndcg@10")
"""``hit_rate@1`` (did the top passage hit any relevant one) sits beside ``recall@1``, which is
capped at ``1/|relevant|`` when a query has several relevant passages (QMSum, PubMedQA)."""

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
        ci_low: Lower end of the ``1 - alpha`` confidence interval of ``mean``.
        ci_high: Upper end of that interval.
        diff: Mean of the per-query differences from the baseline; ``None`` for the baseline.
        diff_ci_low: Lower end of the paired ``1 - alpha`` confidence interval of ``diff``.
        diff_ci_high: Upper end of that interval.

    An interval is ``None`` when it is undefined (fewer than two queries) or was not computed
    (results written before intervals existed); it has zero width when every per-query value
    (or difference) is the same.
    """

    mean: float
    gain_pct: float | None
    p_value: float | None
    significant: bool
    ci_low: float | None = None
    ci_high: float | None = None
    diff: float | None = None
    diff_ci_low: float | None = None
    diff_ci_high: float | None = None


@dataclass(frozen=True)
class Comparison:
    """Every system against one baseline, per metric.

    Attributes:
        baseline: Name of the baseline system.
        test: ``"student"`` (paired t-test) or ``"fisher"`` (paired randomization test).
        alpha: Significance level.
        n_queries: Number of evaluated queries.
        n_permutations: Permutations of the randomization test (and bootstrap resamples of its
            intervals); ``None`` for the t-test.
        results: ``{system: {metric: MetricResult}}``, systems in the order given.
        interval: How the confidence intervals were computed: ``"t"`` (Student t-intervals,
            with the t-test) or ``"bootstrap"`` (paired bootstrap percentile, with the
            randomization test).
    """

    baseline: str
    test: Test
    alpha: float
    n_queries: int
    n_permutations: int | None
    results: dict[str, dict[str, MetricResult]]
    interval: Interval = "t"

    @property
    def test_name(self) -> str:
        """The test in words, for legends."""
        if self.test == "student":
            return "two-sided paired t-test"
        return f"two-sided paired randomization test, {self.n_permutations} permutations"

    @property
    def confidence(self) -> float:
        """Level of the confidence intervals, ``1 - alpha``."""
        return 1.0 - self.alpha

    @property
    def interval_name(self) -> str:
        """The intervals in words, for legends, e.g. ``"95% t-interval"``."""
        level = f"{100 * self.confidence:g}%"
        if self.interval == "t":
            return f"{level} t-interval"
        return f"{level} bootstrap percentile interval, {self.n_permutations} resamples"

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
    result = partial(metric_result, test=test, alpha=alpha, n_permutations=n_permutations, seed=seed)
    results = {
        system: {m: result(scores[system][m], scores[baseline][m], system == baseline) for m in metrics}
        for system in runs
    }
    return Comparison(
        baseline=baseline,
        test=test,
        alpha=alpha,
        n_queries=len(judged),
        n_permutations=n_permutations if test == "fisher" else None,
        results=results,
        interval=interval_kind(test),
    )


def interval_kind(test: Test) -> Interval:
    """The confidence interval that goes with a test: ``"t"`` for ``"student"``, else ``"bootstrap"``."""
    return "t" if test == "student" else "bootstrap"


def metric_result(
    system: Mapping[str, float],
    base: Mapping[str, float],
    is_baseline: bool,
    test: Test = "student",
    alpha: float = 0.05,
    n_permutations: int = 10_000,
    seed: int = 42,
) -> MetricResult:
    """One system's mean, gain, paired test and confidence intervals against the baseline.

    Args:
        system: ``{query_id: score}`` of the system.
        base: ``{query_id: score}`` of the baseline, on the same queries.
        is_baseline: The system is the baseline: no test and no difference interval.
        test: ``"student"`` or ``"fisher"``; also chooses the intervals (see the module doc).
        alpha: Significance level; the intervals have level ``1 - alpha``.
        n_permutations: Permutations of the randomization test and resamples of the bootstrap.
        seed: Seed of the randomization test and of the bootstrap.

    Raises:
        ValueError: ``system`` lacks a query of ``base``.
    """
    missing = set(base) - set(system)
    if missing:
        raise ValueError(f"system scores lack {len(missing)} baseline queries, e.g. {sorted(missing)[:3]}")
    qids = sorted(base)
    values, base_values = np.array([system[q] for q in qids]), np.array([base[q] for q in qids])
    mean, base_mean = float(values.mean()), float(base_values.mean())
    gain = (mean - base_mean) / base_mean * 100.0 if base_mean != 0 else None
    interval = partial(mean_interval, confidence=1.0 - alpha, kind=interval_kind(test), n_resamples=n_permutations, seed=seed)
    ci_low, ci_high = interval(values)
    if is_baseline:
        return MetricResult(mean=mean, gain_pct=gain, p_value=None, significant=False, ci_low=ci_low, ci_high=ci_high)
    p = paired_p_value(values, base_values, test, n_permutations, seed)
    diff = values - base_values
    diff_low, diff_high = interval(diff)
    return MetricResult(
        mean=mean,
        gain_pct=gain,
        p_value=p,
        significant=p < alpha,
        ci_low=ci_low,
        ci_high=ci_high,
        diff=float(diff.mean()),
        diff_ci_low=diff_low,
        diff_ci_high=diff_high,
    )


def mean_interval(
    values: np.ndarray, confidence: float = 0.95, kind: Interval = "t", n_resamples: int = 10_000, seed: int = 42
) -> tuple[float | None, float | None]:
    """Two-sided confidence interval of the mean of ``values`` (per-query scores or differences).

    Args:
        values: One value per query.
        confidence: Level of the interval, in (0, 1).
        kind: ``"t"``: Student t-interval ``mean +- t_{(1+confidence)/2, n-1} * sd / sqrt(n)``.
            ``"bootstrap"``: percentile interval of ``n_resamples`` bootstrap means, seeded.
        n_resamples: Bootstrap resamples.
        seed: Bootstrap seed.

    Returns:
        ``(low, high)``; ``(None, None)`` for fewer than two values; ``(v, v)`` when every value is ``v``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None, None
    if np.all(values == values[0]):  # zero variance: the t-interval is 0/0, the bootstrap degenerate
        return float(values[0]), float(values[0])
    if kind == "t":
        low, high = stats.ttest_1samp(values, 0.0).confidence_interval(confidence_level=confidence)
    elif kind == "bootstrap":
        result = stats.bootstrap(
            (values,),
            np.mean,
            n_resamples=n_resamples,
            batch=max(1, 4_000_000 // values.size),  # bounds the memory of the resampled matrix
            vectorized=True,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        low, high = result.confidence_interval
    else:
        raise ValueError(f"unknown interval {kind!r}; use 't' or 'bootstrap'")
    return float(low), float(high)


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


ANSWER_RECALL_KS = (1, 5)
NO_ANSWER_RETRIEVED = "<no retrieved passage holds the answer>"


def answer_recall(dataset: Dataset, queries: Sequence[Query], runs: dict[str, Run], baseline: str, test: Test = "student",
                  ks: Sequence[int] = ANSWER_RECALL_KS) -> tuple[dict[str, dict[str, float]], Comparison | None]:
    """``answer_recall@k`` of every run, with gains and paired tests against ``baseline``.

    ``answer_recall@k``: share of queries whose top-``k`` passages hold a gold answer in their text
    (body, not title; SQuAD normalisation, whole tokens), as :func:`answer_recall_at_k`
    computes it. Gains and p-values come from :func:`compare` on "answer qrels": for
    each query, the passages of any run's top-``max(ks)`` that hold an answer (a placeholder id when
    none does), on which ``hit_rate@k`` is the same share; the two are checked to agree. Queries whose
    answers normalise to nothing are left out (and logged), as ``answer_recall_at_k`` does.

    Returns:
        ``({system: {"answer_recall@k": value}}, Comparison)``, or ``({}, None)`` when no query has a usable answer.
    """
    depth = max(ks)
    answers = {q.id: [n for a in q.answers if (n := normalize_answer(a))] for q in queries}
    answers = {qid: normalized for qid, normalized in answers.items() if normalized}
    if not answers:
        return {}, None
    tops = {system: {qid: rank_passages(run.get(qid, {}))[:depth] for qid in answers} for system, run in runs.items()}
    texts = {pid: dataset.corpus[pid].text for top in tops.values() for pids in top.values() for pid in pids}
    padded = {pid: f" {normalize_answer(text)} " for pid, text in texts.items()}
    qrels = {}
    for qid, golds in answers.items():
        holding = {pid for top in tops.values() for pid in top[qid] if any(f" {g} " in padded[pid] for g in golds)}
        qrels[qid] = dict.fromkeys(sorted(holding), 1) or {NO_ANSWER_RETRIEVED: 1}
    names = {f"hit_rate@{k}": f"answer_recall@{k}" for k in ks}
    comparison = compare(qrels, runs, baseline=baseline, metrics=list(names), test=test)
    comparison.results.update({system: {names[m]: r for m, r in row.items()} for system, row in comparison.results.items()})
    values = {}
    gold_answers = {qid: dataset.queries[qid].answers for qid in answers}
    for system, run in runs.items():
        values[system] = {names[f"hit_rate@{k}"]: answer_recall_at_k(run, texts, gold_answers, k) for k in ks}
        for metric, value in values[system].items():
            if abs(comparison.results[system][metric].mean - value) > 1e-9:
                raise RuntimeError(f"answer recall of {system}: {metric} {value} but hit_rate on answer qrels "
                                   f"{comparison.results[system][metric].mean}; the two definitions disagree")
    return values, comparison


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


def paired_p_value(system: np.ndarray, base: np.ndarray, test: Test, n_permutations: int, seed: int) -> float:
    """Two-sided paired p-value of ``system`` against ``base`` (per-query scores, same order).

    ``nan`` for fewer than two queries; with zero-variance differences, 1 when they are all 0
    and 0 otherwise.
    """
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
